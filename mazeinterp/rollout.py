"""Batched rollouts of a maze policy: an outcome per maze, summaries with intervals, paired comparisons.

The central behavioural question of the goal-misgeneralization maze agent is
how often it reaches the cheese, and how often it goes to the top-right corner
instead -- with and without our edits. :func:`run_rollouts` answers it for many
mazes at once::

    from mazeinterp.rollout import RolloutConfig, run_rollouts, compare
    result = run_rollouts(policy, range(200), config=RolloutConfig(seed=0))
    print(result)                                   # counts, P(outcome), Wilson 95% CIs
    print(result.summary(decision_square_only=True))
    comparison = compare(policy, range(200), (), [ZeroAblate(hook, channels=(7,))])
    print(comparison)                               # paired difference in P(cheese)

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
region (:attr:`Episode.region_step`; k is :attr:`RolloutConfig.region_size`,
default 5) and, when it hit the step cap, whether it was trapped between two
adjacent cells (:attr:`Episode.trap`). These rules, with the top-right rule
above, live in :mod:`mazeinterp.maze.outcomes`.

An env stops being stepped through the network as soon as its outcome is
known; its slot in the batch is refilled with the next maze, so the batch stays
full until the mazes run out.

How it runs
-----------
* The mouse's cell is tracked on the known grid (procgen's maze moves the mouse
  one cell per step when the target cell is open; the diagonal actions move
  left/right), so no state is read back while stepping. The tracked cell is
  checked against procgen's reward every step, and against the full state when
  ``check_positions`` is set.
* The episode clock of every start state is reset (``cur_time = 0``) and
  procgen's timeout is raised above ``max_steps`` when needed, so the step cap
  is exactly ``max_steps``.
* Randomness is per maze: episode ``i`` draws its action-sampling uniforms (and
  its cheese placement, with ``cheese_region``) from a generator seeded by
  ``(config.seed, i)`` (or ``(config.seed, streams[i])`` when ``run_rollouts`` is
  given ``streams``). The same command gives the same numbers whatever the
  batch size, and :func:`compare` runs both conditions on the same mazes with
  the same random numbers (common random numbers), which tightens the paired
  difference. Actions are sampled by inverting the CDF of the policy's
  15-action softmax at the maze's next uniform.
* Forward passes run in ``torch.inference_mode`` on channels-last tensors (about
  2× faster for the IMPALA CNN on a CPU); only the active envs' observations are
  sent through the network.

Policies
--------
Anything callable on the network input ``(B, 3, 64, 64)`` float that returns
logits ``(B, 15)`` (or a tuple whose first element is the logits, like
:class:`~mazeinterp.model.ImpalaPolicy`) is a :class:`Policy`. A
:class:`ScriptedPolicy` instead decides from the envs' current maze states;
:class:`ShortestPathPolicy` and :class:`NoopPolicy` are two such baselines.
Interventions (:class:`mazeinterp.interventions.Intervention` objects: ablations,
added vectors, clamps, patches…) apply at every forward pass through
:func:`mazeinterp.hooks.intervene`; one with a ``set_episode_indices(indices)``
method is told, before each forward pass, which maze (index into the rollout's
maze list) each batch row shows -- see :class:`EpisodeVectors` for per-maze
steering vectors (each maze's own cheese vector, the published recipe).
"""

from __future__ import annotations

import abc
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mazeinterp.interventions import Intervention, _as_tensor
from mazeinterp.maze import grid, outcomes
from mazeinterp.maze.outcomes import OUTCOMES, Trap
from mazeinterp.maze.state import WALL, MazeState
from mazeinterp.maze.moves import ACTION_TO_MOVE, MOVE_DELTAS, MOVE_TO_ACTION, NUM_ACTIONS, Move, move_from_delta
from mazeinterp.stats import PairedDifference, paired_difference, wilson_interval

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from mazeinterp.maze.env import MazeEnv

__all__ = [
    "EVENTS",
    "OUTCOMES",
    "TEST_SEED_START",
    "Comparison",
    "Episode",
    "EpisodeVectors",
    "NoopPolicy",
    "OutcomeSummary",
    "Policy",
    "RolloutConfig",
    "RolloutInterrupted",
    "RolloutResult",
    "ScriptedPolicy",
    "ShortestPathPolicy",
    "compare",
    "load_mazes",
    "move_logits",
    "place_cheese",
    "run_rollouts",
    "top_right_counts",
]

EVENTS: tuple[str, ...] = ("region_first", "trapped")
"""What an episode may show besides its outcome: it reached the top-right region before the cheese
(:attr:`Episode.region_first`); it hit the step cap trapped between two cells (:attr:`Episode.trapped`)."""

TEST_SEED_START = 1_000_000
"""First level seed of the standard-distribution test mazes of the scripts and reports (far from seed 0)."""

NOOP_ACTION = int(MOVE_TO_ACTION[Move.NOOP])
_MAX_LEVEL_SEED = 2**31 - 1


