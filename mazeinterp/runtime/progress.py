"""Progress reports of long loops: a tqdm bar on a terminal or in Jupyter, stderr lines otherwise.

:func:`progress_bar` returns an object with tqdm's interface (``update``,
``set_postfix_str``, ``close``, iteration, use as a context manager). Where
nobody would see a bar redraw (a log file, a pipe, CI) it writes one line to
stderr at most every :data:`INTERVAL_S` seconds instead, and a last line when
the loop ends, so a long run is never silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Any

__all__ = ["INTERVAL_S", "LineProgress", "progress_bar"]

INTERVAL_S = 2.0
"""Seconds between two progress reports (bar redraws or stderr lines)."""


class LineProgress:
    """tqdm's interface, reported as stderr lines ``desc: done/total units, postfix, elapsed``.

    ``interval``: seconds between lines (None: :data:`INTERVAL_S`); ``stream``: where to write
    (None: ``sys.stderr`` at the time of writing).
    """

    def __init__(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", interval: float | None = None, stream: Any = None) -> None:
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if isinstance(iterable, Sized) else None)
        self.desc = desc
        self.unit = unit
        self.interval = INTERVAL_S if interval is None else interval
        self.stream = stream
        self.n = 0
        self.postfix = ""
        self.started = self._last = time.perf_counter()
        self._closed = False
        self._last_shown: tuple[int, str] | None = None

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; write a line if the last one is :attr:`interval` seconds old."""
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.interval:
            self._write(now)

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        """Text shown after the count (e.g. ``"1234 frames/s"``)."""
        self.postfix = text
        if refresh:
            self.update(0)

    def refresh(self) -> None:
        """Write a line now."""
        self._write(time.perf_counter())

    def close(self) -> None:
        """Write the last line (once), if the loop ran long enough to have reported before."""
        if not self._closed:
            self._closed = True
            if self._last > self.started and (self.n, self.postfix) != self._last_shown:
                self._write(time.perf_counter())

    def _write(self, now: float) -> None:
        self._last = now
        self._last_shown = (self.n, self.postfix)
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        parts = [f"{count} {self.unit}s", self.postfix, f"{now - self.started:.0f} s"]
        stream = self.stream or sys.stderr
        print(f"{self.desc}: " + ", ".join(p for p in parts if p), file=stream, flush=True)


def _in_notebook_with_widgets() -> bool:
    """Whether this process is a Jupyter kernel (not merely a process that imported IPython) with ipywidgets."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401  (tqdm's notebook bar needs it; without it tqdm warns)
    except ImportError:
        return False
    return True


def progress_bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", enabled: bool | None = True) -> Any:
    """A progress reporter for a loop of ``total`` items (or over ``iterable``).

    Args:
        enabled: False → silent; None → a bar on a terminal or in Jupyter, silent
            elsewhere; True → a bar on a terminal or in Jupyter, else stderr lines
            every :data:`INTERVAL_S` seconds.

    Returns:
        a ``tqdm`` bar or a :class:`LineProgress` (both: ``update``,
        ``set_postfix_str``, ``close``, context manager, iteration).
    """
    notebook = _in_notebook_with_widgets()
    terminal = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if enabled is False or (enabled is None and not (notebook or terminal)):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True)
    if notebook:
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, mininterval=0.5)
    if terminal:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, mininterval=0.5)
    return LineProgress(iterable, total=total, desc=desc, unit=unit)
