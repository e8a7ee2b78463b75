"""Non-finite numbers never become results: checks of coefficients, held tensors and the policy's logits.

A NaN or inf anywhere in a forward pass reaches the logits, and a softmax of
NaN logits samples no sensible move: an episode would end as "neither" and look
like a result. So every forward pass that feeds a decision (rollouts, vector
fields, exact outcomes, the explorer, channel tables) passes its logits through
:func:`check_logits`, and every intervention refuses non-finite numbers when it
is made (:func:`finite_number`, :func:`check_finite_tensor`).

Counts and sizes of the library's settings (a model's scale, batch sizes, step
caps, thread counts) pass the one positive-int check, :func:`check_positive_int`.

This module imports nothing heavy; the tensors it checks bring their own torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, SupportsFloat

from mazeinterp.runtime.limits import FLOAT32_MAX

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["FLOAT32_MAX", "NonFiniteOutputError", "check_finite_tensor", "check_logits", "finite_number"]


class NonFiniteOutputError(ValueError):
    """The policy's logits hold NaN or inf; the message names the checkpoint and the interventions."""


def finite_number(value: SupportsFloat, name: str) -> float:
    """``value`` as a float, refused (ValueError naming ``name``) when NaN, ±inf or beyond float32's range.

    >>> finite_number(2, "factor")
    2.0
    >>> finite_number(float("nan"), "factor")
    Traceback (most recent call last):
    ValueError: factor must be a finite number, got nan
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    if abs(number) > FLOAT32_MAX:
        raise ValueError(f"{name} must be a finite number within float32's range (±{FLOAT32_MAX:.3g}), "
                         f"got {number:g}")
    return number


def check_finite_tensor(tensor: Tensor, name: str) -> None:
    """Raise ValueError naming ``name`` when ``tensor`` (any shape) holds NaN or ±inf; integer tensors pass."""
    if not tensor.is_floating_point():
        return
    finite = tensor.isfinite()
    if not bool(finite.all()):
        bad = int((~finite).sum().item())
        raise ValueError(f"{name} holds {bad} NaN or inf value(s) of {tensor.numel()}")


def _describe(model: Any, interventions: Sequence[Any]) -> str:
    source = getattr(model, "source", None)
    checkpoint = f"checkpoint {source}" if source else f"an unsaved {type(model).__name__}"
    edits = ", ".join(repr(iv) for iv in interventions) if interventions else "no interventions"
    return f"{checkpoint} with {edits}"


def check_logits(logits: Tensor, model: object, interventions: Sequence[object] = (), *,
                 impossible_actions: bool = False) -> Tensor:
    """Return ``logits`` (B, 15) unchanged when every row is finite; else raise :class:`NonFiniteOutputError`.

    ``impossible_actions``: also pass -inf entries beside a finite maximum
    (hand-written policies mark impossible actions so; a network's -inf is an
    overflow). The message says how many of the B rows are broken and names
    the checkpoint (``model.source``) and ``interventions``, the usual causes
    (a coefficient so large that activations overflow, broken weights).
    """
    z = logits.detach()
    if impossible_actions:
        finite = ~z.isnan().any(dim=-1) & z.max(dim=-1).values.isfinite()
    else:
        finite = z.isfinite().all(dim=-1)
    if bool(finite.all()):
        return logits
    bad = int((~finite).sum().item())
    raise NonFiniteOutputError(
        f"the policy's logits hold NaN or inf in {bad} of {finite.numel()} input(s) ({_describe(model, interventions)}); "
        "an activation overflowed or the weights are broken, so no move can be chosen")
