"""Helpers for one-line error messages.

>>> short_repr("a" * 100, limit=12)
"'aaaaaaaa..."
>>> short_repr([1, 2])
'[1, 2]'
"""

from __future__ import annotations

from typing import Any

__all__ = ["short_repr"]


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (``...`` marks a cut), on one line."""
    text = repr(value).replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
