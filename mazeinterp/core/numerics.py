"""Which numerics the network runs with: the fast path (the default) or the reference path.

Every forward pass of :class:`~mazeinterp.core.model.ImpalaPolicy` -- rollouts, vector
fields, exact outcome probabilities, the explorer, sweeps, training -- lays its
input out by :func:`as_network_input`, the one place this is decided:

* **fast** (default): on CPU and CUDA the activations are channels-last (NHWC in
  memory, still indexed (B, C, H, W)); the whole scale-4 forward pass is then
  about 1.5× faster on a CPU (``scripts/bench_forward.py`` measures it). The
  numbers differ from the reference path by float32 rounding only
  (``docs/concepts.md``, "Fast and reference numerics", states by how much).
* **reference**: the contiguous (NCHW) layout, the same kernels as the published
  research code, bit for bit. Switch it on with :func:`reference_numerics`, the
  environment variable ``MAZEINTERP_REFERENCE_NUMERICS=1``, or
  ``--reference-numerics`` on the command line.

The switch is the environment variable itself, so worker processes started by a
sweep inherit it. :func:`numerics_record` is what a run writes into its
``summary.json``, so results from the two settings can be told apart.

>>> with reference_numerics():
...     numerics_mode()
'reference'
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "ENV_VAR",
    "as_network_input",
    "check_reference_weights",
    "is_reference",
    "memory_format",
    "numerics_mode",
    "numerics_record",
    "reference_numerics",
    "reference_unless",
]

ENV_VAR = "MAZEINTERP_REFERENCE_NUMERICS"
"""Environment variable of the switch: ``1``/``true``/``yes``/``on`` → reference; unset, empty, ``0``/``false``/
``no``/``off`` → fast."""
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
FAST_DEVICE_TYPES = frozenset({"cpu", "cuda"})
"""Device types whose fast path is channels-last (others keep the contiguous layout)."""


def is_reference() -> bool:
    """Whether the reference numerics are switched on (read from :data:`ENV_VAR` at each call).

    Raises:
        ValueError: the variable holds something other than a yes/no word.
    """
    text = os.environ.get(ENV_VAR, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"environment variable {ENV_VAR}={os.environ[ENV_VAR]!r} is not one of 1/0, true/false, "
                     "yes/no, on/off")


def numerics_mode() -> str:
    """``"reference"`` or ``"fast"``: the numerics forward passes run with now."""
    return "reference" if is_reference() else "fast"


@contextmanager
def reference_numerics(enabled: bool = True) -> Iterator[None]:
    """Run the block with the reference numerics (``enabled=False``: with the fast path); restore afterwards.

    Sets :data:`ENV_VAR` for the whole process (and the worker processes it starts) and
    puts back its earlier value on exit, also when the block raises.
    """
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = "1" if enabled else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = before


def reference_unless(channels_last: bool) -> AbstractContextManager[None]:
    """The numerics a run's ``channels_last`` setting asks for, as a context manager.

    ``channels_last=True`` (the settings' default) leaves the choice to the switch (fast unless the
    reference numerics are on); ``False`` runs the block with :func:`reference_numerics`.
    """
    return nullcontext() if channels_last else reference_numerics()


def memory_format(device: torch.device | str) -> torch.memory_format:
    """The layout of 4-d activations on ``device`` under the current numerics.

    ``torch.channels_last`` on the fast path on CPU and CUDA; ``torch.contiguous_format``
    on the reference path and on other devices.
    """
    import torch

    device_type = torch.device(device).type
    if device_type in FAST_DEVICE_TYPES and not is_reference():
        return torch.channels_last
    return torch.contiguous_format


def as_network_input(x: Tensor) -> Tensor:
    """``x`` laid out for the network's next layer: 4-d (B, C, H, W) tensors in :func:`memory_format`.

    Same shape and values; other tensors (e.g. (B, F) vectors) are returned unchanged.
    No copy when ``x`` already has the layout.
    """
    if x.ndim != 4:
        return x
    return x.contiguous(memory_format=memory_format(x.device))


def check_reference_weights(weight: Tensor) -> None:
    """Refuse the reference path with a convolution weight (O, I, kh, kw) that is not contiguous.

    A channels-last weight makes PyTorch's convolutions switch to the channels-last
    kernels even on contiguous input, so the numbers would not be the reference ones.

    Raises:
        ValueError: reference numerics are on and ``weight`` is not contiguous.
    """
    if not weight.is_contiguous() and is_reference():
        raise ValueError("reference numerics need contiguous convolution weights, but the model's are laid out "
                         "channels-last; call model.to(memory_format=torch.contiguous_format) first")


def numerics_record(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a run writes into ``summary.json`` about its numerics.

    Returns ``{"numerics": "fast" | "reference", "memory_format": "channels_last" | "contiguous"}``
    for forward passes on ``device``.
    """
    import torch

    layout = "channels_last" if memory_format(device) == torch.channels_last else "contiguous"
    return {"numerics": numerics_mode(), "memory_format": layout}
