"""The base class of interventions, their validation against a model, and the list form the drivers take.

:class:`Intervention` is what :func:`mazeinterp.core.hooks.intervene` applies: an
immutable edit of one hook point's activation, restricted to some channels and
activation pixels. The edits themselves (ablations, added vectors, clamps,
patches, scales) are in :mod:`mazeinterp.core.interventions`, which re-exports the
names defined here; this module imports nothing of the package but the
hook-point rules (:mod:`mazeinterp.core.hook_points`), so that the
hook machinery can depend on it while the edits depend on the hook machinery.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mazeinterp.core.hook_points import UnknownHookPointError, check_channels, check_pixels, hook_shape

if TYPE_CHECKING:
    from mazeinterp.core.model import ImpalaPolicy

__all__ = ["Intervention", "as_intervention_list", "validate"]


# --------------------------------------------------------------------------- helpers


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
