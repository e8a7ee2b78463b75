"""One shard of a sweep, the unit of work: the interventions of the grid's conditions, run on a few mazes.

:func:`run_shard` runs the baseline and every condition of the grid on the
mazes of one shard in one batched rollout per seed, and returns the outcomes
as plain data (written by :mod:`mazeinterp.sweep.runner` as one JSON file per shard).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.maze.outcomes import OUTCOME_CODES  # episode outcome → the code stored in shard files
from mazeinterp.core.interventions import (
    AddVector,
    Clamp,
    Intervention,
    MeanAblate,
    PerEpisodeIntervention,
    ResampleAblate,
    Scale,
    ZeroAblate,
)
from mazeinterp.sweep.config import Condition, SweepConfig

if TYPE_CHECKING:
    from torch import Tensor

    from mazeinterp.core.model import ImpalaPolicy

__all__ = ["OUTCOME_CODES", "SHARD_FORMAT", "EditsByEpisode", "PartialAblation", "intervention",
           "reference_activations", "run_shard"]

SHARD_FORMAT = 2
"""Version of the shard files' layout (2: sealed with the sweep's hash, maze range and a checksum by
:func:`mazeinterp.sweep.files.seal_shard`; 1 is refused)."""


# --------------------------------------------------------------------------------------
# conditions and their interventions


@dataclass(frozen=True, eq=False, repr=False)
class PartialAblation(Intervention):
    """``act + strength · (ablation.edit(act) − act)`` on the ablation's channels and pixels.

    ``strength = 1`` equals ``ablation`` itself, ``0`` leaves the activation alone.
    """

    ablation: Intervention | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.ablation, Intervention):
            raise TypeError(f"ablation must be an Intervention, got {self.ablation!r}")

    def edit(self, act: Tensor) -> Tensor:
        return act + self.strength * (self.ablation.edit(act) - act)  # type: ignore[union-attr]

    def _params(self) -> list[str]:
        return [f"{self.ablation}", f"strength={self.strength}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        self.ablation._check_shape(shape)  # type: ignore[union-attr]


def reference_activations(model: ImpalaPolicy, config: SweepConfig) -> dict[str, Tensor]:
    """Reference activations the config's kinds need, computed once per sweep and sent to every worker.

    Keys: ``"<hook>|mean"`` → mean map (C, H, W) for ``"mean"``; ``"<hook>|sources"`` → (K, C, H, W)
    for ``"resample"``, K = ``config.reference_mazes``. The reference mazes are built, rendered
    and run once for every hook and both kinds
    (:func:`mazeinterp.analysis.references.reference_activations`); the mean is the sources' mean.
    """
    from mazeinterp.analysis import references

    wanted = [kind for kind in ("mean", "resample") if kind in config.kinds]
    if not wanted:
        return {}
    acts = references.reference_activations(model, config.hooks, config.reference_mazes, config.reference_seed)
    refs: dict[str, Tensor] = {}
    for hook in config.hooks:
        if "mean" in wanted:
            refs[f"{hook}|mean"] = acts[hook].mean(0)
        if "resample" in wanted:
            refs[f"{hook}|sources"] = acts[hook]
    return refs


def intervention(condition: Condition, references: Mapping[str, Tensor], shape: tuple[int, ...],
                 reference_seed: int = 0) -> Intervention:
    """The intervention of ``condition``; ``references`` from the sweep, ``shape`` the hook's (C, H, W)."""
    import torch

    hook, channels, kind, c = condition.hook, (condition.channel,), condition.kind, condition.coefficient
    if kind == "scale":
        return Scale(hook, c, channels=channels)
    if kind == "clamp":
        return Clamp(hook, c, channels=channels)
    if kind == "add":
        return AddVector(hook, torch.ones(shape[0]), c, channels=channels)
    if kind == "zero":
        ablation: Intervention = ZeroAblate(hook, channels=channels)
    elif kind == "mean":
        ablation = MeanAblate(hook, references[f"{hook}|mean"], channels=channels)
    elif kind == "resample":
        ablation = ResampleAblate(hook, references[f"{hook}|sources"], reference_seed, channels=channels)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return ablation if c == 1.0 else PartialAblation(hook, ablation=ablation, strength=c, channels=channels)


# --------------------------------------------------------------------------------------
# one shard (runs in a worker)


