"""How many CPU threads torch uses for the network's forward passes.

torch's own default (one thread per core) collapses on a busy machine: when
other processes hold the cores, every intra-op thread hand-off waits for a
time slice, and a batch-2 forward pass of the IMPALA CNN can take tens of
times longer than on one thread. Small batches gain nothing from more threads
anyway, so :func:`default_threads` uses one thread for them; for large batches it
uses a few, but only as many as there are cores that no other process is
running on at that moment. ``scripts/bench_threads.py`` measures each setting
on a loaded machine.

>>> default_threads(batch_size=5)
1
>>> with torch_threads(1):
...     torch.get_num_threads()
1
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch

from mazeinterp.runtime.values import check_positive_int

__all__ = ["SMALL_BATCH", "available_cpus", "busy_cpus", "default_threads", "torch_threads"]

SMALL_BATCH = 16
"""Batches of at most this many observations run on one thread by default."""
MAX_DEFAULT_THREADS = 4
"""Most threads :func:`default_threads` picks for large batches (more rarely pay off on a conv net this small)."""


def available_cpus() -> int:
    """Number of CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def busy_cpus(samples: int = 3, interval_s: float = 0.005) -> int:
    """How many other threads are running right now (Linux ``/proc/loadavg``; 0 where unknown).

    The kernel's count of runnable threads, less the one reading it, taken ``samples`` times
    ``interval_s`` apart; the smallest count is kept, so a process that only passes through is
    not counted, while one that holds a core is.
    """
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, IndexError, ValueError):
            return 0
        counts.append(max(0, running - 1))
        if i + 1 < samples:
            time.sleep(interval_s)
    return min(counts)


def default_threads(batch_size: int, busy: int | None = None) -> int:
    """Threads for forward passes of ``batch_size`` observations.

    1 for batches of at most :data:`SMALL_BATCH`; otherwise the cores no other process is
    running on (:func:`available_cpus` less ``busy``, by default :func:`busy_cpus`), at most
    :data:`MAX_DEFAULT_THREADS` and at least 1. A thread that must share its core makes every
    forward pass wait for its time slice, which is slower than not having it.

    >>> default_threads(256, busy=available_cpus())
    1
    """
    if batch_size <= SMALL_BATCH:
        return 1
    if busy is None:
        busy = busy_cpus()
    return max(1, min(MAX_DEFAULT_THREADS, available_cpus() - busy))


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is None (automatic) or a positive int; ValueError otherwise."""
    return check_positive_int(threads, "threads", or_none=True)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``; restore the previous count afterwards."""
    check_threads(threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
