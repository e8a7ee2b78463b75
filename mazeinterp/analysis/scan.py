"""Channel scans: rank every channel of a layer by its estimated ablation effect on P(cheese), verify the top ones exactly.

:func:`scan_channels` does in two passes over the mazes what an exact sweep of
every channel would do in C:

1. per maze, the activations at the hook with the mouse on every open cell
   (drawn plain and mirrored) are computed once (:mod:`mazeinterp.analysis.prefix_cache`);
   the exact baseline P(cheese) and every channel's first-order ablation effect
   (:func:`mazeinterp.analysis.channel_gradients.channel_estimates`) come from one
   forward and one backward pass of the rest of the network;
2. the ``top`` channels with the largest ``|estimate|`` are ablated one at a
   time and their exact effect computed from the prefix again: the mean over
   mazes of the paired difference in exact P(cheese), with a 95% bootstrap
   interval over mazes, and the same for P(region first) (the mouse in the
   top-right 5×5 before the cheese), which costs one more chain and no forward pass.

Every number depends only on the model, the mazes and the settings: not on
``workers`` (each maze is computed the same way in whichever process).

>>> result = scan_channels(model, states[:2], "embedder.relu3_out", kind="zero", top=3, progress=False)
>>> len(result.scores), len(result.verified)        # every channel estimated, the top 3 exact
(32, 3)
>>> sorted(result.summary())
['baseline_p_cheese', 'baseline_p_region_first', 'hook', 'kind', 'n_mazes', 'seconds', 'spearman', 'top']
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mazeinterp.runtime.defaults import FORWARD_BATCH_SIZE, MAX_STEPS, REFERENCE_MAZES
from mazeinterp.maze.outcomes import DEFAULT_REGION_SIZE
from mazeinterp.runtime.progress import progress_bar
from mazeinterp.analysis.vfield import EXACT_OUTCOMES

if TYPE_CHECKING:
    from mazeinterp.core.interventions import Intervention
    from mazeinterp.maze.state import MazeState
    from mazeinterp.core.model import ImpalaPolicy

__all__ = ["SCAN_KINDS", "ChannelScore", "ScanResult", "scan_channels"]

SCAN_KINDS = ("mean", "zero")
"""Ablations a scan estimates: the mean activation over reference mazes, or zero."""


@dataclass(frozen=True)
class ChannelScore:
    """One channel's scan result: effects on P(cheese) of ablating it (ablated minus baseline, mean over mazes).

    ``exact``, ``exact_low`` and ``exact_high`` (95% bootstrap interval over mazes) are None for a
    channel that was not verified; the interval is also None with a single maze.
    """

    channel: int
    estimate: float
    exact: float | None = None
    exact_low: float | None = None
    exact_high: float | None = None
    region_first: float | None = None
    """Exact effect on P(region first) (the top-right 5×5 before the cheese), for a verified channel."""
    region_first_low: float | None = None
    region_first_high: float | None = None


@dataclass(frozen=True, eq=False)
class ScanResult:
    """What :func:`scan_channels` measured.

    Attributes:
        hook, kind, top: the settings.
        n_mazes: mazes scanned.
        seconds: wall time of the scan (reference means included).
        baseline_p_cheese: exact P(cheese) of the unedited policy, mean over the mazes.
        scores: every channel, ranked by ``|estimate|`` (largest first, ties by channel index).
        per_maze_baseline: (n_mazes,) exact P(cheese) of each maze.
        baseline_p_region_first: exact P(region first) of the unedited policy, mean over the mazes.
    """

    hook: str
    kind: str
    n_mazes: int
    top: int
    seconds: float
    baseline_p_cheese: float
    scores: tuple[ChannelScore, ...]
    per_maze_baseline: np.ndarray
    baseline_p_region_first: float = math.nan

    @property
    def verified(self) -> list[ChannelScore]:
        """The channels whose exact effect was computed, in rank order."""
        return [s for s in self.scores if s.exact is not None]

    @property
    def spearman(self) -> float | None:
        """Spearman correlation of estimate against exact over the verified channels; None below 3 or when undefined."""
        verified = self.verified
        if len(verified) < 3:
            return None
        from scipy.stats import spearmanr

        rho = spearmanr([s.estimate for s in verified], [s.exact for s in verified]).statistic
        return float(rho) if math.isfinite(rho) else None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per channel in rank order: channel, estimate, exact, exact_low, exact_high, and the exact
        effect on P(region first) with its interval (region_first, region_first_low, region_first_high);
        None when not verified."""
        return [{"channel": s.channel, "estimate": s.estimate, "exact": s.exact, "exact_low": s.exact_low,
                 "exact_high": s.exact_high, "region_first": s.region_first, "region_first_low": s.region_first_low,
                 "region_first_high": s.region_first_high} for s in self.scores]

    def summary(self) -> dict[str, Any]:
        """hook, kind, n_mazes, top, seconds, baseline_p_cheese, baseline_p_region_first, and spearman when 3 or
        more channels were verified."""
        out: dict[str, Any] = {"hook": self.hook, "kind": self.kind, "n_mazes": self.n_mazes, "top": self.top,
                               "seconds": round(self.seconds, 2), "baseline_p_cheese": self.baseline_p_cheese,
                               "baseline_p_region_first": self.baseline_p_region_first}
        if len(self.verified) >= 3:
            out["spearman"] = self.spearman
        return out

    def table(self, limit: int | None = None) -> str:
        """The ranked channels as aligned text (the first ``limit``; all when None)."""

        def num(value: float | None) -> str:
            return "" if value is None else f"{value:+.4g}"

        lines = [f"{'rank':>4} {'channel':>7} {'estimate':>10} {'exact':>10} {'95% interval':>24} "
                 f"{'5×5 first':>10}"]
        for rank, s in enumerate(self.scores[:limit], 1):
            interval = "" if s.exact_low is None else f"[{num(s.exact_low)}, {num(s.exact_high)}]"
            lines.append(f"{rank:>4} {s.channel:>7} {num(s.estimate):>10} {num(s.exact):>10} {interval:>24} "
                         f"{num(s.region_first):>10}".rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        rho = self.spearman
        head = (f"{self.kind} ablation of each channel of {self.hook}, {self.n_mazes} mazes: "
                f"baseline P(cheese) {self.baseline_p_cheese:.4f}; effects on P(cheese), ablated minus baseline")
        tail = "" if rho is None else f"\nSpearman (estimate vs exact, {len(self.verified)} channels): {rho:.3f}"
        return f"{head}\n{self.table()}{tail}"


# --------------------------------------------------------------------------------------
# one maze: the work a worker does


def _ablation(hook: str, ablated: Tensor | None, channel: int) -> Intervention:
    from mazeinterp.core.interventions import MeanAblate, ZeroAblate

    if ablated is None:
        return ZeroAblate(hook, channels=(channel,))
    return MeanAblate(hook, ablated, channels=(channel,))


def _estimate_maze(model: ImpalaPolicy, state: MazeState, hook: str, ablated: Tensor | None,
                   settings: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """((2,) exact baseline P(cheese) and P(region first), (C,) first-order effects on P(cheese)) of one maze."""
    from mazeinterp.analysis.channel_gradients import channel_estimates
    from mazeinterp.analysis.prefix_cache import build_prefix_cache, cached_move_probs
    from mazeinterp.analysis.vfield import outcomes_from_fields

    cache = build_prefix_cache(model, [state], hook, batch_size=settings["batch_size"])
    probs = cached_move_probs(model, cache)
    base = outcomes_from_fields([state], cache.fields(probs), max_steps=settings["max_steps"],
                                region_size=DEFAULT_REGION_SIZE)
    estimates = channel_estimates(model, cache, ablated, max_steps=settings["max_steps"], baseline_probs=probs)
    return base[0, _COLUMNS], estimates


def _exact_maze(model: ImpalaPolicy, state: MazeState, hook: str, ablated: Tensor | None,
                settings: dict[str, int], channels: Sequence[int]) -> np.ndarray:
    """(len(channels), 2) exact P(cheese) and P(region first) of one maze with each channel ablated."""
    from mazeinterp.analysis.prefix_cache import prefix_outcome_probabilities

    conditions = [[_ablation(hook, ablated, c)] for c in channels]
    p = prefix_outcome_probabilities(model, [state], hook, conditions, max_steps=settings["max_steps"],
                                     region_size=DEFAULT_REGION_SIZE, batch_size=settings["batch_size"],
                                     progress=False)
    return p[:, 0][:, _COLUMNS]


_COLUMNS = [EXACT_OUTCOMES.index("cheese"), EXACT_OUTCOMES.index("region_first")]
"""Columns of :data:`mazeinterp.analysis.vfield.EXACT_OUTCOMES` a scan reports: P(cheese), P(region first)."""

_WORKER: dict[str, Any] = {}


def _init_worker(scale: int, num_actions: int, weights: dict[str, Tensor], ablated: Tensor | None, hook: str,
                 settings: dict[str, int]) -> None:
    from mazeinterp.core.model import ImpalaPolicy

    torch.set_num_threads(1)
    model = ImpalaPolicy(scale=scale, num_actions=num_actions)
    model.load_state_dict(weights)
    _WORKER.update(model=model.eval(), ablated=ablated, hook=hook, settings=settings)


def _worker_estimate(state: MazeState) -> tuple[np.ndarray, np.ndarray]:
    w = _WORKER
    return _estimate_maze(w["model"], state, w["hook"], w["ablated"], w["settings"])


def _worker_exact(state: MazeState, channels: Sequence[int]) -> np.ndarray:
    w = _WORKER
    return _exact_maze(w["model"], state, w["hook"], w["ablated"], w["settings"], channels)


def _map_mazes(states: Sequence[MazeState], local: Callable[[MazeState], Any], remote: Callable[..., Any],
               extra: tuple[Any, ...], pool: Any, desc: str, progress: bool | None) -> list[Any]:
    """``local(state)`` for each maze in this process, or ``remote(state, *extra)`` in ``pool``; in maze order."""
    bar = progress_bar(range(len(states)), total=len(states), desc=desc, enabled=progress)
    if pool is None:
        out = []
        for i in bar:
            out.append(local(states[i]))
        return out
    futures = [pool.submit(remote, state, *extra) for state in states]
    out = []
    for i in bar:
        out.append(futures[i].result())
    return out


# --------------------------------------------------------------------------------------
# the scan


def _check_inputs(model: ImpalaPolicy, states: Sequence[MazeState], hook: str, kind: str, top: int,
                  mean: Tensor | None, workers: int) -> tuple[int, ...]:
    from mazeinterp.core.hook_points import check_hook_point
    from mazeinterp.core.hooks import can_forward_from

    if kind not in SCAN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SCAN_KINDS)}, got {kind!r}")
    shape = tuple(check_hook_point(model, hook))
    if not can_forward_from(hook):
        raise ValueError(f"cannot scan {hook!r}: it lies inside a residual branch, where a forward pass cannot "
                         "resume; scan a hook point on the main path (`mazeinterp info` lists them)")
    if not 0 <= top <= shape[0]:
        raise ValueError(f"top must be between 0 and the {shape[0]} channels of {hook!r}, got {top}")
    if not states:
        raise ValueError("no mazes to scan")
    for i, state in enumerate(states):
        if state.cheese is None:
            raise ValueError(f"maze {i} has no cheese: P(cheese) is 0 whatever the channels do")
    if mean is not None and tuple(mean.shape) != shape:
        raise ValueError(f"mean has shape {tuple(mean.shape)}, hook point {hook!r} has {shape}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    return shape


def scan_channels(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    hook: str,
    *,
    kind: str = "mean",
    top: int = 16,
    mean: Tensor | None = None,
    reference_mazes: int = REFERENCE_MAZES,
    seed: int = 0,
    workers: int = 0,
    max_steps: int = MAX_STEPS,
    batch_size: int = FORWARD_BATCH_SIZE,
    progress: bool | None = None,
) -> ScanResult:
    """Rank every channel of ``hook`` by its estimated ablation effect on P(cheese); verify the ``top`` exactly.

    Args:
        model: the policy.
        states: the mazes (each with a cheese); the standard test mazes are
            :func:`mazeinterp.rollout.sources.standard_test_mazes`.
        hook: a map or vector hook point on the main path (:func:`mazeinterp.core.hooks.can_forward_from`).
        kind: ``"mean"`` (each channel set to its mean activation) or ``"zero"``.
        top: channels verified exactly, those with the largest ``|estimate|`` (0 = none).
        mean: (C, H, W) mean activation for ``kind="mean"``; None = the mean over the start
            observations of ``reference_mazes`` random mazes drawn from ``seed``
            (:func:`mazeinterp.analysis.references.mean_ablation`).
        seed: seeds the reference mazes and the bootstrap.
        workers: local processes (spawned, one torch thread each); 0 = this process.
        max_steps: the chain's step cap.
        batch_size: cells per forward pass.

    Returns:
        :class:`ScanResult`; effects are exact P(cheese) ablated minus baseline, mean over mazes.

    Raises:
        ValueError: unknown kind, a hook point the pass cannot resume from, ``top`` out of range,
            no mazes or a maze without cheese, a non-finite estimate or effect.
    """
    started = time.perf_counter()
    states = list(states)
    shape = _check_inputs(model, states, hook, kind, top, mean, workers)
    ablated: Tensor | None = None
    if kind == "mean":
        if mean is None:
            from mazeinterp.analysis.references import mean_ablation

            mean = mean_ablation(model, hook, reference_mazes, seed=seed).mean
        ablated = mean.detach().to(next(model.parameters()).device, torch.float32)
    settings = {"max_steps": max_steps, "batch_size": batch_size}
    pool = None
    if workers > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        weights = {k: v.cpu() for k, v in model.state_dict().items()}
        initargs = (model.scale, model.num_actions, weights, None if ablated is None else ablated.cpu(), hook, settings)
        pool = ProcessPoolExecutor(max_workers=min(workers, len(states)),
                                   mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                   initargs=initargs)
    try:
        first = _map_mazes(states, lambda s: _estimate_maze(model, s, hook, ablated, settings), _worker_estimate,
                           (), pool, "scan: estimates", progress)
        baselines = np.stack([b for b, _ in first])  # (mazes, 2): P(cheese), P(region first)
        baseline = baselines[:, 0]
        estimates = np.stack([e for _, e in first]).mean(axis=0)
        bad = np.flatnonzero(~np.isfinite(estimates))
        if bad.size:
            raise ValueError(f"the estimate of channel {int(bad[0])} of {hook!r} is not finite")
        order = sorted(range(shape[0]), key=lambda c: (-abs(float(estimates[c])), c))
        chosen = order[:top]
        exact = np.zeros((len(states), len(chosen), 2))
        if chosen:
            rows = _map_mazes(states, lambda s: _exact_maze(model, s, hook, ablated, settings, chosen),
                              _worker_exact, (chosen,), pool, "scan: exact", progress)
            exact = np.stack(rows)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    effects = exact - baselines[:, None, :]  # (mazes, chosen, 2)
    if not np.isfinite(effects).all():
        raise ValueError(f"an exact effect at {hook!r} is not finite")
    scores = []
    verified = {c: j for j, c in enumerate(chosen)}
    for c in order:
        if c not in verified:
            scores.append(ChannelScore(c, float(estimates[c])))
            continue
        cheese, region = (_mean_interval(effects[:, verified[c], k], seed) for k in (0, 1))
        scores.append(ChannelScore(c, float(estimates[c]), *cheese, *region))
    return ScanResult(hook, kind, len(states), top, time.perf_counter() - started, float(baseline.mean()),
                      tuple(scores), baseline, float(baselines[:, 1].mean()))


def _mean_interval(column: np.ndarray, seed: int) -> tuple[float, float | None, float | None]:
    """(mean, 95% bootstrap low, high) of per-maze effects; no interval for a single maze."""
    if len(column) < 2:
        return float(column[0]), None, None
    from mazeinterp.analysis.stats import bootstrap_interval

    return bootstrap_interval(column, seed=seed)
