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

An intervention only describes its edit and never runs the model; edits whose values
come from the network (means, resampling pools, patches) are built in
:mod:`mazeinterp.analysis.references`.
"""

from __future__ import annotations

import abc
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mazeinterp.core.finite import check_finite_tensor, finite_number
from mazeinterp.core.hook_points import UnknownHookPointError, check_channels, check_pixels, hook_shape

if TYPE_CHECKING:
    from mazeinterp.core.model import ImpalaPolicy

__all__ = [
    "AddVector",
    "Clamp",
    "EpisodeRows",
    "Intervention",
    "MeanAblate",
    "Patch",
    "PerEpisodeIntervention",
    "ResampleAblate",
    "Scale",
    "SetValue",
    "ValidatedInterventions",
    "ZeroAblate",
    "as_intervention_list",
    "as_tensor_copy",
    "validate",
    "validate_interventions",
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


def _norm_channels(channels: Any) -> tuple[int, ...] | None:
    if channels is None:
        return None
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        channels = (channels,)
    if isinstance(channels, Tensor):
        channels = channels.tolist()
    try:
        out = tuple(operator.index(c) for c in channels)
    except TypeError:
        raise TypeError(f"channels must be None, an int or a sequence of ints, got {channels!r}") from None
    if not out:
        raise ValueError("channels must not be empty (use None for all channels)")
    if any(c < 0 for c in out):
        raise ValueError(f"channels must be non-negative, got {list(out)}")
    return out


def _norm_pixels(pixels: Any) -> tuple[tuple[int, int], ...] | None:
    if pixels is None:
        return None
    if isinstance(pixels, np.ndarray) or isinstance(pixels, Tensor):
        pixels = pixels.tolist()
    pixels = list(pixels)
    if len(pixels) == 2 and all(isinstance(v, (int, np.integer)) for v in pixels):
        pixels = [tuple(pixels)]  # a single (row, col) pair
    try:
        out = tuple((operator.index(p[0]), operator.index(p[1])) for p in pixels if len(p) == 2)
    except TypeError:
        out = ()
    if len(out) != len(pixels) or not out:
        raise ValueError(f"pixels must be None or a non-empty sequence of (row, col) int pairs, got {pixels!r}")
    if any(r < 0 or c < 0 for r, c in out):
        raise ValueError(f"pixels must be non-negative, got {list(out)}")
    return out


def _fmt_list(values: Sequence[Any], limit: int = 8) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return f"[{shown}, … ({len(values)} in all)]" if len(values) > limit else f"[{shown}]"


def _fmt_shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _like(t: Tensor, act: Tensor) -> Tensor:
    return t.to(device=act.device, dtype=act.dtype)  # ``t`` itself when both already match


# --------------------------------------------------------------------------- base class


@dataclass(frozen=True, eq=False, repr=False)
class Intervention:
    """Base class: an edit of hook point ``hook``, on ``channels`` × ``pixels``.

    Subclasses implement :meth:`edit`, which returns the fully edited activation
    (same shape); :meth:`__call__` keeps that edit only on the selected channels
    and pixels. Instances are immutable; tensors they hold are private copies.

    Attributes:
        hook: hook point name, e.g. ``"embedder.relu3_out"``.
        channels: channel (or feature) indices to edit; None = all.
        pixels: ``(row, col)`` activation pixels to edit; None = every position.
            Only for (C, H, W) hook points.
    """

    hook: str
    channels: tuple[int, ...] | None = field(default=None, kw_only=True)
    pixels: tuple[tuple[int, int], ...] | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.hook, str) or not self.hook:
            raise TypeError(f"hook must be a hook-point name (str), got {self.hook!r}")
        object.__setattr__(self, "channels", _norm_channels(self.channels))
        object.__setattr__(self, "pixels", _norm_pixels(self.pixels))

    # -- to implement
    def edit(self, act: Tensor) -> Tensor:
        """The edited activation everywhere (B, ...) → (B, ...); never modifies ``act``."""
        raise NotImplementedError

    def _params(self) -> list[str]:
        """Extra ``name=value`` strings for the repr."""
        return []

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError if held tensors do not fit a hook point of per-example ``shape``."""

    # -- shared machinery
    def mask(self, act: Tensor) -> Tensor | None:
        """Boolean mask of the edited entries, per example ((C, H, W) or (F,)); None = everything."""
        if self.channels is None and self.pixels is None:
            return None
        shape = act.shape[1:]
        mask = torch.ones(shape, dtype=torch.bool, device=act.device)
        if self.channels is not None:
            chan = torch.zeros(shape[0], dtype=torch.bool, device=act.device)
            chan[list(self.channels)] = True
            mask &= chan.view(-1, *([1] * (len(shape) - 1)))
        if self.pixels is not None:
            if len(shape) != 3:
                raise ValueError(f"{self}: pixels only apply to (C, H, W) activations, got shape {tuple(act.shape)}")
            pix = torch.zeros(shape[1:], dtype=torch.bool, device=act.device)
            rows, cols = zip(*self.pixels)
            pix[list(rows), list(cols)] = True
            mask &= pix.unsqueeze(0)
        return mask

    def __call__(self, act: Tensor) -> Tensor:
        """Return the edited activation (a new tensor); unselected entries are unchanged."""
        edited = self.edit(act)
        mask = self.mask(act)
        return edited if mask is None else torch.where(mask, edited, act)

    def __repr__(self) -> str:
        parts = [self.hook, *self._params()]
        if self.channels is not None:
            parts.append(f"channels={_fmt_list(self.channels)}")
        if self.pixels is not None:
            parts.append(f"pixels={_fmt_list(self.pixels, limit=4)}")
        return f"{type(self).__name__}({', '.join(parts)})"

    __str__ = __repr__