# --------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class RolloutConfig:
    """How :func:`run_rollouts` runs. The mazes themselves are its second argument."""

    greedy: bool = False
    """Take the most probable action instead of sampling from the policy."""
    max_steps: int = 500
    """Step cap per episode; still undecided after this many steps → outcome ``"neither"``."""
    seed: int = 0
    """Seeds action sampling and cheese placement; maze ``i`` uses the stream ``(seed, i)``."""
    batch_size: int = 64
    """Number of envs stepped together (and the largest batch sent through the network)."""
    device: str | None = None
    """Torch device of the forward passes; None → the policy's own device (CPU for scripted policies)."""
    cheese_region: int | None = None
    """If ``k``, move each maze's cheese to a random open cell of the top-right k×k corner first
    (the training distribution of the published agent is k = 5); None keeps the maze's cheese."""
    record_trajectories: bool = False
    """Keep every episode's list of visited cells (start included) in :attr:`Episode.trajectory`."""
    record_action_probs: bool = False
    """Keep every episode's move probabilities at each step in :attr:`Episode.action_probs` (for animations)."""
    progress: bool = True
    """Report progress (finished mazes, frames/s) at least every 2 s: a tqdm bar on a terminal or in
    Jupyter, else a line on stderr (:func:`mazeinterp.progress.progress_bar`). False: silent."""
    threads: int | None = None
    """Torch CPU threads for the forward passes; None → :func:`mazeinterp.threads.default_threads` of the
    batch (one thread for small batches, which stays fast on a busy machine). Restored afterwards."""
    channels_last: bool = True
    """Run the network in the channels-last memory format (faster convolutions on CPU)."""
    check_positions: bool = False
    """After every step, read each active env's state and check the tracked mouse cell (slow; tests)."""
    region_size: int = outcomes.DEFAULT_REGION_SIZE
    """Side k of the top-right region whose first arrival each episode records (:attr:`Episode.region_step`)."""
    decision_square: str = "mazeinterp"
    """Definition of the decision square that episodes record and summaries filter on: ``"mazeinterp"`` or
    ``"research"`` (the published research code's; see :func:`mazeinterp.maze.grid.decision_square`)."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "region_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"RolloutConfig.{name} must be a positive int, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"RolloutConfig.seed must be a non-negative int, got {self.seed!r}")
        grid.check_decision_square_definition(self.decision_square)
        if self.cheese_region is not None and (
            isinstance(self.cheese_region, bool) or not isinstance(self.cheese_region, (int, np.integer))
            or self.cheese_region < 1
        ):
            raise ValueError(f"RolloutConfig.cheese_region must be None or a positive int, got {self.cheese_region!r}")
        from mazeinterp.threads import check_threads

        try:
            check_threads(self.threads)
        except ValueError as exc:
            raise ValueError(f"RolloutConfig.{exc}") from None

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view (for JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --------------------------------------------------------------------------------------
# policies


@runtime_checkable
class Policy(Protocol):
    """A pixel policy: network input ``(B, 3, 64, 64)`` float in [0, 1] → logits ``(B, 15)``.

    A tuple return value (e.g. ImpalaPolicy's ``(logits, value)``) is allowed;
    its first element must be the logits.
    """

    def __call__(self, obs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Return action logits for a batch of observations."""
        ...


class ScriptedPolicy(abc.ABC):
    """A policy that decides from the envs' current maze states instead of pixels.

    :func:`run_rollouts` reads the state of every active env before each step
    (about half a millisecond per env) and passes them in batch order. Return
    logits ``(B, 15)``; ``-inf`` marks impossible actions, and
    :func:`move_logits` builds deterministic ones from moves. Sampling and the
    ``greedy`` option apply as for pixel policies.
    """

    @abc.abstractmethod
    def logits(self, states: Sequence[MazeState]) -> np.ndarray:
        """Action logits ``(len(states), 15)`` for the given current states."""


def move_logits(moves: Sequence[int] | np.ndarray) -> np.ndarray:
    """Logits ``(B, 15)`` that choose the canonical action of each :class:`~mazeinterp.model.Move` surely.

    0 at ``MOVE_TO_ACTION[move]``, ``-inf`` elsewhere.
    """
    moves = np.asarray(moves, dtype=np.int64).reshape(-1)
    logits = np.full((len(moves), NUM_ACTIONS), -np.inf, dtype=np.float32)
    logits[np.arange(len(moves)), MOVE_TO_ACTION[moves]] = 0.0
    return logits


class ShortestPathPolicy(ScriptedPolicy):
    """Walks the shortest path to a goal: the cheese, the top-right cell, or any cell.

    Args:
        goal: ``"cheese"``, ``"top_right"``, or a fixed ``(row, col)`` cell. With
            ``"cheese"`` and no cheese in the maze the mouse stays put.

    The moves towards a goal are computed once per maze (one BFS,
    :func:`~mazeinterp.maze.grid.oracle_moves`) and cached.
    """

    _CACHE_SIZE = 4096

    def __init__(self, goal: str | grid.Cell = "cheese") -> None:
        if isinstance(goal, str) and goal not in ("cheese", "top_right"):
            raise ValueError(f"goal must be 'cheese', 'top_right' or a (row, col) cell, got {goal!r}")
        self.goal = goal
        self._moves: dict[tuple[bytes, grid.Cell], np.ndarray] = {}

    def _goal(self, state: MazeState) -> grid.Cell | None:
        if self.goal == "cheese":
            return state.cheese
        if self.goal == "top_right":
            return grid.top_right_cell(state.maze_size)
        return (int(self.goal[0]), int(self.goal[1]))

    def _oracle(self, state: MazeState, goal: grid.Cell) -> np.ndarray:
        open_cells = state.open_cells
        key = (np.packbits(open_cells).tobytes() + bytes([state.maze_size]), goal)
        moves = self._moves.get(key)
        if moves is None:
            if len(self._moves) >= self._CACHE_SIZE:
                self._moves.clear()
            moves = self._moves[key] = grid.oracle_moves(open_cells, goal)
        return moves

    def logits(self, states: Sequence[MazeState]) -> np.ndarray:
        """Deterministic logits of the first move of the shortest path of each state's mouse."""
        moves = []
        for state in states:
            goal = self._goal(state)
            if goal is None:
                moves.append(Move.NOOP)
                continue
            moves.append(move_from_delta(self._oracle(state, goal)[state.mouse]))
        return move_logits(moves)

    def __repr__(self) -> str:
        return f"ShortestPathPolicy(goal={self.goal!r})"


class NoopPolicy(ScriptedPolicy):
    """Never moves (every episode ends ``"neither"``)."""

    def logits(self, states: Sequence[MazeState]) -> np.ndarray:
        """Logits that always choose NOOP."""
        return move_logits([Move.NOOP] * len(states))

    def __repr__(self) -> str:
        return "NoopPolicy()"


# --------------------------------------------------------------------------------------
# a per-maze intervention


@dataclass(frozen=True, eq=False, repr=False)
class EpisodeVectors(Intervention):
    """Add a different vector to each maze's activations at one hook point (per-maze steering).

    ``vectors[i]`` (shape of the hook point, e.g. ``(128, 16, 16)``) belongs to
    maze ``i`` of the rollout's maze list; inside :func:`run_rollouts` each
    batch row gets its own maze's vector, times ``coefficient``. This is the
    published recipe of subtracting each maze's own cheese vector
    (``coefficient=-1``). Outside a rollout, call :meth:`set_episode_indices`
    yourself before a forward pass. ``channels`` / ``pixels`` restrict the
    edit as for every :class:`~mazeinterp.interventions.Intervention`.

    Args:
        hook: hook point name, e.g. ``"embedder.block2.res1.resadd_out"``.
        vectors: tensor ``(num_mazes, *hook_shape)``.
        coefficient: multiplier (−1 subtracts).
    """

    vectors: Any = None
    coefficient: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        vectors = _as_tensor(self.vectors, "vectors")
        if vectors.ndim < 2:
            raise ValueError(f"vectors must be (num_mazes, *hook_shape), got shape {tuple(vectors.shape)}")
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "coefficient", float(self.coefficient))
        object.__setattr__(self, "_rows", None)

    def set_episode_indices(self, indices: np.ndarray | Sequence[int]) -> None:
        """Select the maze of every row of the next forward pass."""
        import torch

        rows = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= self.vectors.shape[0]):
            raise IndexError(f"{self}: maze index out of range for {self.vectors.shape[0]} vectors")
        object.__setattr__(self, "_rows", rows)

    def edit(self, act: Tensor) -> Tensor:
        """``act + coefficient · vectors[rows]`` (shapes ``(B, *hook_shape)``)."""
        rows = self._rows  # type: ignore[attr-defined]
        if rows is None:
            raise RuntimeError("EpisodeVectors needs set_episode_indices() before a forward pass")
        if len(rows) != act.shape[0]:
            raise ValueError(f"{len(rows)} episode indices for a batch of {act.shape[0]}")
        vec = self.vectors.index_select(0, rows).to(device=act.device, dtype=act.dtype)
        return act + self.coefficient * vec

    def _params(self) -> list[str]:
        return [f"vectors={tuple(self.vectors.shape)}", f"coefficient={self.coefficient:g}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if tuple(self.vectors.shape[1:]) != tuple(shape):
            raise ValueError(f"{self}: vectors have per-maze shape {tuple(self.vectors.shape[1:])}, "
                             f"hook point {self.hook!r} has {tuple(shape)}")


# --------------------------------------------------------------------------------------
# results


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
    action_probs: np.ndarray | None = field(default=None, repr=False, compare=False)
    """(steps, 5) read-only: the policy's move probabilities (:class:`~mazeinterp.model.Move` order) on the
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


def _filter_label(decision_square_only: bool, cheese_outside_region: int | None) -> str:
    parts = []
    if decision_square_only:
        parts.append("with decision square")
    if cheese_outside_region is not None:
        k = cheese_outside_region
        parts.append(f"cheese outside top-right {k}×{k}")
    return ", ".join(parts) or "all mazes"


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
        label = _filter_label(decision_square_only, cheese_outside_region)
        definition = self.config.decision_square if decision_square_only else None
        if definition == "research":
            label += " (research definition)"
        return replace(OutcomeSummary.of(kept, label, confidence), decision_square=definition)

    def summaries(self, region: int = grid.TOP_RIGHT_REGION_SIZE, confidence: float = 0.95) -> list[OutcomeSummary]:
        """The standard breakdown: all mazes; with a decision square; cheese outside the top-right
        ``region``²; both filters together."""
        return [self.summary(ds, cr, confidence)
                for ds, cr in ((False, None), (True, None), (False, region), (True, region))]

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
        return "\n".join([head, *(str(s) for s in self.summaries())])


@dataclass(frozen=True)
class Comparison:
    """Two rollouts of the same mazes (same random numbers): a baseline and a treatment."""

    baseline: RolloutResult
    """Rollout without the treatment's interventions."""
    treatment: RolloutResult
    """Rollout with them."""

    def __post_init__(self) -> None:
        mismatch = pairing_mismatch(self.baseline, self.treatment)
        if mismatch is not None:
            raise ValueError(f"baseline and treatment are not paired: {mismatch}")

    def filter(self, decision_square_only: bool = False, cheese_outside_region: int | None = None) -> Comparison:
        """Both rollouts restricted to the same subset of mazes (the filters depend only on the maze)."""
        return Comparison(self.baseline.filter(decision_square_only, cheese_outside_region),
                          self.treatment.filter(decision_square_only, cheese_outside_region))

    def difference(self, outcome: str = "cheese", decision_square_only: bool = False,
                   cheese_outside_region: int | None = None, method: str = "newcombe",
                   confidence: float = 0.95) -> PairedDifference:
        """Paired difference P_treatment(outcome) − P_baseline(outcome) with an interval
        (:func:`mazeinterp.stats.paired_difference`)."""
        pair = self.filter(decision_square_only, cheese_outside_region)
        if not len(pair.baseline):
            raise ValueError(f"no mazes left after the filter ({_filter_label(decision_square_only, cheese_outside_region)})")
        return paired_difference(pair.baseline.reached(outcome), pair.treatment.reached(outcome),
                                 confidence=confidence, method=method)

    def rows(self) -> list[dict[str, Any]]:
        """Per-maze rows: the maze's columns and both outcomes side by side."""
        rows = []
        for base, treat in zip(self.baseline.episodes, self.treatment.episodes):
            row = base.to_row()
            for key in ("outcome", "steps", "trajectory"):
                if key in row:
                    row[f"baseline_{key}"] = row.pop(key)
            row["treatment_outcome"] = treat.outcome
            row["treatment_steps"] = treat.steps
            if treat.trajectory is not None:
                row["treatment_trajectory"] = ";".join(f"{r} {c}" for r, c in treat.trajectory)
            rows.append(row)
        return rows

    def _breakdown(self, region: int = grid.TOP_RIGHT_REGION_SIZE) -> list[tuple[bool, int | None]]:
        return [(False, None), (True, None), (False, region), (True, region)]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON): both rollouts' summaries and the paired differences of every outcome."""
        out: dict[str, Any] = {"baseline": self.baseline.as_dict(), "treatment": self.treatment.as_dict(),
                               "differences": []}
        for ds, cr in self._breakdown():
            if not len(self.baseline.filter(ds, cr)):
                continue
            for outcome in OUTCOMES + EVENTS:
                d = self.difference(outcome, ds, cr)
                out["differences"].append({"label": _filter_label(ds, cr), "outcome": outcome, **d.as_dict()})
        return out

    def __str__(self) -> str:
        lines = []
        for ds, cr in self._breakdown():
            base = self.baseline.summary(ds, cr)
            if not base.n:
                continue
            treat = self.treatment.summary(ds, cr)
            lines.append(f"{base.label}: n = {base.n}")
            lines.append(f"  {'outcome':<10} {'baseline':>13} {'treatment':>13}   paired difference (95% CI)")
            for o in OUTCOMES:
                d = self.difference(o, ds, cr)
                lines.append(
                    f"  {o:<10} {base.counts[o]:>5} ({base.proportions[o]:.3f}) "
                    f"{treat.counts[o]:>5} ({treat.proportions[o]:.3f})   "
                    f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
                )
        if self.treatment.interventions:
            lines.append(f"treatment: {', '.join(self.treatment.interventions)}")
        return "\n".join(lines)


