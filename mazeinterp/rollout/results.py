"""What a rollout returns: one :class:`Episode` per maze, a :class:`RolloutResult`, :class:`OutcomeSummary` tables.

Outcomes
--------
Each episode starts from a maze (a level seed, or a given
:class:`~mazeinterp.maze.state.MazeState`) and ends with the first of:

* ``"cheese"`` -- the mouse entered the cheese cell (procgen pays reward 10);
* ``"top_right"`` -- after a step the mouse stands on the top-right cell
  ``(0, n-1)`` of the inner maze (before it reached the cheese). When the
  top-right cell lies on the shortest path from the mouse's start to the
  cheese, passing through it is progress towards the cheese and is not
  counted (:attr:`Episode.top_right_counts` is False; such mazes have no
  decision square);
* ``"neither"`` -- ``max_steps`` steps passed without either.

Each episode also records when the mouse first arrived in the top-right k×k
region (:attr:`Episode.region_step`; k is
:attr:`~mazeinterp.rollout.RolloutConfig.region_size`, default 5) and, when it
hit the step cap, whether it was trapped between two adjacent cells
(:attr:`Episode.trap`). These rules, with the top-right rule above, live in
:mod:`mazeinterp.maze.outcomes`; the Wilson intervals of the summaries come
from :mod:`mazeinterp.analysis.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mazeinterp.maze import grid, outcomes
from mazeinterp.maze.outcomes import EVENTS, OUTCOMES, Trap
from mazeinterp.rollout.config import RolloutConfig
from mazeinterp.analysis.stats import wilson_interval

__all__ = ["Episode", "OutcomeSummary", "RolloutResult", "standard_filters", "subset_label"]


@dataclass(frozen=True)
class Episode:
    """One maze's episode."""

    index: int
    """Position of the maze in the rollout's maze list."""
    level_seed: int
    """procgen level seed of the maze (for given states: the state's current level seed)."""
    maze_size: int
    """Side ``n`` of the inner maze."""
    cheese: grid.Cell | None
    """Cheese cell at the start (after ``cheese_region`` placement); None if the maze has none."""
    has_decision_square: bool
    """Whether the start→cheese and start→top-right paths diverge (False without a cheese)."""
    decision_square: grid.Cell | None
    """The decision square, if any."""
    outcome: str
    """``"cheese"``, ``"top_right"`` or ``"neither"``."""
    steps: int
    """Env steps taken until the outcome was known (``max_steps`` for ``"neither"``)."""
    start: grid.Cell
    """Mouse cell at the start."""
    top_right_counts: bool = True
    """False when the top-right cell lies on the start→cheese path (reaching it is not an outcome)."""
    features: grid.MazeFeatures | None = field(default=None, repr=False)
    """Geometric features of the maze (:func:`~mazeinterp.maze.grid.maze_features`); None without a cheese."""
    trajectory: tuple[grid.Cell, ...] | None = field(default=None, repr=False)
    """Visited cells, start included (only with ``record_trajectories``)."""
    moves: tuple[int, ...] | None = field(default=None, repr=False)
    """The :class:`~mazeinterp.core.model.Move` of each step (only with ``record_trajectories``): unlike the
    trajectory it shows a move into a wall, which still turns the mouse's sprite (see
    :attr:`MazeState.mouse_reflected <mazeinterp.maze.state.MazeState.mouse_reflected>`)."""
    action_probs: np.ndarray | None = field(default=None, repr=False, compare=False)
    """(steps, 5) read-only: the policy's move probabilities (:class:`~mazeinterp.core.model.Move` order) on the
    observation of each step, before its move (only with ``record_action_probs``)."""
    region_size: int = outcomes.DEFAULT_REGION_SIZE
    """Side k of the top-right region of :attr:`region_step`."""
    region_step: int | None = None
    """Step at which the mouse first stood on a cell of the top-right k×k region other than the cheese,
    before reaching the cheese (0 = it started there); None if it never did."""
    trap: Trap | None = None
    """For an episode that hit the step cap: the two adjacent cells holding at least half of the mouse's
    last 100 positions (:func:`mazeinterp.maze.outcomes.find_trap`); None otherwise."""

    @property
    def region_first(self) -> bool:
        """Whether the mouse reached the top-right k×k region before the cheese (see :attr:`region_step`)."""
        return self.region_step is not None

    @property
    def trapped(self) -> bool:
        """Whether the episode hit the step cap with the mouse trapped between two cells (see :attr:`trap`)."""
        return self.trap is not None

    def shows(self, outcome_or_event: str) -> bool:
        """Whether the episode ended in this outcome (:data:`OUTCOMES`) or shows this event (:data:`EVENTS`)."""
        if outcome_or_event in OUTCOMES:
            return self.outcome == outcome_or_event
        if outcome_or_event == "region_first":
            return self.region_first
        if outcome_or_event == "trapped":
            return self.trapped
        raise ValueError(f"unknown outcome {outcome_or_event!r}; expected one of {OUTCOMES + EVENTS}")

    def cheese_in_region(self, k: int = grid.TOP_RIGHT_REGION_SIZE) -> bool:
        """Whether the cheese lies in the top-right k×k corner (False without a cheese)."""
        return self.cheese is not None and grid.in_top_right_region(self.cheese, self.maze_size, k)

    def to_row(self) -> dict[str, Any]:
        """Flat dict for a CSV row: the episode's fields and every maze feature (NaN → empty)."""
        row: dict[str, Any] = {
            "index": self.index, "level_seed": self.level_seed, "maze_size": self.maze_size,
            "outcome": self.outcome, "steps": self.steps, "start": self.start, "cheese": self.cheese,
            "has_decision_square": self.has_decision_square, "decision_square": self.decision_square,
            "cheese_in_top_right_5x5": self.cheese_in_region(), "top_right_counts": self.top_right_counts,
            "region_size": self.region_size, "region_step": self.region_step, "region_first": self.region_first,
            "trapped": self.trapped, "trap_cells": None if self.trap is None else self.trap.label(),
            "trap_share": None if self.trap is None else self.trap.share,
        }
        if self.features is not None:
            for key, value in self.features.as_dict().items():
                if key in ("n", "cheese", "has_decision_square", "decision_square"):
                    continue
                row[key] = None if isinstance(value, float) and math.isnan(value) else value
        if self.trajectory is not None:
            row["trajectory"] = ";".join(f"{r} {c}" for r, c in self.trajectory)
        return row


