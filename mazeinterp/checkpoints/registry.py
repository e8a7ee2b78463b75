"""Checkpoints by name: the registry of agents shipped in ``checkpoints/``, published names, and :func:`load_policy`.

:func:`load_policy` takes a file path, a :data:`SHIPPED` name or
``published:NAME`` (fetched into the user's cache on first use, see
:mod:`mazeinterp.checkpoints.fetch`). What a checkpoint file holds and how it is read and
written safely is :mod:`mazeinterp.checkpoints.file_format`; its names (the errors,
:func:`save_policy`, :data:`FORMAT_VERSION`...) are importable from here too.
Every failure raises a subclass of :class:`CheckpointError` whose message
names the file.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import torch

from mazeinterp.checkpoints import file_format
from mazeinterp.checkpoints.file_format import (
    FORMAT_VERSION,
    CheckpointError,
    CheckpointHashError,
    CheckpointKeyError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    CheckpointTooLargeError,
    NonFiniteWeightsError,
    NotACheckpointError,
    UnreadableCheckpointError,
    UnsafeCheckpointError,
    UnsupportedScaleError,
    file_sha256,
    read_policy,
    save_policy,
    unsafe_global,
)
from mazeinterp.core.model import ImpalaPolicy

__all__ = sorted([
    *file_format.__all__,  # the file format's names, importable from here as well
    "DEFAULT_AGENT", "SHIPPED", "SHIPPED_SHA256", "checkpoints_dir", "load_policy", "resolve_checkpoint",
])

SHIPPED: dict[str, str] = {
    "maze-s1-r5-v5": "maze-s1-r5-v5.pt", "maze-s1-r1": "maze-s1-r1.pt", "maze-s1-r15": "maze-s1-r15.pt",
}
"""Short agent names → file names inside :func:`checkpoints_dir`."""

SHIPPED_SHA256: dict[str, str] = {
    "maze-s1-r5-v5": "5b8dfa8afac6d7cd435cbf7e65e111422e33808fc0235c0bb8cee3109727bf0a",
    "maze-s1-r1": "f206e40f8654a005eac02f7f4d66e707aeff56b4649fc5373273f9147fe24f09",
    "maze-s1-r15": "b8973fad81d1f1218cbcf4d17f28b2761d8899481828083492054cc775070933",
}
"""Short agent names → sha256 (hex) of the shipped file; a shipped name loads only a file with this hash."""

DEFAULT_AGENT: str | None = "maze-s1-r5-v5"
"""Name in :data:`SHIPPED` of the agent used when none is given (see ``checkpoints/README.md``)."""


def checkpoints_dir() -> Path:
    """The repository's top-level ``checkpoints/`` folder (it may not exist in an install)."""
    return Path(__file__).resolve().parents[2] / "checkpoints"


def _check_shipped_hash(name: str, path: Path) -> None:
    expected = SHIPPED_SHA256.get(name)
    if expected is None:
        raise CheckpointHashError(f"shipped agent {name!r} has no sha256 in the registry (SHIPPED_SHA256); "
                                  f"record {file_sha256(path)} for {path} if that file is the one to ship", path=path)
    found = file_sha256(path)
    if found != expected:
        raise CheckpointHashError(
            f"shipped agent {name!r}: {path} has sha256 {found}, but the registry records {expected}; the file "
            "was changed or replaced: restore it (git checkout -- checkpoints/), or load the file by its path",
            path=path, expected=expected, found=found)


def resolve_checkpoint(path_or_name: str | os.PathLike) -> Path:
    """Turn a file path, a :data:`SHIPPED` name or ``published:NAME`` into the checkpoint's path.

    An existing path wins over a registry name of the same spelling. A
    shipped name resolves only to a file whose sha256 is the one in
    :data:`SHIPPED_SHA256`; a file given by its path is not checked.
    ``published:NAME`` fetches the published checkpoint ``NAME`` into the
    user's cache first if needed (:func:`mazeinterp.checkpoints.fetch.fetch`, which raises
    :class:`mazeinterp.checkpoints.fetch.FetchError`).

    Raises:
        CheckpointNotFoundError: neither an existing file nor a shipped name
            (the message lists the shipped names), or a shipped file is missing.
        CheckpointHashError: a shipped file's sha256 differs from the registry's
            (the message names both).
        NotACheckpointError: the path is a directory.
    """
    from mazeinterp.checkpoints.published import PUBLISHED_PREFIX

    if isinstance(path_or_name, str) and path_or_name.startswith(PUBLISHED_PREFIX):
        from mazeinterp.checkpoints.fetch import fetch

        return fetch(path_or_name[len(PUBLISHED_PREFIX):])
    path = Path(path_or_name).expanduser()
    if path.exists():
        if not path.is_file():
            raise NotACheckpointError(f"{path} is not a file", path=path)
        return path
    name = os.fspath(path_or_name)
    if name in SHIPPED:
        shipped = checkpoints_dir() / SHIPPED[name]
        if not shipped.is_file():
            raise CheckpointNotFoundError(
                f"shipped checkpoint {name!r} should be at {shipped}, but that file is missing",
                path=shipped,
            )
        _check_shipped_hash(name, shipped)
        return shipped
    names = ", ".join(sorted(SHIPPED)) or "none yet"
    close = difflib.get_close_matches(name, list(SHIPPED), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise CheckpointNotFoundError(
        f"no checkpoint file {path} and no shipped agent of that name (shipped: {names}){hint}",
        path=path,
    )


def load_policy(path_or_name: str | os.PathLike, device: str | torch.device = "cpu") -> ImpalaPolicy:
    """Load a policy from a checkpoint file, a :data:`SHIPPED` name or ``published:NAME``, in eval mode on ``device``.

    ``published:NAME`` (e.g. ``"published:maze-rand-region-5"``, see
    :mod:`mazeinterp.checkpoints.published`) downloads the file into the user's cache on first use.

    The returned model has ``model.metadata`` (the checkpoint's metadata dict;
    empty for published checkpoints and bare state dicts) and ``model.source``
    (the resolved file path).

    Raises:
        CheckpointNotFoundError, NotACheckpointError, UnsafeCheckpointError,
        UnreadableCheckpointError, NonFiniteWeightsError, CheckpointKeyError,
        CheckpointShapeError, UnsupportedScaleError: see their docstrings.
    """
    return read_policy(resolve_checkpoint(path_or_name)).to(device)