@dataclass(frozen=True, eq=False, repr=False)
class EditsByEpisode(PerEpisodeIntervention):
    """At one hook point, give each rollout episode the edit of its block: one rollout runs many conditions.

    Episode ``i`` of the rollout (see :func:`mazeinterp.rollout.run_rollouts`, which calls
    :meth:`set_episode_indices` before every forward pass) gets ``edits[i // block]``; ``None``
    leaves its activation alone. Rows without an edit are returned unchanged, bit for bit.
    The fields are fixed once built; the rows' episodes, which change before every forward
    pass, live in :attr:`rows` (an :class:`~mazeinterp.core.interventions.EpisodeRows` of its own,
    as for every :class:`~mazeinterp.core.interventions.PerEpisodeIntervention`).
    """

    edits: tuple[Intervention | None, ...] = ()
    block: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block < 1:
            raise ValueError(f"block must be positive, got {self.block}")
        if any(iv is not None and iv.hook != self.hook for iv in self.edits):
            raise ValueError(f"every edit must be at hook point {self.hook!r}")

    def set_episode_indices(self, indices: Sequence[int] | np.ndarray) -> None:
        """Select the episode of every row of the next forward pass (writes :attr:`rows`)."""
        import torch

        episodes = np.asarray(indices, dtype=np.int64)
        if len(episodes) and int(episodes.max()) // self.block >= len(self.edits):
            raise IndexError(f"episode index beyond the {len(self.edits)} blocks of {self.block}")
        self.rows.indices = torch.as_tensor(episodes)

    def edit(self, act: Tensor) -> Tensor:
        """``act`` with each row edited by its block's intervention; ``act`` (B, C, H, W) is not modified."""
        import torch

        episodes = self.rows.indices
        if episodes is None or len(episodes) != act.shape[0]:
            raise RuntimeError("EditsByEpisode needs set_episode_indices() for this batch before a forward pass")
        groups = episodes.numpy() // self.block
        out = None
        for k in np.unique(groups).tolist():
            iv = self.edits[k]
            if iv is None:
                continue
            rows = torch.as_tensor(np.flatnonzero(groups == k), device=act.device)
            out = act.clone() if out is None else out
            out[rows] = iv(act[rows])
        return act if out is None else out

    def _params(self) -> list[str]:
        return [f"{sum(iv is not None for iv in self.edits)} edits", f"block={self.block}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        for iv in self.edits:
            if iv is not None:
                iv._check_shape(shape)


def run_shard(model: ImpalaPolicy, config: SweepConfig, shard: int, grid: Sequence[Condition],
              references: Mapping[str, Tensor]) -> dict[str, Any]:
    """Run the baseline and every condition on the mazes of ``shard``, for every seed.

    All conditions of a seed run in one :func:`~mazeinterp.rollout.run_rollouts`
    call (full batches; :class:`EditsByEpisode` routes each episode's edit), and
    every copy of a maze draws the random numbers of the maze's position in the
    whole sweep (``streams``), so baseline and edits share them (common random
    numbers) and they do not depend on the shard size.

    Returns plain data: ``estimator`` (``"sampled"``), ``shard``, ``level_seeds``,
    ``baseline`` (seeds × mazes outcome codes: 0 cheese, 1 top-right, 2 neither),
    ``treated`` (conditions × seeds × mazes), ``episodes`` and ``seconds``.
    """
    from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts

    import torch

    if config.estimator != "sampled":
        raise ValueError(f"run_shard samples rollouts; a sweep with estimator {config.estimator!r} runs its shards "
                         "with mazeinterp.sweep.exact.run_exact_shard")
    started = time.perf_counter()
    levels = config.shard_levels(shard)
    n = len(levels)
    states = load_mazes(levels, batch_size=config.batch_size)
    shapes = model.hook_points()
    blocks: list[Intervention | None] = [None]  # block 0: the baseline
    blocks += [intervention(c, references, shapes[c.hook], config.reference_seed) for c in grid]
    edits = [EditsByEpisode(hook, edits=tuple(iv if iv is not None and iv.hook == hook else None for iv in blocks),
                            block=n) for hook in dict.fromkeys(c.hook for c in grid)]
    first = shard * config.shard_size
    streams = list(range(first, first + n)) * len(blocks)
    baseline: list[list[int]] = []
    treated: list[list[list[int]]] = [[] for _ in grid]
    for seed in config.seeds:
        rollout = RolloutConfig(greedy=config.greedy, max_steps=config.max_steps, batch_size=config.batch_size,
                                seed=seed, cheese_region=config.cheese_region, progress=False,
                                threads=torch.get_num_threads())  # a worker keeps its one thread
        result = run_rollouts(model, states * len(blocks), edits, rollout, streams=streams)
        codes = np.array([OUTCOME_CODES[ep.outcome] for ep in result.episodes]).reshape(len(blocks), n)
        baseline.append(codes[0].tolist())
        for row, block in zip(treated, codes[1:]):
            row.append(block.tolist())
    return {"format": SHARD_FORMAT, "estimator": "sampled", "shard": shard, "level_seeds": levels,
            "baseline": baseline, "treated": treated, "episodes": n * len(config.seeds) * len(blocks),
            "seconds": time.perf_counter() - started}