_UNPAIRED_CONFIG_OK = frozenset({"progress", "check_positions", "record_trajectories", "batch_size", "device",
                                 "channels_last"})
"""RolloutConfig fields that do not change which maze or which random numbers an episode gets."""


def pairing_mismatch(baseline: RolloutResult, treatment: RolloutResult) -> str | None:
    """The first difference that keeps two rollouts from being a paired comparison, or None.

    Paired means: the same settings that decide mazes and random numbers
    (seed, max_steps, greedy, cheese_region) and, episode by episode, the same
    maze index, level seed, maze size, start cell and cheese cell.
    """
    for f in fields(RolloutConfig):
        a, b = getattr(baseline.config, f.name), getattr(treatment.config, f.name)
        if f.name not in _UNPAIRED_CONFIG_OK and a != b:
            return f"config.{f.name} is {a!r} in the baseline, {b!r} in the treatment"
    if len(baseline.episodes) != len(treatment.episodes):
        return f"{len(baseline.episodes)} baseline episodes, {len(treatment.episodes)} treatment episodes"
    for base, treat in zip(baseline.episodes, treatment.episodes):
        for name in ("index", "level_seed", "maze_size", "start", "cheese"):
            a, b = getattr(base, name), getattr(treat, name)
            if a != b:
                return f"episode {base.index}: {name} is {a!r} in the baseline, {b!r} in the treatment"
    return None


