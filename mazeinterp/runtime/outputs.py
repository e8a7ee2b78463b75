"""Writing run results: a JSON summary, a CSV of rows, figures; never clobbering earlier runs."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


class OutputExistsError(FileExistsError):
    """An output file is already there and overwriting was not asked for."""


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _missing_as_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float (a missing value: a proportion of no episodes, say) as None."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _missing_as_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_missing_as_null(v) for v in value]
    if isinstance(value, np.ndarray):
        return _missing_as_null(value.tolist())
    return value


def to_json(data: Any) -> str:
    """Indented, strict JSON of ``data``: NaN and inf become null (JSON has no NaN), numpy values plain."""
    return json.dumps(_missing_as_null(data), indent=2, default=lambda v: _missing_as_null(_plain(v)),
                      allow_nan=False)


def write_new_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` (:func:`to_json`) to a file that must not exist yet, creating its folder; returns the path.

    Raises :class:`OutputExistsError` naming the file if it is already there
    (the file is opened exclusively, so one that appeared since the check is kept too).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x") as handle:
            handle.write(to_json(data) + "\n")
    except FileExistsError:
        raise OutputExistsError(f"{path} already exists; name a new file so the old one is kept") from None
    return path


class OutputDir:
    """A directory that results are written into.

    Every file name is claimed before anything is written: if any of them
    already exists and ``overwrite`` is False, :class:`OutputExistsError` names
    it and nothing is written, so an earlier run's files are never lost.
    """

    def __init__(self, path: str | Path, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        if self.path.exists() and not self.path.is_dir():
            raise OutputExistsError(f"output path {self.path} exists and is not a directory")

    def claim(self, *names: str) -> list[Path]:
        """Check that ``names`` may be written; return their paths (directory created)."""
        paths = [self.path / name for name in names]
        if not self.overwrite:
            taken = [str(p) for p in paths if p.exists()]
            if taken:
                raise OutputExistsError(
                    f"{', '.join(taken)} already exist(s); choose another --out or pass --overwrite"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        return paths

    def write_json(self, name: str, data: Mapping[str, Any]) -> Path:
        """Write ``data`` as indented, strict JSON (NaN and inf as null); returns the path."""
        (path,) = self.claim(name)
        path.write_text(to_json(data) + "\n")
        return path

    def write_csv(self, name: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        """Write dict rows as CSV with the union of their keys as header; returns the path."""
        (path,) = self.claim(name)
        rows = list(rows)
        header: list[str] = []
        for row in rows:
            header.extend(k for k in row if k not in header)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _csv_value(v) for k, v in row.items()})
        return path


def _csv_value(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    if value is None:
        return ""
    return _plain(value) if isinstance(value, (np.generic, np.ndarray)) else value