# --------------------------------------------------------------------------- per-episode edits


class EpisodeRows:
    """The one mutable state of a per-episode edit: ``indices``, the episode (B,) of each row of the next pass.

    None before the first :meth:`PerEpisodeIntervention.set_episode_indices`; it changes before
    every forward pass of a rollout, so it lives here, apart from the edit's frozen fields.
    """

    def __init__(self) -> None:
        self.indices: Tensor | None = None

    def __repr__(self) -> str:
        return f"EpisodeRows({None if self.indices is None else self.indices.tolist()})"


@dataclass(frozen=True, eq=False, repr=False)
class PerEpisodeIntervention(Intervention, abc.ABC):
    """Base class of edits that differ between the episodes of one batch: the per-episode protocol.

    :func:`mazeinterp.rollout.run_rollouts` finds these with ``isinstance`` and calls
    :meth:`set_episode_indices` before every forward pass with the episode (index into the
    rollout's maze list) of each batch row; outside a rollout, call it yourself. The fields
    are fixed once built; the rows live in :attr:`rows`, a mutable :class:`EpisodeRows` of
    the edit's own (a copy made with ``dataclasses.replace`` gets a fresh one). An edit with
    a ``set_episode_indices`` method that does not subclass this is refused by
    ``run_rollouts`` rather than silently left uninformed.
    """

    rows: EpisodeRows = field(default_factory=EpisodeRows, init=False, repr=False)

    @abc.abstractmethod
    def set_episode_indices(self, indices: Sequence[int] | np.ndarray) -> None:
        """Select the episode of every row (B,) of the next forward pass: check ``indices`` and write :attr:`rows`."""


# --------------------------------------------------------------------------- validation


def validate(model: ImpalaPolicy, intervention: Intervention) -> None:
    """Check ``intervention`` against ``model.hook_points()``; raise a clear ValueError if it does not fit.

    Checks that the hook point exists (the message lists close names), that
    every channel and pixel is in range, that pixels are only given for
    (C, H, W) maps, and that held tensors have the hook point's shape.

    >>> from mazeinterp.core.interventions import ZeroAblate
    >>> from mazeinterp.core.model import ImpalaPolicy
    >>> validate(ImpalaPolicy(1), ZeroAblate("embedder.relu3_out", channels=[40]))
    Traceback (most recent call last):
    ValueError: ZeroAblate(embedder.relu3_out, channels=[40]): channel 40 is out of range for hook point 'embedder.relu3_out', which has 32 channels (0..31)
    """
    if not isinstance(intervention, Intervention):
        raise TypeError(f"expected an Intervention, got {type(intervention).__name__}")
    hook = intervention.hook
    try:
        shape = hook_shape(model.hook_points(), hook)
        check_channels(hook, shape, intervention.channels or ())
        if intervention.pixels is not None:
            check_pixels(hook, shape, intervention.pixels)
    except UnknownHookPointError as exc:
        raise UnknownHookPointError(f"{intervention}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{intervention}: {exc}") from None
    intervention._check_shape(tuple(shape))


