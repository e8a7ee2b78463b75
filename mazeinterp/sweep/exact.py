"""The exact estimator of a sweep (``SweepConfig(estimator="exact")``): outcome probabilities, no sampling.

A shard computes, for the baseline and every condition of the grid, each
maze's exact P(cheese), P(top_right), P(neither) and P(region first) with
:func:`mazeinterp.analysis.vfield.outcome_probabilities` (the absorbing Markov chain of
the sampled policy over the maze's cells), instead of sampling one rollout.
:func:`exact_outcomes` is the one place where that happens, so that a faster
way of computing the same array can replace it.

The merge pairs each condition with the baseline maze by maze: the effect on
an outcome is the mean over mazes of (condition − baseline), with a 95%
percentile-bootstrap interval over mazes (:func:`mazeinterp.analysis.stats.bootstrap_interval`,
seeded by the sweep's first seed). The seeds only place the cheese
(``cheese_region``): without it every seed gives the same numbers, so each
maze is computed once; with it, once per seed, and a maze's number is the mean
over its placements.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.maze.outcomes import EXACT_OUTCOMES
from mazeinterp.sweep.config import Condition, SweepConfig
from mazeinterp.sweep.shard import SHARD_FORMAT, intervention

if TYPE_CHECKING:
    from torch import Tensor

    from mazeinterp.maze.state import MazeState
    from mazeinterp.core.interventions import Intervention
    from mazeinterp.core.model import ImpalaPolicy

__all__ = ["EXACT_COLUMNS", "exact_outcomes", "merge_exact", "placements", "run_exact_shard", "shard_outcomes"]

EXACT_COLUMNS: tuple[str, ...] = EXACT_OUTCOMES
"""The outcomes of an exact sweep: :data:`mazeinterp.maze.outcomes.EXACT_OUTCOMES`, the columns of exact outcome
probabilities."""


def exact_outcomes(model: ImpalaPolicy, states: Sequence[MazeState], condition: Condition | None,
                   references: Mapping[str, Tensor], config: SweepConfig) -> np.ndarray:
    """(N, 4) exact P(cheese), P(top_right), P(neither), P(region first) of ``states`` under ``condition``.

    ``condition`` None is the unedited policy (the baseline); ``references`` are the sweep's
    (:func:`~mazeinterp.sweep.shard.reference_activations`); ``config`` gives ``max_steps``,
    ``batch_size`` (cells per forward pass) and ``reference_seed``. The region is the top-right
    5×5 (:data:`mazeinterp.maze.outcomes.DEFAULT_REGION_SIZE`).
    """
    from mazeinterp.analysis.vfield import outcome_probabilities

    edits = []
    if condition is not None:
        shape = model.hook_points()[condition.hook]
        edits.append(intervention(condition, references, shape, config.reference_seed))
    return outcome_probabilities(model, states, edits, max_steps=config.max_steps, batch_size=config.batch_size,
                                 progress=False)


def placements(config: SweepConfig, shard: int, states: Sequence[MazeState]) -> list[list[MazeState]]:
    """The shard's mazes once per cheese placement: one list per seed with ``cheese_region``, else ``[states]``.

    Each maze's cheese is the one a sampled sweep's rollouts give it (the random stream of its
    position in the whole sweep, :func:`~mazeinterp.rollout.sources.place_stream_cheese`).
    """
    if config.cheese_region is None:
        return [list(states)]
    from mazeinterp.rollout.sources import place_stream_cheese

    first = shard * config.shard_size
    return [[place_stream_cheese(first + j, s, config.cheese_region, seed) for j, s in enumerate(states)]
            for seed in config.seeds]


def run_exact_shard(model: ImpalaPolicy, config: SweepConfig, shard: int, grid: Sequence[Condition],
                    references: Mapping[str, Tensor]) -> dict[str, Any]:
    """The exact outcome probabilities of the baseline and every condition on the mazes of ``shard``.

    Returns plain data in the layout of :func:`~mazeinterp.sweep.shard.run_shard`, with
    probabilities where that has outcome codes: ``baseline`` (placements × mazes × 4) and
    ``treated`` (conditions × placements × mazes × 4), columns :data:`EXACT_COLUMNS`, plus
    ``estimator`` (``"exact"``), ``outcomes``, ``shard``, ``level_seeds``, ``episodes`` (0) and ``seconds``.

    Raises:
        ValueError: a probability that is not finite (named by condition and maze).
    """
    from mazeinterp.rollout import load_mazes

    started = time.perf_counter()
    levels = config.shard_levels(shard)
    drawn = placements(config, shard, load_mazes(levels, batch_size=config.batch_size))

    per_placement = [shard_outcomes(model, states, grid, references, config) for states in drawn]
    measured = [None, *grid]
    for k, condition in enumerate(measured):
        for probs in per_placement:
            if not np.isfinite(probs[k]).all():
                bad = levels[int(np.argwhere(~np.isfinite(probs[k]))[0, 0])]
                raise ValueError(f"exact outcome probabilities of level seed {bad} under "
                                 f"{condition or 'the baseline'} are not finite")
    return {"format": SHARD_FORMAT, "estimator": "exact", "outcomes": list(EXACT_COLUMNS), "shard": shard,
            "level_seeds": levels, "baseline": [probs[0].tolist() for probs in per_placement],
            "treated": [[probs[k].tolist() for probs in per_placement] for k in range(1, len(measured))],
            "episodes": 0, "seconds": time.perf_counter() - started}


def shard_outcomes(model: ImpalaPolicy, states: Sequence[MazeState], grid: Sequence[Condition],
                   references: Mapping[str, Tensor], config: SweepConfig) -> np.ndarray:
    """(1 + len(grid), N, 4) exact outcomes of ``states``: the baseline, then each condition of ``grid``.

    The conditions at one hook point share one pass of the network up to it
    (:func:`mazeinterp.analysis.prefix_cache.prefix_outcome_probabilities`, all of ``states`` in one cache), so
    each row equals :func:`exact_outcomes` of its condition bit for bit, at a fraction of the cost.
    """
    from mazeinterp.analysis.prefix_cache import prefix_outcome_probabilities

    states = list(states)
    out = np.zeros((1 + len(grid), len(states), len(EXACT_COLUMNS)))
    by_hook: dict[str, list[int]] = {}
    for k, condition in enumerate(grid):
        by_hook.setdefault(condition.hook, []).append(k)
    if not by_hook:
        out[0] = exact_outcomes(model, states, None, references, config)
    for first, (hook, rows) in enumerate(by_hook.items()):
        shape = model.hook_points()[hook]
        edits = [[intervention(grid[k], references, shape, config.reference_seed)] for k in rows]
        baseline: list[list[Intervention]] = [[]] if first == 0 else []  # the unedited policy once, from the first hook's cache
        probs = prefix_outcome_probabilities(model, states, hook, baseline + edits, max_steps=config.max_steps,
                                             mazes_per_cache=max(1, len(states)), batch_size=config.batch_size)
        if first == 0:
            out[0] = probs[0]
        out[[1 + k for k in rows]] = probs[len(baseline):]
    return out


def _stack(shards: Sequence[Mapping[str, Any]], values: Sequence[Any], what: str) -> np.ndarray:
    """(placements, mazes, 4) float array of every shard's ``values``, checked: right shape, finite."""
    parts = []
    for data, part in zip(shards, values):
        array = np.asarray(part, dtype=np.float64)
        if (data.get("estimator") != "exact" or array.ndim != 3 or array.shape[1] != len(data["level_seeds"])
                or array.shape[2] != len(EXACT_COLUMNS)):
            raise ValueError(f"shard {data['shard']}: {what} holds no exact outcome probabilities "
                             f"(estimator {data.get('estimator', 'sampled')!r}, shape {array.shape})")
        if not np.isfinite(array).all():
            raise ValueError(f"shard {data['shard']}: {what} has values that are not finite")
        parts.append(array)
    return np.concatenate(parts, axis=1)


