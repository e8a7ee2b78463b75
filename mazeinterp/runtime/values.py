"""Checks of plain setting values (counts, sizes) shared across the library, one rule each.

The command line's argparse types live in :mod:`mazeinterp.runtime.arguments`.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_positive_int"]


def check_positive_int(value: Any, name: str, *, or_none: bool = False) -> Any:
    """Return ``value`` unchanged when it is an int ≥ 1 (a Python or numpy integer, not a bool); else ValueError.

    ``or_none``: None passes too (a setting chosen automatically when not given).

    >>> check_positive_int(3, "batch_size")
    3
    >>> check_positive_int(0, "RolloutConfig.batch_size")
    Traceback (most recent call last):
    ValueError: RolloutConfig.batch_size must be a positive int, got 0
    >>> check_positive_int(2.0, "threads", or_none=True)
    Traceback (most recent call last):
    ValueError: threads must be a positive int or None, got 2.0
    """
    if value is None and or_none:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if or_none else ''}, got {value!r}")
    return value