def as_intervention_list(interventions: Intervention | Iterable[Intervention] | None) -> list[Intervention]:
    """``interventions`` as a list: None → ``[]``, one intervention → ``[it]``, an iterable → its items.

    Raises:
        TypeError: an item is not an :class:`Intervention`.

    >>> from mazeinterp.core.interventions import Scale
    >>> as_intervention_list(None), as_intervention_list(Scale("fc_value_out", 2.0))
    ([], [Scale(fc_value_out, factor=2.0)])
    """
    if interventions is None:
        return []
    if isinstance(interventions, Intervention):
        return [interventions]
    out = list(interventions)
    for iv in out:
        if not isinstance(iv, Intervention):
            raise TypeError(f"expected Intervention objects, got {type(iv).__name__}")
    return out


class ValidatedInterventions(tuple[Intervention, ...]):
    """A tuple of interventions checked against :attr:`model`: the proof that validation ran, once per call.

    Made only by :func:`validate_interventions` (or :meth:`select`). The inner calls that
    receive it (:func:`mazeinterp.core.hooks.intervene`, each batch of a batched pass) skip the check.
    """

    model: ImpalaPolicy

    def __new__(cls, model: ImpalaPolicy, ivs: Iterable[Intervention], *, _token: object = None) -> ValidatedInterventions:
        if _token is not _MADE_BY_VALIDATION:
            raise TypeError("ValidatedInterventions are made by validate_interventions(model, interventions)")
        self = super().__new__(cls, ivs)
        self.model = model
        return self

    def select(self, keep: Callable[[Intervention], bool]) -> ValidatedInterventions:
        """The interventions for which ``keep`` is true, still validated."""
        return ValidatedInterventions(self.model, [iv for iv in self if keep(iv)], _token=_MADE_BY_VALIDATION)

    def __reduce__(self) -> tuple[Any, ...]:  # a copy or pickle is a plain tuple: the proof does not travel
        return (tuple, (tuple(self),))

    def __repr__(self) -> str:
        return f"ValidatedInterventions({list(self)!r})"


_MADE_BY_VALIDATION = object()


def validate_interventions(model: ImpalaPolicy, interventions: Intervention | Iterable[Intervention] | None) -> ValidatedInterventions:
    """``interventions`` (one, several or None, as :func:`as_intervention_list` reads them), each :func:`validate`-d.

    Already :class:`ValidatedInterventions` for this ``model``: returned as they are, unchecked.

    Raises:
        TypeError: an item is not an :class:`Intervention`.
        ValueError: an intervention does not fit ``model`` (see :func:`validate`).

    >>> checked = validate_interventions(model, ZeroAblate("fc_value_out"))
    >>> checked, validate_interventions(model, checked) is checked
    (ValidatedInterventions([ZeroAblate(fc_value_out)]), True)
    """
    if isinstance(interventions, ValidatedInterventions) and interventions.model is model:
        return interventions
    ivs = as_intervention_list(interventions)
    for iv in ivs:
        validate(model, iv)
    return ValidatedInterventions(model, ivs, _token=_MADE_BY_VALIDATION)


# --------------------------------------------------------------------------- interventions


@dataclass(frozen=True, eq=False, repr=False)
class ZeroAblate(Intervention):
    """Set the selected entries to 0.

    >>> ZeroAblate("embedder.relu3_out", channels=[3, 7])(torch.ones(1, 8, 2, 2))[0, :, 0, 0]
    tensor([1., 1., 1., 0., 1., 1., 1., 0.])
    """

    def edit(self, act: Tensor) -> Tensor:
        return torch.zeros_like(act)


@dataclass(frozen=True, eq=False, repr=False)
class MeanAblate(Intervention):
    """Replace the selected entries with a mean activation ``mean`` ((C, H, W) or (F,)).

    Build it from the mean over random mazes (or observations you pass) with
    :func:`mazeinterp.analysis.references.mean_ablation`:

    >>> MeanAblate("fc_value_out", torch.tensor([0.5]))(torch.zeros(2, 1)).flatten()
    tensor([0.5000, 0.5000])
    """

    mean: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "mean", as_tensor_copy(self.mean, "mean"))

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
    same pairing. :func:`mazeinterp.analysis.references.resample_ablation` records the
    sources on random mazes (or observations you pass).

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
    :func:`mazeinterp.analysis.references.patch_from_input` records it in one call.

    >>> from mazeinterp.core.hooks import render_states, run_with_cache
    >>> other_obs = render_states([s.without_cheese() for s in states[:2]])
    >>> _, cache = run_with_cache(model, other_obs, ["embedder.relu3_out"])
    >>> patch = Patch("embedder.relu3_out", cache["embedder.relu3_out"], channels=[5])
    """

    source: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "source", as_tensor_copy(self.source, "source"))

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


