"""Reference activations, and the edits built from them: mean and resample ablations, patches.

An intervention only describes its edit (:mod:`mazeinterp.core.interventions`);
the values some edits hold come from running the network, here:

* :func:`reference_activations` -- the activations at one or more hook points
  on the start observations of random procgen mazes, all hook points recorded
  in one batched forward pass;
* :func:`mean_ablation` / :func:`resample_ablation` -- a
  :class:`~mazeinterp.core.interventions.MeanAblate` (their mean) or a
  :class:`~mazeinterp.core.interventions.ResampleAblate` (the activations
  themselves) of those mazes; the ``…_from_observations`` forms take
  observations you pass instead;
* :func:`patch_from_input` -- a :class:`~mazeinterp.core.interventions.Patch`
  with the activations of another input.

The reference mazes of ``(n_mazes, seed)`` are always the same: level seeds
``numpy.random.default_rng(seed).integers(0, 2**31 - 1, n_mazes)``, the mouse at
its start cell and the cheese where procgen put it.

>>> ablate = mean_ablation(model, "embedder.relu3_out", 20, seed=0, channels=[12])
>>> ablate
MeanAblate(embedder.relu3_out, mean=(32, 8, 8), channels=[12])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.core.hooks import activations, render_states, run_batched_with_cache, run_with_cache
from mazeinterp.core.interventions import MeanAblate, Patch, ResampleAblate
from mazeinterp.runtime.limits import check_states_memory

if TYPE_CHECKING:
    from torch import Tensor

    from mazeinterp.core.model import ImpalaPolicy
    from mazeinterp.maze.state import MazeState

__all__ = [
    "REFERENCE_BATCH_SIZE",
    "mean_ablation",
    "mean_ablation_from_observations",
    "patch_from_input",
    "random_maze_states",
    "reference_activations",
    "resample_ablation",
    "resample_ablation_from_observations",
]

REFERENCE_BATCH_SIZE = 256
"""Observations per forward pass when recording reference activations (does not change the numbers)."""


def random_maze_states(n_mazes: int, seed: int = 0) -> list[MazeState]:
    """Start states of ``n_mazes`` procgen mazes whose level seeds are drawn from ``seed``.

    Level seeds are ``numpy.random.default_rng(seed).integers(0, 2**31 - 1, n_mazes)``.

    Raises:
        ValueError: ``n_mazes < 1``, or more mazes than the memory allows.

    >>> [s.level_seed for s in random_maze_states(2, seed=0)] == np.random.default_rng(0).integers(
    ...     0, 2**31 - 1, size=2).tolist()
    True
    """
    from mazeinterp.maze.env import MazeEnv

    if n_mazes < 1:
        raise ValueError(f"n_mazes must be at least 1, got {n_mazes}")
    check_states_memory(n_mazes, "reference mazes", observations=True)
    level_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=n_mazes)
    states: list[MazeState] = []
    for start in range(0, n_mazes, 256):
        with MazeEnv.from_seeds(level_seeds[start : start + 256].tolist()) as env:
            states.extend(env.get_states())
    return states


def reference_activations(model: ImpalaPolicy, hooks: str | Sequence[str], n_mazes: int, seed: int = 0, *,
                          batch_size: int = REFERENCE_BATCH_SIZE) -> dict[str, Tensor]:
    """Activations at ``hooks`` on the start observations of ``n_mazes`` random mazes, in one forward pass.

    The mazes (:func:`random_maze_states` of ``n_mazes`` and ``seed``) are built and rendered
    once, and one batched pass records every hook point, so a mean and a resample ablation of
    the same mazes (the mean is ``acts.mean(0)`` of the resample sources) cost one pass.

    Args:
        model: the policy.
        hooks: one hook point name, or several.
        n_mazes: number of reference mazes (K).
        seed: draws the mazes' level seeds.
        batch_size: observations per forward pass.

    Returns:
        hook point → activations on CPU, (K, C, H, W) for map hook points or (K, F) for vectors.

    Raises:
        KeyError: an unknown hook point (before any maze is built).

    >>> acts = reference_activations(model, ["embedder.relu3_out", "fc_value_out"], 3)
    >>> {hook: tuple(a.shape) for hook, a in acts.items()}
    {'embedder.relu3_out': (3, 32, 8, 8), 'fc_value_out': (3, 1)}
    """
    names = [hooks] if isinstance(hooks, str) else list(dict.fromkeys(hooks))
    for hook in names:
        model.module_for_hook(hook)  # KeyError for an unknown name, before the mazes are built
    obs = render_states(random_maze_states(n_mazes, seed))
    _, cache = run_batched_with_cache(model, obs, names, stop_early=True, batch_size=batch_size, progress=False)
    return {hook: cache[hook] for hook in names}


def mean_ablation(model: ImpalaPolicy, hook: str, n_mazes: int, seed: int = 0, *, channels: Any = None,
                  pixels: Any = None, batch_size: int = REFERENCE_BATCH_SIZE) -> MeanAblate:
    """A :class:`MeanAblate` of ``hook`` to its mean activation (C, H, W) / (F,) over ``n_mazes`` random mazes.

    The mazes are those of :func:`reference_activations` (``n_mazes``, ``seed``);
    ``channels`` and ``pixels`` select the entries to ablate.

    >>> mean_ablation(model, "fc_value_out", 3).mean.shape
    torch.Size([1])
    """
    acts = reference_activations(model, hook, n_mazes, seed, batch_size=batch_size)[hook]
    return MeanAblate(hook, acts.mean(0), channels=channels, pixels=pixels)


def resample_ablation(model: ImpalaPolicy, hook: str, n_mazes: int, seed: int = 0, *, channels: Any = None,
                      pixels: Any = None, batch_size: int = REFERENCE_BATCH_SIZE) -> ResampleAblate:
    """A :class:`ResampleAblate` whose sources (K, C, H, W) / (K, F) are ``hook``'s activations on random mazes.

    The mazes are those of :func:`reference_activations` (``n_mazes``, ``seed``);
    ``seed`` is also the pairing seed of the resampling.

    >>> resample_ablation(model, "embedder.relu3_out", 3, seed=1)
    ResampleAblate(embedder.relu3_out, sources=(3, 32, 8, 8), seed=1)
    """
    acts = reference_activations(model, hook, n_mazes, seed, batch_size=batch_size)[hook]
    return ResampleAblate(hook, acts, seed, channels=channels, pixels=pixels)


def mean_ablation_from_observations(model: ImpalaPolicy, hook: str, obs: np.ndarray | Tensor, *,
                                    channels: Any = None, pixels: Any = None,
                                    batch_size: int = REFERENCE_BATCH_SIZE) -> MeanAblate:
    """A :class:`MeanAblate` to ``hook``'s mean activation over observations ``obs``.

    ``obs``: uint8 (N, 64, 64, 3) or float (N, 3, 64, 64). The mean is (C, H, W) or (F,).

    >>> mean_ablation_from_observations(model, "fc_value_out", x)
    MeanAblate(fc_value_out, mean=(1))
    """
    model.module_for_hook(hook)
    acts = activations(model, hook, obs, batch_size=batch_size, progress=False)
    return MeanAblate(hook, acts.mean(0), channels=channels, pixels=pixels)


def resample_ablation_from_observations(model: ImpalaPolicy, hook: str, obs: np.ndarray | Tensor, seed: int = 0, *,
                                        channels: Any = None, pixels: Any = None,
                                        batch_size: int = REFERENCE_BATCH_SIZE) -> ResampleAblate:
    """A :class:`ResampleAblate` whose sources (N, C, H, W) / (N, F) are ``hook``'s activations on ``obs``.

    ``obs``: uint8 (N, 64, 64, 3) or float (N, 3, 64, 64); ``seed`` is the pairing seed.
    """
    model.module_for_hook(hook)
    acts = activations(model, hook, obs, batch_size=batch_size, progress=False)
    return ResampleAblate(hook, acts, seed, channels=channels, pixels=pixels)


def patch_from_input(model: ImpalaPolicy, hook: str, x: np.ndarray | Tensor, *, channels: Any = None,
                     pixels: Any = None) -> Patch:
    """A :class:`Patch` of ``hook`` with its activations (B, C, H, W) / (B, F) on input ``x``.

    ``x``: float (B, 3, 64, 64) or uint8 observations (B, 64, 64, 3), run in one forward
    pass; the patch then needs batches of the same size B.

    >>> patch_from_input(model, "embedder.relu3_out", x, channels=[5])
    Patch(embedder.relu3_out, source=(2, 32, 8, 8), channels=[5])
    """
    _, cache = run_with_cache(model, x, [hook], stop_early=True)
    return Patch(hook, cache[hook], channels=channels, pixels=pixels)
