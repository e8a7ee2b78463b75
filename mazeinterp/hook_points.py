"""A model's hook points as a table, and checks of hook points and channels that a user names.

The command line and scripts take a hook point (``--layer``) and channel
indices from the user; these functions check them against the model before
any work, with a message that names the bad value and what would fit.

>>> from mazeinterp.model import ImpalaPolicy
>>> model = ImpalaPolicy(scale=1)
>>> check_hook_point(model, "embedder.relu3_out", need_map=True)
(32, 8, 8)
>>> check_channels("embedder.relu3_out", (32, 8, 8), [3, 7, 3])
[3, 7]
>>> check_channels("embedder.relu3_out", (32, 8, 8), [40])
Traceback (most recent call last):
ValueError: channel 40 is out of range for layer 'embedder.relu3_out', which has 32 channels (0..31)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mazeinterp.model import ImpalaPolicy


def check_hook_point(model: ImpalaPolicy, hook: str, *, need_map: bool = False) -> tuple[int, ...]:
    """The per-example shape of ``model``'s hook point ``hook``, after checking that it exists.

    Args:
        model: the policy whose :meth:`~mazeinterp.model.ImpalaPolicy.hook_points` are searched.
        hook: a hook point name such as ``embedder.block2.res1.resadd_out``.
        need_map: also require a ``(C, H, W)`` map (not a vector of features).

    Returns:
        The shape without the batch dimension: ``(C, H, W)`` or ``(F,)``.

    Raises:
        ValueError: an unknown hook point (the message lists close names), or a
            vector where ``need_map`` asks for a map.
    """
    points = model.hook_points()
    if hook not in points:
        try:
            model.module_for_hook(hook)
        except KeyError as exc:  # its message lists close names
            raise ValueError(exc.args[0] if exc.args else f"{hook!r} is not a hook point") from None
        raise ValueError(f"{hook!r} is not a hook point")
    shape = points[hook]
    if need_map and len(shape) != 3:
        raise ValueError(f"layer {hook!r} has shape {shape}; this needs a (C, H, W) map layer")
    return shape


def check_channels(hook: str, shape: tuple[int, ...], channels: Sequence[int]) -> list[int]:
    """``channels`` without repeats (first occurrence kept), after checking each lies in ``0 .. shape[0] - 1``.

    Args:
        hook: the hook point's name (for the message).
        shape: its per-example shape (:func:`check_hook_point`); ``shape[0]`` is the channel count.
        channels: channel indices as the user gave them.

    Raises:
        ValueError: the first channel out of range, with the layer's channel count.
    """
    bad = [c for c in channels if not 0 <= c < shape[0]]
    if bad:
        raise ValueError(f"channel {bad[0]} is out of range for layer {hook!r}, which has {shape[0]} "
                         f"channels (0..{shape[0] - 1})")
    return list(dict.fromkeys(channels))


def hook_point_rows(model: ImpalaPolicy) -> list[dict[str, Any]]:
    """One row per hook point of ``model``, in forward order: name, shape (``"32x16x16"``), channels, resolution.

    ``resolution`` is the map's height for ``(C, H, W)`` maps and None for vectors.
    """
    return [{"hook_point": name, "shape": "x".join(map(str, shape)), "channels": shape[0],
             "resolution": shape[1] if len(shape) == 3 else None} for name, shape in model.hook_points().items()]