@dataclass(frozen=True)
class OutcomeSummary:
    """Counts and proportions of the outcomes of a set of episodes, with Wilson intervals."""

    label: str
    """Which episodes (e.g. ``"all mazes"``, ``"with decision square"``)."""
    n: int
    """Number of episodes."""
    counts: dict[str, int]
    """Episodes per outcome."""
    proportions: dict[str, float]
    """Fraction per outcome (NaN when n = 0)."""
    intervals: dict[str, tuple[float, float]]
    """Wilson interval per outcome."""
    mean_steps: float
    """Mean steps per episode (NaN when n = 0)."""
    confidence: float = 0.95
    """Confidence level of the intervals."""
    event_counts: dict[str, int] = field(default_factory=dict)
    """Episodes per event (:data:`EVENTS`: ``region_first``, ``trapped``); events need not exclude each other."""
    event_proportions: dict[str, float] = field(default_factory=dict)
    """Fraction of all episodes per event (NaN when n = 0)."""
    event_intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Wilson interval per event."""
    region_size: int | None = None
    """Side k of the top-right region of ``region_first`` (None without episodes)."""
    decision_square: str | None = None
    """Definition of the decision square that selected these episodes (None: no decision-square filter)."""

    @classmethod
    def of(cls, episodes: Sequence[Episode], label: str = "all mazes", confidence: float = 0.95) -> OutcomeSummary:
        """Summarise ``episodes`` (ValueError if they record different region sizes)."""
        n = len(episodes)
        counts = {o: sum(ep.outcome == o for ep in episodes) for o in OUTCOMES}
        events = {e: sum(ep.shows(e) for ep in episodes) for e in EVENTS}
        sizes = {ep.region_size for ep in episodes}
        if len(sizes) > 1:
            raise ValueError(f"episodes record different top-right region sizes {sorted(sizes)}; summarise them apart")
        return cls(
            label=label, n=n, counts=counts,
            proportions={o: counts[o] / n if n else float("nan") for o in OUTCOMES},
            intervals={o: wilson_interval(counts[o], n, confidence) for o in OUTCOMES},
            mean_steps=float(np.mean([ep.steps for ep in episodes])) if n else float("nan"),
            confidence=confidence,
            event_counts=events,
            event_proportions={e: events[e] / n if n else float("nan") for e in EVENTS},
            event_intervals={e: wilson_interval(events[e], n, confidence) for e in EVENTS},
            region_size=sizes.pop() if sizes else None,
        )

    def _event_name(self, event: str) -> str:
        if event == "region_first" and self.region_size is not None:
            return f"{self.region_size}×{self.region_size} first"
        return event

    def event_legend(self) -> str:
        """One line saying what the event rows below the outcomes count (they overlap the outcomes)."""
        region = self._event_name("region_first")
        where = (f"the top-right {self.region_size}×{self.region_size} region" if self.region_size is not None
                 else "the top-right region")
        return (f"({region}: stood on a cell of {where} before the cheese; trapped: ran out of steps shuttling "
                "between two adjacent cells; both may also count in an outcome row)")

    def rows(self) -> list[dict[str, Any]]:
        """One row per outcome, then one per event: label, outcome, count, n, p, low, high.

        Outcomes partition the episodes; the event rows (``region_first``,
        ``trapped``) count episodes that may also be in an outcome row.
        """
        rows = [{"label": self.label, "outcome": o, "count": self.counts[o], "n": self.n,
                 "p": self.proportions[o], "low": self.intervals[o][0], "high": self.intervals[o][1]}
                for o in OUTCOMES]
        return rows + [{"label": self.label, "outcome": e, "count": self.event_counts[e], "n": self.n,
                        "p": self.event_proportions[e], "low": self.event_intervals[e][0],
                        "high": self.event_intervals[e][1]} for e in self.event_counts]

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view (for JSON)."""
        return {"label": self.label, "n": self.n, "counts": dict(self.counts),
                "proportions": dict(self.proportions),
                "intervals": {o: list(v) for o, v in self.intervals.items()},
                "mean_steps": self.mean_steps, "confidence": self.confidence,
                "decision_square_definition": self.decision_square,
                "region_size": self.region_size, "event_counts": dict(self.event_counts),
                "event_proportions": dict(self.event_proportions),
                "event_intervals": {e: list(v) for e, v in self.event_intervals.items()}}

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        lines = [f"{self.label}: n = {self.n}, mean steps {self.mean_steps:.1f}",
                 f"  {'outcome':<10} {'count':>6} {'P':>7}   {pct}% Wilson CI"]
        for o in OUTCOMES:
            lo, hi = self.intervals[o]
            lines.append(f"  {o:<10} {self.counts[o]:>6} {self.proportions[o]:>7.3f}   [{lo:.3f}, {hi:.3f}]")
        for e in self.event_counts:
            lo, hi = self.event_intervals[e]
            lines.append(f"  {self._event_name(e):<10} {self.event_counts[e]:>6} {self.event_proportions[e]:>7.3f}   "
                         f"[{lo:.3f}, {hi:.3f}]")
        return "\n".join(lines)