# --------------------------------------------------------------------------------------
# mazes


def _is_seed_list(mazes: Sequence[Any]) -> bool:
    return all(isinstance(m, (int, np.integer)) and not isinstance(m, bool) for m in mazes)


def _check_seed(seed: int) -> int:
    seed = int(seed)
    if not 0 <= seed < _MAX_LEVEL_SEED:
        raise ValueError(f"level seed {seed} is outside procgen's range [0, 2**31 - 1)")
    return seed


class _MazeSource:
    """Start states in maze order; level seeds are generated in chunks in a helper env."""

    def __init__(self, mazes: int | Sequence[int] | Sequence[MazeState | bytes] | range, chunk: int,
                 indices: Sequence[int] | None = None) -> None:
        if isinstance(mazes, (int, np.integer)) and not isinstance(mazes, bool):
            if mazes < 1:
                raise ValueError(f"number of mazes must be positive, got {mazes}")
            mazes = range(int(mazes))
        if isinstance(mazes, np.ndarray):
            mazes = mazes.tolist()
        mazes = list(mazes)
        if not mazes:
            raise ValueError("no mazes given")
        self.is_seeds = _is_seed_list(mazes)
        if self.is_seeds:
            self.items: list[Any] = [_check_seed(s) for s in mazes]
        else:
            states = []
            for i, m in enumerate(mazes):
                if isinstance(m, MazeState):
                    states.append(m)
                elif isinstance(m, (bytes, bytearray)):
                    states.append(MazeState.from_bytes(bytes(m)))
                else:
                    raise TypeError(f"maze {i} is a {type(m).__name__}; give level seeds (ints) or MazeStates")
            self.items = states
        self.chunk = chunk
        self.order = _check_indices(indices, len(self.items))
        """Positions in ``items`` to run, in order (all of them unless ``indices`` was given)."""
        self._next = 0
        self._loaded: list[MazeState] = []
        self._env: MazeEnv | None = None

    def __len__(self) -> int:
        return len(self.order)

    def next(self) -> tuple[int, MazeState] | None:
        if self._next >= len(self.order):
            return None
        position = self._next
        index = self.order[position]
        self._next += 1
        if not self.is_seeds:
            return index, self.items[index]
        if not self._loaded:
            self._load(position)
        return index, self._loaded.pop(0)

    def _load(self, start: int) -> None:
        from mazeinterp.maze.env import MazeEnv

        seeds = [self.items[i] for i in self.order[start : start + self.chunk]]
        if self._env is None:
            self._env = MazeEnv(min(self.chunk, len(self.order)))
        self._env.load_seeds(seeds, indices=range(len(seeds)))
        self._loaded = [self._env.get_state(i) for i in range(len(seeds))]

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def _check_indices(indices: Sequence[int] | None, count: int) -> list[int]:
    """``indices`` as a list of distinct positions in ``[0, count)`` (all positions when None)."""
    if indices is None:
        return list(range(count))
    order = [int(i) for i in indices]
    bad = [i for i in order if not 0 <= i < count]
    if bad:
        raise ValueError(f"maze index {bad[0]} is outside the {count} mazes given")
    if len(set(order)) != len(order):
        raise ValueError("maze indices must be distinct")
    return order


