"""Device names → torch devices: one rule for the trainers, the command line and the library.

>>> choose_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import torch

__all__ = ["choose_device"]


def choose_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a :class:`torch.device`.

    ``"auto"`` picks ``cuda`` when a CUDA device is usable, else ``cpu``; any
    other name (``"cpu"``, ``"cuda"``, ``"cuda:1"``) is taken as given.

    Raises:
        ValueError: the name is not a torch device, or names CUDA where none is available.
    """
    if isinstance(name, torch.device):
        device = name
    elif str(name).lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(str(name))
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device (use 'auto' or 'cpu')")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device