def merge_exact(config: SweepConfig, grid: Sequence[Condition],
                shards: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per condition from every exact shard: paired per-maze differences, bootstrapped over mazes.

    Row keys: the condition's, ``estimator``, ``n`` (mazes), then for each outcome of
    :data:`EXACT_COLUMNS` ``p_<outcome>_baseline`` and ``p_<outcome>`` (means over mazes) and
    ``<outcome>_effect``, ``…_low``, ``…_high`` (mean paired difference and its 95% bootstrap
    interval), where P(cheese)'s effect is plain ``effect`` as in a sampled sweep.

    Raises:
        ValueError: a shard without exact probabilities of the right shape, or with non-finite ones.
    """
    from mazeinterp.analysis.stats import bootstrap_interval

    order = [shards[k] for k in range(config.n_shards)]
    base = _stack(order, [s["baseline"] for s in order], "baseline").mean(axis=0)  # (mazes, 4)
    rows = []
    for i, cond in enumerate(grid):
        treated = _stack(order, [s["treated"][i] for s in order], f"condition {i}").mean(axis=0)
        if treated.shape != base.shape:
            raise ValueError(f"condition {i}: {treated.shape[0]} mazes against the baseline's {base.shape[0]}")
        row: dict[str, Any] = {**asdict(cond), "estimator": "exact", "n": int(base.shape[0])}
        for j, name in enumerate(EXACT_COLUMNS):
            effect, low, high = bootstrap_interval(treated[:, j] - base[:, j], seed=config.seeds[0])
            prefix = "" if name == "cheese" else f"{name}_"
            row[f"p_{name}_baseline"] = float(base[:, j].mean())
            row[f"p_{name}"] = float(treated[:, j].mean())
            row[f"{prefix}effect"] = effect
            row[f"{prefix}effect_low"] = low
            row[f"{prefix}effect_high"] = high
        rows.append(row)
    return rows