def load_mazes(seeds: Sequence[int] | range, batch_size: int = 64) -> list[MazeState]:
    """Start states of the given level seeds (same mazes as ``MazeEnv.from_seeds``), in one helper env."""
    source = _MazeSource(list(seeds), batch_size)
    try:
        out = []
        while (item := source.next()) is not None:
            out.append(item[1])
        return out
    finally:
        source.close()


# --------------------------------------------------------------------------------------
# the runner


@dataclass
class _Maze:
    """A maze prepared for a slot: start state and the arrays the tracker needs."""

    index: int
    state: MazeState
    cheese: grid.Cell | None
    features: grid.MazeFeatures | None
    open_world: np.ndarray  # (W + 2, W + 2) bool, padded by one wall
    top_right_counts: bool
    offset: int  # inner (row, col) + offset = padded world (row, col)
    uniforms: np.ndarray | None


def _place_cheese(index: int, state: MazeState, region: int, seed: int) -> MazeState:
    rng = np.random.default_rng([seed, index, 1])
    cells = [c for c in grid.top_right_region(state.maze_size, region) if state.open_cells[c] and c != state.mouse]
    if not cells:
        raise ValueError(f"maze {index}: no open cell for the cheese in the top-right {region}×{region} corner")
    return state.with_cheese(cells[int(rng.integers(len(cells)))])


def place_cheese(states: Sequence[MazeState], region: int, seed: int = 0) -> list[MazeState]:
    """The states with their cheese moved as ``RolloutConfig(cheese_region=region, seed=seed)`` moves it.

    Maze ``i`` gets a uniformly chosen open cell of its top-right ``region``²
    corner, drawn from the stream ``(seed, i, 1)``: use this to build
    per-maze steering vectors for exactly the mazes a rollout will show.
    """
    return [_place_cheese(i, s, region, seed) for i, s in enumerate(states)]


def top_right_counts(state: MazeState) -> bool:
    """Whether reaching the top-right cell ends an episode of this maze as ``"top_right"``.

    False when the top-right cell lies on the shortest path from the mouse to
    the cheese (passing through it is progress towards the cheese), or is the
    cheese cell; True otherwise.
    """
    return outcomes.top_right_ends_episode(state.open_cells, state.mouse, state.cheese)


def _prepare(index: int, state: MazeState, config: RolloutConfig, stream: int | None = None) -> _Maze:
    stream = index if stream is None else stream
    if config.cheese_region is not None:
        state = _place_cheese(stream, state, config.cheese_region, config.seed)
    timeout = int(state.game_field("timeout"))
    state = state.with_game_fields(cur_time=0, timeout=max(timeout, config.max_steps + 1))
    cheese = state.cheese
    try:
        features = None if cheese is None else grid.maze_features(
            state.open_cells, cheese, decision_square_definition=config.decision_square)
    except ValueError as exc:
        raise ValueError(f"maze {index} (level seed {state.level_seed}): {exc}") from None
    world = state.world_grid
    open_world = np.zeros((world.shape[0] + 2, world.shape[1] + 2), dtype=bool)
    open_world[1:-1, 1:-1] = world != WALL
    counts = top_right_counts(state)
    uniforms = None
    if not config.greedy:
        uniforms = np.random.default_rng([config.seed, stream]).random(config.max_steps)
    return _Maze(index, state, cheese, features, open_world, counts, state.margin + 1, uniforms)


def _policy_name(policy: Any) -> str:
    scale = getattr(policy, "scale", None)
    source = getattr(policy, "source", None)
    name = type(policy).__name__
    if scale is not None:
        name += f"(scale={scale})"
    if source is not None:
        name += f" from {source}"
    return name


def _module_device(policy: Any) -> torch.device | None:
    import torch

    if isinstance(policy, torch.nn.Module):
        for p in policy.parameters():
            return p.device
    return None


