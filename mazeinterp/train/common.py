"""Utilities shared by the trainers (:mod:`mazeinterp.train.ppo`, :mod:`mazeinterp.train.imitate`).

* :func:`seed_everything` -- seed Python, numpy and torch once, at the start of a run;
* :func:`rng_states` / :func:`restore_rng_states` -- capture and restore those
  generators as plain data (tensors, ints, lists), so that a checkpoint can
  hold them and a resumed run continues with the same random numbers;
* :func:`choose_device` -- ``"auto"`` → CUDA when available, else CPU (from :mod:`mazeinterp.runtime.devices`);
* :class:`CsvLog` -- append dict rows to a CSV file, header written once;
* :class:`RunningMeanStd` -- running mean and variance (parallel algorithm),
  with a plain-data ``state_dict`` for checkpoints;
* :func:`add_config_arguments` / :func:`config_from_namespace` -- one ``--flag``
  per field of a config dataclass, its docstring as help, so every trainer's
  command line is a thin layer over its config.

Nothing here imports procgen or builds an env.
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import inspect
import math
import os
import random
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from mazeinterp.runtime.devices import choose_device

__all__ = [
    "CsvLog",
    "RunSetupError",
    "add_config_arguments",
    "config_from_namespace",
    "field_docs",
    "RunningMeanStd",
    "choose_device",
    "restore_rng_states",
    "rng_states",
    "seed_everything",
]


class RunSetupError(ValueError):
    """A run cannot start as asked (a resume that does not match, a missing or foreign checkpoint): the user's error."""


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and every CUDA device).

    Call it once, at the start of a run; everything random afterwards should
    draw from these generators (or from generators seeded from ``seed``).
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_states() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's global generators, as checkpointable plain data.

    Returns a dict with keys ``python``, ``numpy``, ``torch`` and ``cuda``
    (a list, one state per CUDA device; empty without CUDA). Restore with
    :func:`restore_rng_states`.
    """
    version, internal, gauss = random.getstate()
    # the legacy tuple (the default); numpy's stub types the default call as the dict form
    legacy = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    name, keys, pos, has_gauss, cached = legacy
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Restore generator states captured by :func:`rng_states` (CUDA states only if CUDA is present)."""
    version, internal, gauss = states["python"]
    random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available():
        count = min(len(cuda), torch.cuda.device_count())
        for index in range(count):
            torch.cuda.set_rng_state(cuda[index].cpu(), index)


class CsvLog:
    """Append rows (dicts) to a CSV file; the header is written once.

    The columns are fixed by the file's existing header or, for a new or empty
    file, by the first row appended. A later row may omit columns (left
    empty) but may not add new ones. Floats are written with ``repr``
    precision; NaN as ``nan``. Each row is flushed to disk at once, so the log
    can be followed while a run goes on (``tail -f``, pandas).

    >>> log = CsvLog("runs/x/log.csv")
    >>> log.append({"update": 1, "loss": 0.25})
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = self._read_header()

    def _read_header(self) -> list[str] | None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return None
        with self.path.open(newline="") as handle:
            header = next(csv.reader(handle), None)
        return list(header) if header else None

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row; the first row of a new file also writes the header.

        Raises:
            ValueError: the row has a key that is not a column of the file.
        """
        row = dict(row)
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        assert self.columns is not None
        extra = [key for key in row if key not in self.columns]
        if extra:
            raise ValueError(f"{self.path}: row has columns {extra} that the log's header {self.columns} lacks")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            if new_file:
                writer.writeheader()
            writer.writerow({key: _cell(value) for key, value in row.items()})

    def rows(self) -> list[dict[str, str]]:
        """All rows written so far, as dicts of strings (empty list for a new log)."""
        if self.columns is None:
            return []
        with self.path.open(newline="") as handle:
            return list(csv.DictReader(handle))

    def keep_rows(self, keep: Callable[[dict[str, str]], bool]) -> int:
        """Rewrite the file keeping only the rows for which ``keep(row)`` is true; return how many were dropped.

        Used when a run resumes from a checkpoint older than the last logged
        row, so that the rows after the checkpoint are not logged twice. Rows
        with a missing or extra cell (cut short by a kill) are dropped as well.
        """
        if self.columns is None:
            return 0
        rows = self.rows()
        # a row cut short by a kill (missing cells, or a cell of the next row glued on) goes too
        kept = [row for row in rows if None not in row and None not in row.values() and keep(row)]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, self.path)
        return len(rows) - len(kept)


