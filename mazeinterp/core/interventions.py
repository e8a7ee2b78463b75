"""Interventions: small, printable, immutable edits of one hook point's activation.

Every intervention names a hook point (``<module path>_out``, see
:meth:`mazeinterp.core.model.ImpalaPolicy.hook_points`) and optionally restricts
itself to some ``channels`` (``None`` = all) and, for (C, H, W) maps, to some
activation ``pixels`` ``(row, col)`` (``None`` = every position; map a maze cell
to its pixel with :func:`mazeinterp.maze.pixels.cell_to_pixel`). Called on an
activation it returns the edited activation, a new tensor; the input is never
modified in place. Outside the selected channels × pixels the activation is
returned unchanged (bit for bit).

Shapes: activations are (B, C, H, W) for maps or (B, F) for vectors (``channels``
then index features and ``pixels`` must be None). Tensors held by interventions
are per example -- (C, H, W) or (F,) -- unless stated otherwise, and are moved
to the activation's device and dtype when applied.

Apply interventions with :func:`mazeinterp.core.hooks.intervene` (a context manager
for any forward pass, rollout or vector field) or pass them to
:func:`mazeinterp.core.hooks.run_with_cache`::

    >>> from mazeinterp.core.interventions import ZeroAblate, Scale
    >>> ZeroAblate("embedder.relu3_out", channels=[3, 7])
    ZeroAblate(embedder.relu3_out, channels=[3, 7])
    >>> Scale("embedder.block2.res1.resadd_out", 2.0, pixels=[(4, 5)])
    Scale(embedder.block2.res1.resadd_out, factor=2.0, pixels=[(4, 5)])

Several interventions at the same hook point compose in the order given: the
first one listed is applied first and the next sees its output.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mazeinterp.core.finite import check_finite_tensor, finite_number
from mazeinterp.core.hooks import activations, render_states, run_with_cache
from mazeinterp.core.intervention_base import Intervention, as_intervention_list, validate
from mazeinterp.runtime.limits import check_states_memory

if TYPE_CHECKING:
    from mazeinterp.maze.state import MazeState
    from mazeinterp.core.model import ImpalaPolicy

__all__ = [
    "AddVector",
    "Clamp",
    "Intervention",
    "MeanAblate",
    "Patch",
    "ResampleAblate",
    "Scale",
    "SetValue",
    "ZeroAblate",
    "as_intervention_list",
    "as_tensor_copy",
    "validate",
]


# --------------------------------------------------------------------------- helpers


def as_tensor_copy(value: Tensor | np.ndarray, name: str) -> Tensor:
    """A private copy of ``value`` as a tensor of the same shape: a torch tensor detached and cloned, a numpy
    array as float32.

    ``name`` is the argument's name for the error message. Interventions hold such copies, so that
    changing the caller's array later does not change the edit.

    Raises:
        TypeError: ``value`` is neither a tensor nor a numpy array.
        ValueError: ``value`` holds NaN or inf (an edit with them could only give non-finite outputs).

    >>> as_tensor_copy(np.array([1, 2]), "vector")
    tensor([1., 2.])
    """
    if isinstance(value, Tensor):
        copy = value.detach().clone()
    elif isinstance(value, np.ndarray):
        copy = torch.from_numpy(np.array(value, dtype=np.float32))
    else:
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(value).__name__}")
    check_finite_tensor(copy, name)
    return copy




def _fmt_shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _like(t: Tensor, act: Tensor) -> Tensor:
    if t.device != act.device or t.dtype != act.dtype:
        t = t.to(device=act.device, dtype=act.dtype)
    return t


# --------------------------------------------------------------------------- interventions


@dataclass(frozen=True, eq=False, repr=False)
class ZeroAblate(Intervention):
    """Set the selected entries to 0.

    >>> ZeroAblate("embedder.relu3_out", channels=[3, 7])(torch.ones(1, 8, 2, 2))[0, :, 0, 0]
    tensor([1., 1., 1., 0., 1., 1., 1., 0.])
    """

    def edit(self, act: Tensor) -> Tensor:
        return torch.zeros_like(act)


def _random_maze_states(n_mazes: int, seed: int) -> list[MazeState]:
    """Start states of ``n_mazes`` procgen mazes whose level seeds are drawn from ``seed``."""
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


@dataclass(frozen=True, eq=False, repr=False)
class MeanAblate(Intervention):
    """Replace the selected entries with a mean activation ``mean`` ((C, H, W) or (F,)).

    Build the mean from observations you pass, or from random mazes:

    >>> ablate = MeanAblate.from_random_mazes(model, "embedder.relu3_out", 100, seed=0,
    ...                                       channels=[12])
    """

    mean: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "mean", as_tensor_copy(self.mean, "mean"))

    @classmethod
    def from_observations(cls, model: ImpalaPolicy, hook: str, obs: np.ndarray | Tensor, *, channels: Any = None,
                          pixels: Any = None, batch_size: int = 256) -> MeanAblate:
        """Mean of ``hook``'s activation over observations ``obs`` (uint8 (N, 64, 64, 3) or float (N, 3, 64, 64))."""
        model.module_for_hook(hook)
        acts = activations(model, hook, obs, batch_size=batch_size, progress=False)
        return cls(hook, acts.mean(0), channels=channels, pixels=pixels)

    @classmethod
    def from_random_mazes(cls, model: ImpalaPolicy, hook: str, n_mazes: int, seed: int = 0, *,
                          channels: Any = None, pixels: Any = None, batch_size: int = 256) -> MeanAblate:
        """Mean over the start observations of ``n_mazes`` procgen mazes drawn reproducibly from ``seed``.

        Level seeds are ``numpy.random.default_rng(seed).integers(0, 2**31 - 1, n_mazes)``;
        the mouse is at its start cell and the cheese where procgen put it.
        """
        model.module_for_hook(hook)
        obs = render_states(_random_maze_states(n_mazes, seed))
        return cls.from_observations(model, hook, obs, channels=channels, pixels=pixels, batch_size=batch_size)

    def edit(self, act: Tensor) -> Tensor:
        return _like(self.mean, act).expand_as(act)

    def _params(self) -> list[str]:
        return [f"mean={_fmt_shape(self.mean)}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if tuple(self.mean.shape) != shape:
            raise ValueError(f"{self}: mean has shape {tuple(self.mean.shape)}, hook point {self.hook!r} has {shape}")


@dataclass(frozen=True, eq=False, repr=False)
class ResampleAblate(Intervention):
    """Replace the selected entries with activations recorded on other mazes.

    ``sources`` (K, C, H, W) (or (K, F)) holds the activations of K other
    inputs. Pairing, the same at every call: ``perm = torch.randperm(K,
    generator=torch.Generator().manual_seed(seed))`` and batch element ``b``
    receives ``sources[perm[b % K]]`` (see :meth:`source_index`). So a batch
    larger than K reuses sources cyclically, and the same seed always gives the
    same pairing.

    >>> src = torch.arange(3.0).view(3, 1)                 # 3 sources, 1 feature
    >>> ResampleAblate("fc_value_out", src, seed=0).source_index(4)
    tensor([2, 0, 1, 2])
    """

    sources: Tensor
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        sources = as_tensor_copy(self.sources, "sources")
        if sources.ndim < 2 or sources.shape[0] < 1:
            raise ValueError(f"sources must be (K, C, H, W) or (K, F) with K >= 1, got shape {tuple(sources.shape)}")
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "seed", operator.index(self.seed))

    @classmethod
    def from_observations(cls, model: ImpalaPolicy, hook: str, obs: np.ndarray | Tensor, seed: int = 0, *,
                          channels: Any = None, pixels: Any = None, batch_size: int = 256) -> ResampleAblate:
        """Sources (N, C, H, W) (or (N, F)): ``hook``'s activations on observations ``obs``,
        uint8 (N, 64, 64, 3) or float (N, 3, 64, 64)."""
        model.module_for_hook(hook)
        acts = activations(model, hook, obs, batch_size=batch_size, progress=False)
        return cls(hook, acts, seed, channels=channels, pixels=pixels)

    @classmethod
    def from_random_mazes(cls, model: ImpalaPolicy, hook: str, n_mazes: int, seed: int = 0, *,
                          channels: Any = None, pixels: Any = None, batch_size: int = 256) -> ResampleAblate:
        """Sources from the start observations of ``n_mazes`` mazes drawn from ``seed`` (also the pairing seed)."""
        model.module_for_hook(hook)
        obs = render_states(_random_maze_states(n_mazes, seed))
        return cls.from_observations(model, hook, obs, seed, channels=channels, pixels=pixels,
                                     batch_size=batch_size)

    def source_index(self, batch_size: int) -> Tensor:
        """Index (batch_size,) int64 into ``sources`` of each batch element: ``perm[b % K]``."""
        k = self.sources.shape[0]
        perm = torch.randperm(k, generator=torch.Generator().manual_seed(self.seed))
        return perm[torch.arange(batch_size) % k]

    def edit(self, act: Tensor) -> Tensor:
        index = self.source_index(act.shape[0]).to(self.sources.device)
        return _like(self.sources[index], act)

    def _params(self) -> list[str]:
        return [f"sources={_fmt_shape(self.sources)}", f"seed={self.seed}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if tuple(self.sources.shape[1:]) != shape:
            raise ValueError(f"{self}: sources have per-example shape {tuple(self.sources.shape[1:])}, "
                             f"hook point {self.hook!r} has {shape}")


@dataclass(frozen=True, eq=False, repr=False)
class AddVector(Intervention):
    """Add ``coefficient · vector`` to the selected entries.

    ``vector`` is (C, H, W) / (F,) like one example's activation, or (C,) for a
    map hook point, broadcast over every position of each channel. The cheese
    vector is applied as ``AddVector(hook, cheese_vector, -1.0)``.

    >>> AddVector("embedder.relu3_out", torch.ones(2), 2.0)(torch.zeros(1, 2, 1, 1)).flatten()
    tensor([2., 2.])
    """

    vector: Tensor
    coefficient: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "vector", as_tensor_copy(self.vector, "vector"))
        object.__setattr__(self, "coefficient", finite_number(self.coefficient, "coefficient"))

    def edit(self, act: Tensor) -> Tensor:
        vec = _like(self.vector, act)
        if act.ndim == 4 and vec.ndim == 1:
            vec = vec.view(-1, 1, 1)
        return act + self.coefficient * vec

    def _params(self) -> list[str]:
        return [f"vector={_fmt_shape(self.vector)}", f"coefficient={self.coefficient}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        vs = tuple(self.vector.shape)
        if vs != shape and not (len(shape) == 3 and vs == shape[:1]):
            allowed = f"{shape} or {shape[:1]}" if len(shape) == 3 else f"{shape}"
            raise ValueError(f"{self}: vector has shape {vs}, hook point {self.hook!r} needs {allowed}")


@dataclass(frozen=True, eq=False, repr=False)
class Clamp(Intervention):
    """Set the selected entries to ``value`` (a float, or a tensor broadcastable to one example).

    Also known as :data:`SetValue` (the same class under its other common name).

    Retargeting clamps a cheese-tracking channel at the pixel of a target cell
    (see :func:`mazeinterp.analysis.steering.retarget`):

    >>> Clamp("embedder.block2.res1.resadd_out", 5.5, channels=[55], pixels=[(4, 12)])
    Clamp(embedder.block2.res1.resadd_out, value=5.5, channels=[55], pixels=[(4, 12)])
    """

    value: float | Tensor = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.value
        if isinstance(value, (Tensor, np.ndarray)):
            value = as_tensor_copy(value, "value")
        else:
            value = finite_number(value, "value")
        object.__setattr__(self, "value", value)

    def edit(self, act: Tensor) -> Tensor:
        if isinstance(self.value, Tensor):
            return _like(self.value, act).expand_as(act)
        return torch.full_like(act, self.value)

    def _params(self) -> list[str]:
        v = self.value
        return [f"value={_fmt_shape(v)}" if isinstance(v, Tensor) else f"value={v}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if isinstance(self.value, Tensor):
            try:
                torch.broadcast_shapes(tuple(self.value.shape), shape)
            except RuntimeError:
                raise ValueError(f"{self}: value of shape {tuple(self.value.shape)} does not broadcast "
                                 f"to hook point {self.hook!r} of shape {shape}") from None


SetValue = Clamp
"""The other common name of :class:`Clamp`: the same class, so ``SetValue(...)`` makes a ``Clamp``."""


@dataclass(frozen=True, eq=False, repr=False)
class Patch(Intervention):
    """Replace the selected entries with activations cached from another input.

    ``source`` is (B, C, H, W) / (B, F) -- one source per batch element, so the
    batch sizes must match -- or (C, H, W) / (F,), used for every element.

    >>> from mazeinterp.core.hooks import render_states, run_with_cache
    >>> other_obs = render_states([s.without_cheese() for s in states[:2]])
    >>> _, cache = run_with_cache(model, other_obs, ["embedder.relu3_out"])
    >>> patch = Patch("embedder.relu3_out", cache["embedder.relu3_out"], channels=[5])
    """

    source: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "source", as_tensor_copy(self.source, "source"))

    @classmethod
    def from_input(cls, model: ImpalaPolicy, hook: str, x: np.ndarray | Tensor, *, channels: Any = None,
                   pixels: Any = None) -> Patch:
        """Patch with ``hook``'s activations (B, ...) on ``x``: float (B, 3, 64, 64) or uint8 (B, 64, 64, 3)."""
        _, cache = run_with_cache(model, x, [hook], stop_early=True)
        return cls(hook, cache[hook], channels=channels, pixels=pixels)

    def edit(self, act: Tensor) -> Tensor:
        src = _like(self.source, act)
        if src.ndim == act.ndim:
            if src.shape[0] != act.shape[0]:
                raise ValueError(f"{self}: source batch of {src.shape[0]} does not match activation "
                                 f"batch of {act.shape[0]}")
            return src
        return src.expand_as(act)

    def _params(self) -> list[str]:
        return [f"source={_fmt_shape(self.source)}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        ss = tuple(self.source.shape)
        if ss != shape and ss[1:] != shape:
            raise ValueError(f"{self}: source has shape {ss}, hook point {self.hook!r} needs {shape} "
                             f"or (B, {', '.join(map(str, shape))})")


@dataclass(frozen=True, eq=False, repr=False)
class Scale(Intervention):
    """Multiply the selected entries by ``factor``.

    >>> Scale("fc_policy_out", 0.5)(torch.ones(1, 15))[0, :3]
    tensor([0.5000, 0.5000, 0.5000])
    """

    factor: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "factor", finite_number(self.factor, "factor"))

    def edit(self, act: Tensor) -> Tensor:
        return act * self.factor

    def _params(self) -> list[str]:
        return [f"factor={self.factor}"]