class _Runner:
    """Steps ``B`` envs; tracks mouse cells and outcomes in arrays; refills finished slots."""

    def __init__(self, policy: Any, source: _MazeSource, interventions: tuple[Any, ...],
                 config: RolloutConfig, device: torch.device, progress: Any,
                 streams: Sequence[int] | None = None) -> None:
        from mazeinterp.maze.env import MazeEnv

        self.policy = policy
        self.source = source
        self.config = config
        self.device = device
        self.progress = progress
        self.streams = streams
        self.scripted = isinstance(policy, ScriptedPolicy)
        self.episode_aware = [iv for iv in interventions if hasattr(iv, "set_episode_indices")]
        self.B = min(config.batch_size, len(source))
        self.env = MazeEnv(self.B)
        B = self.B
        world = 25 + 2
        self.mazes: list[_Maze | None] = [None] * B
        self.slot_index = np.full(B, -1, dtype=np.int64)
        self.open_world = np.zeros((B, world, world), dtype=bool)
        self.pos = np.zeros((B, 2), dtype=np.int64)
        self.cheese = np.full((B, 2), -1, dtype=np.int64)
        self.top_right = np.zeros((B, 2), dtype=np.int64)
        self.top_right_counts = np.zeros(B, dtype=bool)
        self.steps = np.zeros(B, dtype=np.int64)
        self.uniforms = np.zeros((B, config.max_steps), dtype=np.float64)
        self.trajectories: list[list[grid.Cell]] = [[] for _ in range(B)]
        self.action_probs: list[list[np.ndarray]] = [[] for _ in range(B)]
        self.maze_size = np.zeros(B, dtype=np.int64)
        self.offset = np.zeros(B, dtype=np.int64)
        self.region_step = np.full(B, -1, dtype=np.int64)
        # the inner cells after each of the last TRAP_WINDOW steps, written round-robin
        self.recent = np.zeros((B, outcomes.TRAP_WINDOW, 2), dtype=np.int64)
        self.starts: list[grid.Cell] = [(0, 0)] * B
        self.episodes: dict[int, Episode] = {}
        self.frames = 0
        self.started = self._last_report = time.perf_counter()
        self._move_deltas = MOVE_DELTAS.astype(np.int64)
        self._action_moves = ACTION_TO_MOVE.astype(np.int64)

    def close(self) -> None:
        self.env.close()

    # --- slots ---

    def _fill(self, slot: int) -> bool:
        item = self.source.next()
        if item is None:
            self.slot_index[slot] = -1
            self.mazes[slot] = None
            return False
        maze = _prepare(item[0], item[1], self.config,
                        None if self.streams is None else int(self.streams[item[0]]))
        state = maze.state
        if state.world.shape[0] + 2 != self.open_world.shape[1]:
            raise ValueError(f"maze {maze.index}: world of size {state.world.shape} is not 25×25")
        self.env.set_state(slot, state)
        self.mazes[slot] = maze
        self.slot_index[slot] = maze.index
        self.open_world[slot] = maze.open_world
        mouse = state.mouse
        self.starts[slot] = mouse
        self.pos[slot] = (mouse[0] + maze.offset, mouse[1] + maze.offset)
        n = state.maze_size
        self.maze_size[slot], self.offset[slot] = n, maze.offset
        starts_in_region = outcomes.in_top_right_region(np.array([mouse]), n, self.config.region_size)[0]
        self.region_step[slot] = 0 if starts_in_region and mouse != maze.cheese else -1
        self.top_right[slot] = (maze.offset, n - 1 + maze.offset)
        self.top_right_counts[slot] = maze.top_right_counts
        self.cheese[slot] = (-1, -1) if maze.cheese is None else (maze.cheese[0] + maze.offset,
                                                                  maze.cheese[1] + maze.offset)
        self.steps[slot] = 0
        if maze.uniforms is not None:
            self.uniforms[slot] = maze.uniforms
        if self.config.record_trajectories:
            self.trajectories[slot] = [mouse]
        if self.config.record_action_probs:
            self.action_probs[slot] = []
        return True

    def _finish(self, slot: int, outcome: str) -> None:
        maze = self.mazes[slot]
        assert maze is not None
        state = maze.state
        features = maze.features
        trajectory = tuple(self.trajectories[slot]) if self.config.record_trajectories else None
        action_probs = None
        if self.config.record_action_probs:
            action_probs = np.array(self.action_probs[slot], dtype=np.float64).reshape(-1, len(Move))
            action_probs.setflags(write=False)
        steps = int(self.steps[slot])
        trap = None
        if outcome == "neither" and steps >= self.config.max_steps:
            trap = outcomes.find_trap(self.recent[slot, : min(steps, outcomes.TRAP_WINDOW)])
        region_step = int(self.region_step[slot])
        self.episodes[maze.index] = Episode(
            index=maze.index, level_seed=state.level_seed, maze_size=state.maze_size, cheese=maze.cheese,
            has_decision_square=bool(features is not None and features.has_decision_square),
            decision_square=None if features is None else features.decision_square,
            outcome=outcome, steps=int(self.steps[slot]), start=self.starts[slot],
            top_right_counts=maze.top_right_counts,
            features=features, trajectory=trajectory, action_probs=action_probs, region_size=self.config.region_size,
            region_step=None if region_step < 0 else region_step, trap=trap,
        )
        self.progress.update(1)
        self._report(force=False)

    def _report(self, force: bool) -> None:
        """Show frames/s; redraw at least once a second even while no maze finishes."""
        from mazeinterp import progress

        now = time.perf_counter()
        if now > self.started:
            refresh = force or now - self._last_report >= progress.INTERVAL_S / 2
            self.progress.set_postfix_str(f"{self.frames / (now - self.started):.1f} frames/s", refresh=refresh)
            if refresh:
                self._last_report = now

    # --- policy ---

    def _logits(self, active: np.ndarray, obs: np.ndarray) -> Tensor:
        import torch

        from mazeinterp.model import obs_to_tensor

        if self.scripted:
            states = [self.env.get_state(int(s)) for s in active]
            logits = self.policy.logits(states)
            return torch.as_tensor(np.asarray(logits, dtype=np.float32))
        x = obs_to_tensor(obs[active], device=self.device)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.episode_aware:
            rows = self.slot_index[active]
            for iv in self.episode_aware:
                iv.set_episode_indices(rows)
        out = self.policy(x)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        if tuple(logits.shape) != (len(active), NUM_ACTIONS):
            raise ValueError(f"policy returned logits of shape {tuple(logits.shape)}, "
                             f"expected ({len(active)}, {NUM_ACTIONS})")
        return logits

    def _actions(self, logits: Tensor, active: np.ndarray) -> np.ndarray:
        # in numpy: a (k, 15) softmax is far too small for torch's thread pool to pay off
        z = logits.detach().float().cpu().numpy().astype(np.float64)
        if self.config.greedy:
            return z.argmax(axis=1).astype(np.int64)
        z = z - z.max(axis=1, keepdims=True)
        cdf = np.exp(z).cumsum(axis=1)
        u = self.uniforms[active, self.steps[active]] * cdf[:, -1]
        # first action whose cumulative weight exceeds u (zero-probability actions are never chosen)
        actions = (cdf <= u[:, None]).sum(axis=1)
        return np.minimum(actions, NUM_ACTIONS - 1).astype(np.int64)

    # --- main loop ---

    def run(self) -> None:
        for slot in range(self.B):
            self._fill(slot)
        obs = self.env.observe()[1]
        cfg = self.config
        while True:
            active = np.flatnonzero(self.slot_index >= 0)
            if not len(active):
                break
            logits = self._logits(active, obs)
            if cfg.record_action_probs:
                self._record_action_probs(logits, active)
            actions = self._actions(logits, active)
            self.frames += len(active)
            self._report(force=False)
            full = np.full(self.B, NOOP_ACTION, dtype=np.int64)
            full[active] = actions
            reward, obs, first = self.env.step(full)

            # track the mouse on the grid
            deltas = self._move_deltas[self._action_moves[actions]]
            target = self.pos[active] + deltas
            ok = self.open_world[active, target[:, 0], target[:, 1]]
            new_pos = np.where(ok[:, None], target, self.pos[active])
            self.pos[active] = new_pos
            self.steps[active] += 1
            if cfg.record_trajectories:
                for slot, (r, c) in zip(active.tolist(), new_pos.tolist()):
                    off = self.mazes[slot].offset  # type: ignore[union-attr]
                    self.trajectories[slot].append((r - off, c - off))

            inner = new_pos - self.offset[active, None]
            self.recent[active, (self.steps[active] - 1) % outcomes.TRAP_WINDOW] = inner
            got_cheese = reward[active] > 0
            arrived = (self.region_step[active] < 0) & ~got_cheese & outcomes.in_top_right_region(
                inner, self.maze_size[active], cfg.region_size)
            self.region_step[active[arrived]] = self.steps[active[arrived]]
            on_cheese = (new_pos == self.cheese[active]).all(axis=1)
            if (got_cheese != on_cheese).any():
                bad = int(active[np.flatnonzero(got_cheese != on_cheese)[0]])
                raise RuntimeError(
                    f"mouse tracking disagrees with procgen in slot {bad} (maze {self.slot_index[bad]}): "
                    f"reward {reward[bad]}, tracked cell {tuple(self.pos[bad] - self.mazes[bad].offset)}"  # type: ignore[union-attr]
                )
            on_top_right = ((new_pos == self.top_right[active]).all(axis=1) & self.top_right_counts[active]
                            & ~got_cheese)
            ended = first[active] & ~got_cheese  # a procgen reset without the cheese (should not happen)
            timed_out = (self.steps[active] >= cfg.max_steps) & ~got_cheese & ~on_top_right
            if cfg.check_positions:
                self._check_positions(active[~got_cheese])

            done = got_cheese | on_top_right | timed_out | ended
            if done.any():
                for j in np.flatnonzero(done).tolist():
                    slot = int(active[j])
                    outcome = "cheese" if got_cheese[j] else "top_right" if on_top_right[j] else "neither"
                    self._finish(slot, outcome)
                    self._fill(slot)
                obs = self.env.observe()[1]

    def _record_action_probs(self, logits: Tensor, active: np.ndarray) -> None:
        from mazeinterp.model import move_probs

        probs = move_probs(logits.detach().float().cpu()).numpy()
        for row, slot in enumerate(active.tolist()):
            self.action_probs[slot].append(probs[row])

    def _check_positions(self, slots: np.ndarray) -> None:
        for slot in slots.tolist():
            maze = self.mazes[slot]
            assert maze is not None
            actual = self.env.get_state(slot).mouse
            tracked = tuple(int(v) - maze.offset for v in self.pos[slot])
            if actual != tracked:
                raise RuntimeError(f"maze {maze.index}: tracked mouse cell {tracked} but procgen has {actual} "
                                   f"after step {self.steps[slot]}")