def _cell(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return value


class RunningMeanStd:
    """Running mean and (population) variance of a stream of batches.

    Uses the parallel algorithm of Chan et al., as in OpenAI baselines' and
    gym's ``RunningMeanStd``: statistics start at mean 0, variance 1 with a
    pseudo-count ``epsilon``, and each :meth:`update` merges a batch's moments
    along axis 0. Kept in float64.

    Attributes:
        mean, var: arrays of ``shape`` (0-d for scalars).
        count: number of samples seen (plus ``epsilon``).
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    @property
    def std(self) -> np.ndarray:
        """Square root of :attr:`var`."""
        return np.sqrt(self.var)

    def update(self, x: np.ndarray) -> None:
        """Merge a batch ``x`` of shape ``(n, *shape)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), x.shape[0])

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: int) -> None:
        """Merge a batch given by its mean, population variance and size."""
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + np.square(delta) * self.count * batch_count / total
        self.mean = self.mean + delta * batch_count / total
        self.var = m2 / total
        self.count = float(total)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state (float64 tensors and a float) for checkpoints."""
        return {
            "mean": torch.from_numpy(np.array(self.mean, dtype=np.float64)),
            "var": torch.from_numpy(np.array(self.var, dtype=np.float64)),
            "count": self.count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        self.mean = np.asarray(state["mean"], dtype=np.float64).reshape(self.mean.shape)
        self.var = np.asarray(state["var"], dtype=np.float64).reshape(self.var.shape)
        self.count = float(state["count"])


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal after each field), by field name.

    Read from the class's source; returns an empty dict when the source is unavailable.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _finite_if_float(kind: Any) -> Any:
    """The parser of a config field's flag: floats refuse NaN and inf (they pass every range check)."""
    if kind is float:
        from mazeinterp.runtime.arguments import finite_float

        return finite_float
    return kind


def _optional(kind: type) -> Any:
    convert = _finite_if_float(kind)

    def parse(text: str) -> Any:
        return None if text.lower() in {"none", "null", ""} else convert(text)

    parse.__name__ = kind.__name__
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
    """Add one ``--flag`` per field of the dataclass ``cls`` to ``parser``, in a group named ``title``.

    Help is the field's docstring. Booleans get ``--flag`` / ``--no-flag``;
    optional fields accept ``none``. Flags use dashes (``--num-envs``),
    destinations the field names; the field ``out_dir`` is ``--out`` (also
    accepted as ``--out-dir``), like every other command's output folder.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        flag = "--" + field.name.replace("_", "-")
        # the output folder is --out, as in every other command; --out-dir stays accepted for older scripts
        flags = ("--out", flag) if field.name == "out_dir" else (flag,)
        doc = docs.get(field.name, "").replace("%", "%%")
        args = typing.get_args(kind)
        is_optional = (typing.get_origin(kind) in (typing.Union, types.UnionType)) and type(None) in args
        if is_optional:
            kind = next(a for a in args if a is not type(None))
        if kind is bool:
            group.add_argument(*flags, dest=field.name, action=argparse.BooleanOptionalAction,
                               default=field.default, help=f"{doc} (default: %(default)s)")
        elif is_optional:
            group.add_argument(*flags, dest=field.name, type=_optional(kind), default=field.default,
                               metavar=kind.__name__.upper(),
                               help=f"{doc} ('none' to unset; default: %(default)s)")
        else:
            group.add_argument(*flags, dest=field.name, type=_finite_if_float(kind), default=field.default,
                               metavar="DIR" if field.name == "out_dir" else kind.__name__.upper(), help=f"{doc} (default: %(default)s)")


def config_from_namespace(cls: type, args: argparse.Namespace) -> Any:
    """An instance of the dataclass ``cls`` from parsed arguments added by :func:`add_config_arguments`."""
    values = vars(args)
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


def module_main(prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], object],
                run: Callable[[argparse.Namespace], Path], argv: Sequence[str] | None = None) -> int:
    """``python -m <trainer module>``: parse flags, train, print the final checkpoint; 0 on success.

    Bad flag values and refused output folders become argparse errors (exit 2, one line).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        path = run(args)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(f"final checkpoint: {path}")
    return 0
