"""The rules for hook points and channels that a user names, and a model's hook points as a table.

Every place that takes a hook point, channels or activation pixels from a user
(the command line, interventions, channel finders, sweeps, the explorer)
checks them with these functions, so each mistake gets one message wherever it
is made: an unknown name lists close names, an out-of-range channel names the
hook point and its channel count. :func:`check_layer` is the one check of a
hook point with its channels; a caller that reports mistakes with its own
exception (the command line's, a sweep config's) passes it as ``error``.
Callers that add context (which intervention, which config key) prefix the
message.

>>> shapes = {"embedder.relu3_out": (32, 8, 8), "fc_policy_out": (15,)}
>>> hook_shape(shapes, "embedder.relu3_out", need_map=True)
(32, 8, 8)
>>> check_channels("embedder.relu3_out", (32, 8, 8), [3, 7, 3])
[3, 7]
>>> check_channels("embedder.relu3_out", (32, 8, 8), [40])
Traceback (most recent call last):
ValueError: channel 40 is out of range for hook point 'embedder.relu3_out', which has 32 channels (0..31)
>>> check_layer(shapes, "embedder.relu3_out", [3, 7, 3], need_map=True)
((32, 8, 8), [3, 7])
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

HOOK_SUFFIX = "_out"
"""A hook point is named ``<module path>_out``: the output of that module."""

Shapes = Mapping[str, tuple[int, ...]]
"""Hook point name → per-example shape ((C, H, W) or (F,)), as ``ImpalaPolicy.hook_points()`` returns."""


class HasHookPoints(Protocol):
    """Anything with ``hook_points()`` (an :class:`~mazeinterp.core.model.ImpalaPolicy`)."""

    def hook_points(self) -> dict[str, tuple[int, ...]]: ...


class UnknownHookPointError(KeyError, ValueError):
    """A hook point name the model does not have; the message lists close names.

    Both a KeyError (a failed lookup by name) and a ValueError (bad user input),
    so either ``except`` catches it; ``str()`` is the message itself.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown hook point"


def unknown_hook_point(name: str, known: Iterable[str]) -> UnknownHookPointError:
    """The error for hook point ``name``, suggesting up to five close names from ``known``."""
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownHookPointError(f"unknown hook point {name!r} (hook points are '<module path>{HOOK_SUFFIX}', "
                                 f"see ImpalaPolicy.hook_points()){hint}")


def hook_shape(shapes: Shapes, hook: str, *, need_map: bool = False) -> tuple[int, ...]:
    """The per-example shape of hook point ``hook``: ``(C, H, W)`` or ``(F,)``.

    Args:
        shapes: the model's hook points and shapes (``model.hook_points()``).
        hook: a hook point name such as ``embedder.block2.res1.resadd_out``.
        need_map: also require a ``(C, H, W)`` map (not a vector of features).

    Raises:
        UnknownHookPointError: ``hook`` is not in ``shapes`` (the message lists close names).
        ValueError: a vector where ``need_map`` asks for a map.
    """
    if hook not in shapes:
        raise unknown_hook_point(hook, shapes)
    shape = tuple(shapes[hook])
    if need_map and len(shape) != 3:
        raise ValueError(f"hook point {hook!r} has shape {shape}; this needs a (C, H, W) map")
    return shape


def check_hook_point(model: HasHookPoints, hook: str, *, need_map: bool = False) -> tuple[int, ...]:
    """:func:`hook_shape` on ``model.hook_points()``."""
    return hook_shape(model.hook_points(), hook, need_map=need_map)


def check_channels(hook: str, shape: tuple[int, ...], channels: Iterable[int]) -> list[int]:
    """``channels`` without repeats (first occurrence kept), after checking each lies in ``0 .. shape[0] - 1``.

    Args:
        hook: the hook point's name (for the message).
        shape: its per-example shape (:func:`hook_shape`); ``shape[0]`` is the channel (or feature) count.
        channels: channel indices as the user gave them.

    Raises:
        ValueError: the first channel out of range, with the hook point's channel count.
    """
    channels = list(channels)
    bad = [c for c in channels if not 0 <= c < shape[0]]
    if bad:
        what = "channels" if len(shape) == 3 else "features"
        raise ValueError(f"channel {bad[0]} is out of range for hook point {hook!r}, which has {shape[0]} "
                         f"{what} (0..{shape[0] - 1})")
    return list(dict.fromkeys(channels))


def check_layer(shapes: Shapes | HasHookPoints, hook: str, channels: Iterable[int] | None = None, *,
                need_map: bool = False, error: Callable[[str], Exception] | None = None,
                ) -> tuple[tuple[int, ...], list[int] | None]:
    """The shape of hook point ``hook`` and ``channels`` checked against it: the one check of a user's layer.

    Every place that takes a hook point and channels from a user calls this, so
    a mistake gets the same message wherever it is made.

    Args:
        shapes: the model's hook points and shapes (``model.hook_points()``), or the model.
        hook: a hook point name.
        channels: channel indices as the user gave them, or None (not given).
        need_map: also require a ``(C, H, W)`` map (:func:`hook_shape`).
        error: how the caller reports a mistake: an exception type (or any function
            message → exception) raised with the message in place of the checks' own;
            None raises those (:class:`UnknownHookPointError`, ValueError).

    Returns:
        ``(shape, channels)``: the per-example shape, and the channels without repeats
        (:func:`check_channels`), or None when ``channels`` is None.

    Raises:
        UnknownHookPointError: an unknown hook point (``error`` None).
        ValueError: a vector where a map is needed, or a channel out of range (``error`` None).
        Exception: ``error(message)`` for any of these when ``error`` is given.
    """
    table = shapes if isinstance(shapes, Mapping) else shapes.hook_points()
    try:
        shape = hook_shape(table, hook, need_map=need_map)
        return shape, (None if channels is None else check_channels(hook, shape, channels))
    except ValueError as exc:
        if error is None:
            raise
        raise error(str(exc)) from None


def check_pixels(hook: str, shape: tuple[int, ...], pixels: Sequence[tuple[int, int]]) -> None:
    """Check that activation pixels ``(row, col)`` lie inside hook point ``hook``'s ``(C, H, W)`` maps.

    Raises:
        ValueError: ``hook`` is a vector of features, or the first pixel outside its ``H×W`` maps.
    """
    if len(shape) != 3:
        raise ValueError(f"hook point {hook!r} is a vector of {shape[0]} features; "
                         "pixels only apply to (C, H, W) maps")
    h, w = shape[1:]
    for r, c in pixels:
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"pixel {(r, c)} is out of range for hook point {hook!r}, whose maps are {h}×{w}")


def hook_point_rows(model: HasHookPoints) -> list[dict[str, Any]]:
    """One row per hook point of ``model``, in forward order: name, shape (``"32x16x16"``), channels, resolution.

    ``resolution`` is the map's height for ``(C, H, W)`` maps and None for vectors.
    """
    return [{"hook_point": name, "shape": "x".join(map(str, shape)), "channels": shape[0],
             "resolution": shape[1] if len(shape) == 3 else None} for name, shape in model.hook_points().items()]