def _validate_interventions(policy: Any, interventions: tuple[Any, ...]) -> None:
    import torch

    if not interventions:
        return
    if not isinstance(policy, torch.nn.Module):
        raise ValueError("interventions need a torch policy (an ImpalaPolicy), not a "
                         f"{type(policy).__name__}")
    from mazeinterp.interventions import validate

    for iv in interventions:
        if not isinstance(iv, Intervention):
            raise ValueError(f"{iv!r} is not an intervention (see mazeinterp.interventions)")
        validate(policy, iv)


@contextlib.contextmanager
def _channels_last(policy: Any, enabled: bool) -> Iterator[None]:
    """Run the module in channels-last format; restore the original format afterwards."""
    import torch

    if not enabled or not isinstance(policy, torch.nn.Module):
        yield
        return
    convs = [p for p in policy.parameters() if p.ndim == 4]
    was_last = bool(convs) and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    policy.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if not was_last:
            policy.to(memory_format=torch.contiguous_format)


def run_rollouts(
    policy: Policy | ScriptedPolicy | Callable[..., Any],
    mazes: int | Sequence[int] | Sequence[MazeState | bytes] | range,
    interventions: Sequence[Any] = (),
    config: RolloutConfig | None = None,
    indices: Sequence[int] | None = None,
    *,
    streams: Sequence[int] | None = None,
) -> RolloutResult:
    """Run one episode per maze and classify its outcome.

    Args:
        policy: an :class:`~mazeinterp.model.ImpalaPolicy` (or any :class:`Policy`),
            or a :class:`ScriptedPolicy`.
        mazes: level seeds (a sequence of ints, or an int ``n`` for seeds
            ``0 … n-1``), or start states (:class:`MazeState` or procgen bytes).
        interventions: applied at every forward pass (torch policies only), all
            in one pass via :func:`mazeinterp.hooks.intervene`.
        config: :class:`RolloutConfig` (defaults if None).
        indices: run only these positions of ``mazes`` (each episode keeps its
            position as :attr:`Episode.index`, and so its random numbers: the
            episodes are those of the full run). Used to finish an interrupted run.
        streams: random-stream key of each maze (default: its position ``i``):
            maze ``i`` draws its action uniforms and cheese placement from
            ``(config.seed, streams[i])``. Lets a caller that splits mazes
            into pieces, or runs one maze under several conditions in one
            call, give each maze the random numbers of a single whole run.

    Returns:
        :class:`RolloutResult` with one :class:`Episode` per maze, in order.

    Raises:
        ValueError: bad mazes, an intervention that does not fit the model
            (unknown hook point, channel out of range; see
            :func:`mazeinterp.interventions.validate`), a policy that returns
            the wrong shape.
        TypeError: a maze that is neither a level seed nor a state.
        RolloutInterrupted: a KeyboardInterrupt arrived; its ``result`` holds the
            episodes finished by then.
    """
    import torch

    config = config or RolloutConfig()
    interventions = tuple(interventions)
    _validate_interventions(policy, interventions)
    source = _MazeSource(mazes, config.batch_size, indices)
    if streams is not None:
        streams = [int(s) for s in streams]
        if len(streams) != len(source.items) or any(s < 0 for s in streams):
            raise ValueError(f"streams must be {len(source.items)} non-negative ints (one per maze), "
                             f"got {len(streams)}")
    device = torch.device(config.device) if config.device else (_module_device(policy) or torch.device("cpu"))
    if isinstance(policy, torch.nn.Module) and _module_device(policy) not in (None, device):
        policy.to(device)
    from mazeinterp.progress import progress_bar
    from mazeinterp.threads import default_threads, torch_threads

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.callback(source.close)
        threads = config.threads or default_threads(min(config.batch_size, len(source)))
        stack.enter_context(torch_threads(threads))
        progress = stack.enter_context(progress_bar(total=len(source), desc="rollouts", unit="maze",
                                                    enabled=config.progress))
        stack.enter_context(_channels_last(policy, config.channels_last))
        if interventions:
            from mazeinterp.hooks import intervene

            stack.enter_context(intervene(policy, interventions))
        stack.enter_context(torch.inference_mode())
        runner = _Runner(policy, source, interventions, config, device, progress, streams)
        stack.callback(runner.close)
        try:
            runner.run()
            interrupted = False
        except KeyboardInterrupt:  # keep what is finished; the caller decides what to do with it
            interrupted = True
    seconds = time.perf_counter() - started
    episodes = tuple(runner.episodes[i] for i in sorted(runner.episodes))
    result = RolloutResult(
        episodes=episodes, config=config, interventions=tuple(repr(iv) for iv in interventions),
        policy=_policy_name(policy) if not isinstance(policy, ScriptedPolicy) else repr(policy),
        frames=runner.frames, seconds=seconds,
    )
    if interrupted:
        raise RolloutInterrupted(result)
    return result


