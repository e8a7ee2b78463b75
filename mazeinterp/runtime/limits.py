"""Resource bounds, checked before work starts: a request that cannot fit is refused with one line naming the limit.

Each check estimates the memory a setting needs from the sizes below (measured
on procgen 0.10.7 and the IMPALA policy) and compares it with this machine's
physical memory (:func:`memory_limit`). The estimates count only what is
certainly held at once, so a refusal is never a false alarm: a request refused
here would have failed (or swapped the machine to a halt) later, after work.

This module imports nothing heavy.

>>> check_rollout_memory(batch_size=64, max_steps=500, what="RolloutConfig")
>>> MAX_EPISODE_STEPS
2147483646
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from mazeinterp.runtime.values import check_positive_int

__all__ = [
    "ENV_BYTES",
    "FLOAT32_MAX",
    "MAX_CHECKPOINT_BYTES",
    "MAX_EPISODE_STEPS",
    "OBS_BYTES",
    "STATE_BYTES",
    "ResourceLimitError",
    "check_episode_steps",
    "check_forward_batch",
    "check_memory",
    "check_rollout_memory",
    "check_states_memory",
    "format_bytes",
    "forward_bytes_per_input",
    "memory_limit",
]

FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite float32: a number beyond it cannot reach the network as a value."""

MAX_EPISODE_STEPS = 2**31 - 2
"""Largest step cap: procgen stores an episode's timeout as a 32-bit int, and the cap is raised to ``max_steps + 1``."""

ENV_BYTES = 2 * 2**20
"""Memory of one procgen maze env (measured: 1.9 MB each for 256 envs)."""

STATE_BYTES = 22 * 2**10
"""Memory of one maze state held in Python (its ~21 KB of procgen bytes)."""

OBS_BYTES = 64 * 64 * 3
"""Memory of one uint8 observation."""

STEP_BYTES = 8
"""Memory per step of an episode's cap: one float64 uniform per step and env, drawn before the episode runs."""

MAX_CHECKPOINT_BYTES = 2**30
"""Largest checkpoint file read (1 GiB). The published scale-4 agent with its optimizer state is about 44 MB;
a scale-16 agent would be under 700 MB."""


class ResourceLimitError(ValueError):
    """A setting needs more than a limit allows; the message names the setting, the need and the limit."""


def memory_limit() -> int:
    """This machine's physical memory in bytes (16 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 16 * 2**30


def format_bytes(n_bytes: float) -> str:
    """``n_bytes`` as a short human size: ``format_bytes(3 * 2**30)`` is ``"3.0 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def check_memory(what: str, needed: int, advice: str) -> None:
    """Raise :class:`ResourceLimitError` when ``needed`` bytes exceed :func:`memory_limit`.

    ``what`` names the setting and its cost (``"64 envs × 1e10 steps"``), ``advice`` says what to lower.
    """
    limit = memory_limit()
    if needed > limit:
        raise ResourceLimitError(f"{what} would need at least {format_bytes(needed)} of memory, more than this "
                                 f"machine's {format_bytes(limit)}; {advice}")


def check_episode_steps(max_steps: int, what: str) -> None:
    """Raise :class:`ResourceLimitError` when ``max_steps`` exceeds :data:`MAX_EPISODE_STEPS`; ``what`` names it."""
    if max_steps > MAX_EPISODE_STEPS:
        raise ResourceLimitError(f"{what}: {max_steps} is above procgen's limit of "
                                 f"{MAX_EPISODE_STEPS} steps per episode (a 32-bit timeout)")


def check_rollout_memory(batch_size: int, max_steps: int, what: str) -> None:
    """Refuse rollouts of ``batch_size`` envs with a cap of ``max_steps`` steps that cannot fit in memory.

    Counts :data:`ENV_BYTES` per env and :data:`STEP_BYTES` per step of each env's cap.
    """
    needed = batch_size * (ENV_BYTES + STEP_BYTES * max_steps)
    check_memory(f"{what}: {batch_size} envs × {max_steps} steps", needed, "lower max_steps or batch_size")


def check_states_memory(n_states: int, what: str, *, observations: bool = False) -> None:
    """Refuse holding ``n_states`` maze states (and their observations) at once when they cannot fit in memory."""
    needed = n_states * (STATE_BYTES + (OBS_BYTES if observations else 0))
    check_memory(f"{what}: {n_states} mazes", needed, "use fewer mazes")


def forward_bytes_per_input(hook_shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Float32 bytes a forward pass certainly holds per input: its largest activation and the input (3, 64, 64).

    ``hook_shapes``: hook point → per-example shape (:meth:`mazeinterp.core.model.ImpalaPolicy.hook_points`).
    """
    return 4 * (max(math.prod(shape) for shape in hook_shapes.values()) + 3 * 64 * 64)


def check_forward_batch(batch_size: int, hook_shapes: Mapping[str, tuple[int, ...]], what: str) -> None:
    """Refuse a forward batch whose activations cannot fit in memory; ``batch_size`` must be a positive int.

    Raises:
        ValueError: ``batch_size`` is not a positive int.
        ResourceLimitError: ``batch_size`` inputs' activations (:func:`forward_bytes_per_input`) exceed memory.
    """
    check_positive_int(batch_size, f"{what}: batch_size")
    needed = batch_size * forward_bytes_per_input(hook_shapes)
    check_memory(f"{what}: a forward batch of {batch_size} inputs", needed, "lower batch_size")
