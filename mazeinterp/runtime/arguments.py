"""Checks of command-line values, as argparse ``type=`` functions: bad input fails at parse time, before any work.

Each function takes the argument's text and returns the parsed value, or
raises :class:`argparse.ArgumentTypeError` with a one-line reason (argparse
turns it into ``mazeinterp CMD: error: argument --x: reason`` and exit 2).
The same checks are available as plain functions for values that do not come
through argparse (:func:`check_output_dir`, :func:`check_device`).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

from mazeinterp.runtime.limits import FLOAT32_MAX
from mazeinterp.runtime.limits import MAX_EPISODE_STEPS, ResourceLimitError, check_states_memory

LEVEL_SEED_LIMIT = 2**31 - 1
"""procgen's level seeds are 0 … LEVEL_SEED_LIMIT - 1."""


def finite_float(text: str) -> float:
    """A finite float within float32's range (no ``nan``, ``inf``, ``1e308``: the network computes in float32)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if abs(value) > FLOAT32_MAX:
        raise argparse.ArgumentTypeError(f"expected a number within float32's range (±{FLOAT32_MAX:.3g}), "
                                         f"got {text!r}")
    return value


def _int(text: str, what: str = "an integer") -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def int_at_least(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer ≥ ``low``, refused as "expected a ``what`` integer, got …".

    >>> positive_int("3"), non_negative_int("0")
    (3, 0)
    >>> positive_int("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a positive integer, got 0
    """

    def parse(text: str) -> int:
        value = _int(text, f"a {what} integer")
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {value}")
        return value

    return parse


positive_int = int_at_least(1, "positive")
"""argparse type: an integer ≥ 1."""
non_negative_int = int_at_least(0, "non-negative")
"""argparse type: an integer ≥ 0."""


def level_seed(text: str) -> int:
    """A procgen level seed: an integer in 0 … 2**31 - 2."""
    value = _int(text)
    if not 0 <= value < LEVEL_SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"level seeds must lie in 0 … {LEVEL_SEED_LIMIT - 1}, got {value}")
    return value


def max_steps(text: str) -> int:
    """A step cap per episode: an integer in 1 … :data:`mazeinterp.runtime.limits.MAX_EPISODE_STEPS` (procgen's limit)."""
    value = positive_int(text)
    if value > MAX_EPISODE_STEPS:
        raise argparse.ArgumentTypeError(f"{value} is above procgen's limit of {MAX_EPISODE_STEPS} steps "
                                         "per episode (a 32-bit timeout)")
    return value


def n_mazes(text: str) -> int:
    """A number of mazes: a positive integer whose maze states fit in this machine's memory."""
    value = positive_int(text)
    try:
        check_states_memory(value, "maze states")
    except ResourceLimitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def positive_float(text: str) -> float:
    """A finite float greater than 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number greater than 0, got {text!r}")
    return value


def open_unit_interval(text: str) -> float:
    """A float strictly between 0 and 1."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def check_output_dir(path: str | os.PathLike) -> Path:
    """The folder results will be written into, checked to be usable; raises ValueError saying why not.

    It must be named (not ``''``), must be a folder if it exists, and its
    nearest existing ancestor must be a folder we may write into (so that it
    can be created). Nothing is created here.
    """
    text = os.fspath(path)
    if not text.strip():
        raise ValueError("the output folder is empty; name a folder (e.g. runs/x)")
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output folder {folder} exists and is not a folder")
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing != folder and not existing.is_dir():
        raise ValueError(f"cannot create output folder {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "output folder" if existing == folder else f"cannot create output folder {folder}: folder"
        raise ValueError(f"{what} {existing} is not writable")
    return folder


def output_dir(text: str) -> str:
    """argparse type of ``--out``: :func:`check_output_dir`, returning the text unchanged."""
    try:
        check_output_dir(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def new_file(text: str) -> Path:
    """argparse type of a results file that must not exist yet (``--json``), so no earlier result is overwritten.

    Returns the path. Refuses an empty name, an existing path, and a folder that
    cannot be created or written into (:func:`check_output_dir`), so a long run
    fails before it starts. Nothing is created here.
    """
    if not text.strip():
        raise argparse.ArgumentTypeError("the file name is empty; name a new file (e.g. results.json)")
    path = Path(text).expanduser()
    if path.exists():
        raise argparse.ArgumentTypeError(f"{path} already exists; name a new file so the old one is kept")
    try:
        check_output_dir(path.parent)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {path}: {exc}") from None
    return path


def check_device(name: str) -> str:
    """A torch device this machine can run the policy on (``cpu``, ``cuda``, ``cuda:N``, ``mps`` where present).

    Names and CUDA devices are checked by :func:`mazeinterp.runtime.devices.choose_device`
    (one rule for the trainers and the CLI); this adds ``mps`` and refuses ``auto``
    and devices that cannot hold data (``meta``).

    Raises:
        ValueError: an unknown name, or a device that is absent or cannot hold data.
    """
    import torch

    from mazeinterp.runtime.devices import choose_device

    if name.lower() == "auto":
        raise ValueError("unknown device 'auto' here; use cpu, cuda or cuda:N")
    device = choose_device(name)
    if device.type in ("cpu", "cuda"):
        return name
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} is not available on this machine")
        return name
    raise ValueError(f"device {name!r} cannot run the policy; use cpu, cuda or cuda:N")


def device(text: str) -> str:
    """argparse type of ``--device``: :func:`check_device`."""
    try:
        return check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