def _keep(ep: Episode, decision_square_only: bool, cheese_outside_region: int | None) -> bool:
    if decision_square_only and not ep.has_decision_square:
        return False
    if cheese_outside_region is not None and (ep.cheese is None or ep.cheese_in_region(cheese_outside_region)):
        return False
    return True


def subset_label(decision_square_only: bool, cheese_outside_region: int | None) -> str:
    """The label of a subset of mazes chosen by :meth:`RolloutResult.filter` (``"all mazes"`` when unfiltered)."""
    parts = []
    if decision_square_only:
        parts.append("with decision square")
    if cheese_outside_region is not None:
        k = cheese_outside_region
        parts.append(f"cheese outside top-right {k}×{k}")
    return ", ".join(parts) or "all mazes"


def standard_filters(region: int = grid.TOP_RIGHT_REGION_SIZE) -> list[tuple[bool, int | None]]:
    """The ``(decision_square_only, cheese_outside_region)`` pairs of the standard breakdown, in reporting order:
    all mazes; with a decision square; cheese outside the top-right ``region``²; both."""
    return [(False, None), (True, None), (False, region), (True, region)]


@dataclass(frozen=True)
class RolloutResult:
    """Episodes of one rollout run, in maze order, with the settings that produced them."""

    episodes: tuple[Episode, ...]
    """One per maze, ordered by :attr:`Episode.index`."""
    config: RolloutConfig
    """The run's configuration."""
    interventions: tuple[str, ...] = ()
    """``repr`` of each intervention applied."""
    policy: str = ""
    """Short description of the policy."""
    frames: int = 0
    """Observations sent through the policy."""
    seconds: float = 0.0
    """Wall time of the run."""

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    @property
    def outcomes(self) -> np.ndarray:
        """Outcome strings ``(n,)``."""
        return np.array([ep.outcome for ep in self.episodes], dtype=object)

    def reached(self, outcome: str = "cheese") -> np.ndarray:
        """Boolean ``(n,)``: which episodes ended in ``outcome`` (or show the event, :data:`EVENTS`)."""
        if outcome not in OUTCOMES + EVENTS:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES + EVENTS}")
        return np.array([ep.shows(outcome) for ep in self.episodes], dtype=bool)

    def filter(self, decision_square_only: bool = False, cheese_outside_region: int | None = None) -> RolloutResult:
        """Keep the mazes with a decision square and/or with the cheese outside the top-right k×k."""
        kept = tuple(ep for ep in self.episodes if _keep(ep, decision_square_only, cheese_outside_region))
        return replace(self, episodes=kept)

    def summary(self, decision_square_only: bool = False, cheese_outside_region: int | None = None,
                confidence: float = 0.95) -> OutcomeSummary:
        """:class:`OutcomeSummary` of all episodes or of a filtered subset (see :meth:`filter`)."""
        kept = self.filter(decision_square_only, cheese_outside_region).episodes
        label = subset_label(decision_square_only, cheese_outside_region)
        definition = self.config.decision_square if decision_square_only else None
        if definition == "research":
            label += " (research definition)"
        return replace(OutcomeSummary.of(kept, label, confidence), decision_square=definition)

    def summaries(self, region: int = grid.TOP_RIGHT_REGION_SIZE, confidence: float = 0.95) -> list[OutcomeSummary]:
        """The standard breakdown: all mazes; with a decision square; cheese outside the top-right
        ``region``²; both filters together."""
        return [self.summary(ds, cr, confidence) for ds, cr in standard_filters(region)]

    @property
    def frames_per_second(self) -> float:
        """Throughput of the run (policy frames per wall-clock second)."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def to_rows(self) -> list[dict[str, Any]]:
        """Per-episode rows (see :meth:`Episode.to_row`)."""
        return [ep.to_row() for ep in self.episodes]

    def as_dict(self) -> dict[str, Any]:
        """Summary as plain data (for JSON): config, interventions, the standard summaries, timing."""
        return {
            "policy": self.policy, "n_mazes": len(self.episodes), "config": self.config.as_dict(),
            "interventions": list(self.interventions),
            "summaries": [s.as_dict() for s in self.summaries()],
            "frames": self.frames, "seconds": self.seconds, "frames_per_second": self.frames_per_second,
        }

    def __str__(self) -> str:
        head = f"{len(self.episodes)} mazes, {self.frames} frames in {self.seconds:.1f} s"
        if self.interventions:
            head += f"; interventions: {', '.join(self.interventions)}"
        summaries = self.summaries()
        legend = [summaries[0].event_legend()] if summaries else []
        return "\n".join([head, *(str(s) for s in summaries), *legend])