class RolloutInterrupted(KeyboardInterrupt):
    """:func:`run_rollouts` was interrupted (Ctrl-C, or SIGTERM turned into one); ``result`` holds the
    episodes finished before it (a :class:`RolloutResult`, in maze order)."""

    def __init__(self, result: RolloutResult) -> None:
        super().__init__(f"interrupted after {len(result)} finished episodes")
        self.result = result


def compare(
    policy: Policy | ScriptedPolicy,
    mazes: int | Sequence[int] | Sequence[MazeState | bytes] | range,
    baseline_interventions: Sequence[Any] = (),
    treatment_interventions: Sequence[Any] = (),
    config: RolloutConfig | None = None,
) -> Comparison:
    """Run the same mazes under two conditions and pair them up.

    Both runs use the same mazes, the same cheese placement and the same
    per-maze random numbers (see the module docstring), so differences come
    from the interventions. Level seeds are turned into states once and shared.
    :meth:`Comparison.difference` gives the paired difference in P(cheese)
    (or any outcome) with Newcombe's paired interval.
    """
    config = config or RolloutConfig()
    source = _MazeSource(mazes, config.batch_size)
    states = load_mazes(source.items, config.batch_size) if source.is_seeds else source.items
    baseline = run_rollouts(policy, states, baseline_interventions, config)
    treatment = run_rollouts(policy, states, treatment_interventions, config)
    return Comparison(baseline, treatment)
