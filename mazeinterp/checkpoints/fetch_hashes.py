"""The fetch cache's record of checkpoint hashes, ``hashes.json``: read, checked and written whole.

The file holds a format tag, the entries and a sha256 over the entries::

    {"format": "mazeinterp-hashes/1",
     "entries": {"maze-rand-region-5": {"sha256": "<64 hex>", "url": "https://...",
                                        "pinned": false, "recorded": "2026-01-01T00:00:00+00:00"}},
     "checksum": "<sha256 of the entries as canonical JSON>"}

:func:`read_hashes` returns the entries exactly as they were written or raises
:class:`HashesFileError` with one line naming the file and the problem: not
UTF-8, not JSON, a duplicated key, a wrong or missing field, a malformed
hash, or a checksum that does not match (any edit of the entries). A hash that
decides whether a download is trusted must never change silently, so an edited
file is refused rather than read. :func:`write_hashes` replaces the file
atomically. Pure Python: no torch, no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "MAX_FILE_BYTES", "HashesFileError", "entries_checksum", "read_hashes", "write_hashes"]

FORMAT = "mazeinterp-hashes/1"
"""The format tag of ``hashes.json``."""

MAX_FILE_BYTES = 1 << 20
"""A ``hashes.json`` larger than this (1 MiB; a real one holds a few hundred bytes per checkpoint) is refused unread."""

_ENTRY_TYPES: dict[str, type] = {"sha256": str, "url": str, "pinned": bool, "recorded": str}
_HEX64 = re.compile(r"[0-9a-f]{64}")


class HashesFileError(ValueError):
    """``hashes.json`` cannot be trusted: unreadable, malformed, or edited since it was written."""


def entries_checksum(entries: Mapping[str, Mapping[str, Any]]) -> str:
    """Hex sha256 of ``entries`` (name → entry dict) as canonical JSON (sorted keys, no spaces, ASCII)."""
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise HashesFileError(f"the key {key!r} appears twice")
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise HashesFileError(f"{name} is not a JSON value")


def _check_entry(name: Any, entry: Any) -> None:
    if not isinstance(name, str) or not name:
        raise HashesFileError(f"entry name {name!r} is not a non-empty string")
    if not isinstance(entry, dict):
        raise HashesFileError(f"entry {name!r} is a {type(entry).__name__}, expected an object")
    if set(entry) != set(_ENTRY_TYPES):
        missing, extra = sorted(set(_ENTRY_TYPES) - set(entry)), sorted(set(entry) - set(_ENTRY_TYPES))
        raise HashesFileError(f"entry {name!r} has fields {sorted(entry)}, expected {sorted(_ENTRY_TYPES)}"
                              + (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else ""))
    for key, kind in _ENTRY_TYPES.items():
        if type(entry[key]) is not kind:  # exact: a bool is no str, and 1 is no bool
            raise HashesFileError(f"entry {name!r}: {key} is {entry[key]!r}, expected a {kind.__name__}")
    if not _HEX64.fullmatch(entry["sha256"]):
        raise HashesFileError(f"entry {name!r}: sha256 {entry['sha256']!r} is not 64 lowercase hex digits")


def _parse(data: bytes) -> dict[str, dict[str, Any]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HashesFileError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise HashesFileError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise HashesFileError("not valid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise HashesFileError(f"holds a JSON {type(obj).__name__}, expected an object")
    if set(obj) != {"format", "entries", "checksum"}:
        raise HashesFileError(f"has keys {sorted(obj)}, expected ['checksum', 'entries', 'format']")
    if obj["format"] != FORMAT:
        raise HashesFileError(f"format is {obj['format']!r}, expected {FORMAT!r}")
    entries = obj["entries"]
    if not isinstance(entries, dict):
        raise HashesFileError(f"entries is a {type(entries).__name__}, expected an object")
    for name, entry in entries.items():
        _check_entry(name, entry)
    checksum = obj["checksum"]
    if not isinstance(checksum, str) or checksum != entries_checksum(entries):
        raise HashesFileError("its checksum does not match its entries (the file was edited or damaged)")
    return entries


def read_hashes(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of the ``hashes.json`` at ``path`` (name → ``{"sha256", "url", "pinned", "recorded"}``).

    A missing file has no entries (``{}``).

    Raises:
        HashesFileError: one line naming ``path`` and what is wrong with it,
            and how to recover (delete it: hashes are recorded again on the next fetch).
    """
    try:
        if not path.exists():
            return {}
        size = path.stat().st_size
        if not path.is_file():
            raise HashesFileError("is not a file")
        if size > MAX_FILE_BYTES:
            raise HashesFileError(f"is {size} bytes, more than any real one ({MAX_FILE_BYTES} at most)")
        return _parse(path.read_bytes())
    except HashesFileError as exc:
        raise HashesFileError(f"{path}: {exc}; delete it to record the hashes afresh on the next fetch") from None
    except OSError as exc:
        raise HashesFileError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def write_hashes(path: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``entries`` to ``path`` with their checksum, atomically (a temporary file, then a rename).

    Raises:
        HashesFileError: an entry is malformed (nothing is written).
        OSError: the folder cannot be written.
    """
    plain = {name: dict(entry) for name, entry in entries.items()}
    for name, entry in plain.items():
        try:
            _check_entry(name, entry)
        except HashesFileError as exc:
            raise HashesFileError(f"refusing to write {path}: {exc}") from None
    text = json.dumps({"format": FORMAT, "entries": plain, "checksum": entries_checksum(plain)},
                      indent=2, sort_keys=True, allow_nan=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
