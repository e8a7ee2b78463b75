"""Paired comparisons: the same mazes with the same random numbers under a baseline and a treatment.

:func:`compare` runs both conditions; :class:`Comparison` pairs two rollouts
(refusing ones that are not paired, see :func:`pairing_mismatch`) and gives
the paired difference of any outcome with Newcombe's interval
(:func:`mazeinterp.analysis.stats.paired_difference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from mazeinterp.maze.outcomes import EVENTS, OUTCOMES
from mazeinterp.maze.state import MazeState
from mazeinterp.rollout.config import RolloutConfig
from mazeinterp.rollout.policies import Policy, ScriptedPolicy
from mazeinterp.rollout.results import RolloutResult, standard_filters, subset_label
from mazeinterp.rollout.runner import run_rollouts
from mazeinterp.rollout.sources import MazeSource, load_mazes
from mazeinterp.analysis.stats import PairedDifference, paired_difference

if TYPE_CHECKING:
    from mazeinterp.core.interventions import Intervention

__all__ = ["Comparison", "compare", "pairing_mismatch"]


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
        (:func:`mazeinterp.analysis.stats.paired_difference`)."""
        pair = self.filter(decision_square_only, cheese_outside_region)
        if not len(pair.baseline):
            raise ValueError(f"no mazes left after the filter ({subset_label(decision_square_only, cheese_outside_region)})")
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

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for JSON): both rollouts' summaries and the paired differences of every outcome."""
        out: dict[str, Any] = {"baseline": self.baseline.as_dict(), "treatment": self.treatment.as_dict(),
                               "differences": []}
        for ds, cr in standard_filters():
            if not len(self.baseline.filter(ds, cr)):
                continue
            for outcome in OUTCOMES + EVENTS:
                d = self.difference(outcome, ds, cr)
                out["differences"].append({"label": subset_label(ds, cr), "outcome": outcome, **d.as_dict()})
        return out

    def __str__(self) -> str:
        lines = []
        for ds, cr in standard_filters():
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



def compare(
    policy: Policy | ScriptedPolicy,
    mazes: int | Sequence[int] | Sequence[MazeState | bytes] | range,
    baseline_interventions: Sequence[Intervention] = (),
    treatment_interventions: Sequence[Intervention] = (),
    config: RolloutConfig | None = None,
) -> Comparison:
    """Run the same mazes under two conditions and pair them up.

    Both runs use the same mazes, the same cheese placement and the same
    per-maze random numbers (see :mod:`mazeinterp.rollout.runner`), so differences come
    from the interventions. Level seeds are turned into states once and shared.
    :meth:`Comparison.difference` gives the paired difference in P(cheese)
    (or any outcome) with Newcombe's paired interval.
    """
    config = config or RolloutConfig()
    source = MazeSource(mazes, config.batch_size)
    states = load_mazes(source.items, config.batch_size) if source.is_seeds else source.items
    baseline = run_rollouts(policy, states, baseline_interventions, config)
    treatment = run_rollouts(policy, states, treatment_interventions, config)
    return Comparison(baseline, treatment)

