"""Mutating the files the tool reads back, and checking that each is refused or gives the same result.

The promise checked: a resume file, a sweep shard or a ``sweep.json`` that was
changed in any way is either refused with a one-line error or read back to the
very result the unchanged file gives; never a different result, never a
traceback.

* :func:`mutate` -- one random mutation of a file's text: a byte-level edit
  (cut, deletion, insertion, duplication, a changed character) or a JSON-level
  edit (a value replaced by a boundary or odd value, a key removed or added,
  list items duplicated, swapped or dropped, or the same data re-indented);
* :func:`reseal` -- give a mutated file a matching checksum again, so that the
  checks behind the checksum (the schemas) are fuzzed too;
* :func:`try_file` -- read one mutated text back and classify what happened;
* :func:`fuzz_file` -- many mutations of one file, returning :class:`FileFuzzCounts`;
* :func:`resume_reader`, :func:`shard_reader`, :func:`manifest_reader` -- how
  each kind of file is read back by the tool, as a function of the file's text.

Used by the property tests (``tests/test_file_fuzz.py``) and by ``scripts/fuzz_files.py``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mazeinterp.maze.state import MazeState
    from mazeinterp.rollout.resume import ResumeKey
    from mazeinterp.sweep.config import SweepConfig

__all__ = ["KINDS", "FileFuzzCounts", "fuzz_file", "manifest_reader", "mutate", "reseal", "resume_reader",
           "shard_reader", "try_file"]

KINDS: tuple[str, ...] = ("refused", "identical", "different", "traceback", "multi_line_error")
"""What reading a mutated file back can give; the last three are failures."""

ODD_VALUES: tuple[Any, ...] = (None, True, False, 0, 1, -1, 2, 3, 7, 2**31, -(2**63), 1e308, -0.0, 0.5, 1.0,
                               float("nan"), float("inf"), "", "0", "cheese", "neither", "won", [], [0], [[0]],
                               {}, {"cells": [], "share": 0.5}, "a" * 64)
"""Values that a JSON-level mutation puts in place of another."""


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) to a value inside ``data``, the root excluded."""
    out: list[tuple[Any, ...]] = []
    if isinstance(data, dict):
        items: list[tuple[Any, Any]] = list(data.items())
    elif isinstance(data, list):
        items = list(enumerate(data))
    else:
        return out
    for key, value in items:
        out.append((*prefix, key))
        out += _paths(value, (*prefix, key))
    return out


def _json_mutation(data: Any, rng: random.Random) -> tuple[Any, str]:
    """A JSON-level change of ``data`` (edited in place) and its description."""
    paths = _paths(data)
    if not paths:
        return ODD_VALUES[rng.randrange(len(ODD_VALUES))], "root replaced"
    path = paths[rng.randrange(len(paths))]
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key, value = path[-1], parent[path[-1]]
    choice = rng.randrange(6)
    if choice == 0 or not isinstance(parent, (dict, list)):
        parent[key] = ODD_VALUES[rng.randrange(len(ODD_VALUES))]
        return data, f"{path} replaced"
    if choice == 1 and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = rng.choice([value + 1, value - 1, -value, float(value), str(value), value * 1000])
        return data, f"{path} nudged"
    if choice == 2:
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
        return data, f"{path} removed"
    if choice == 3 and isinstance(parent, list):
        parent.insert(key, json.loads(json.dumps(value)))
        return data, f"{path} duplicated"
    if choice == 4 and isinstance(parent, list) and len(parent) > 1:
        other = rng.randrange(len(parent))
        parent[key], parent[other] = parent[other], parent[key]
        return data, f"{path} swapped with {other}"
    if isinstance(parent, dict):
        parent[f"extra{rng.randrange(3)}"] = ODD_VALUES[rng.randrange(len(ODD_VALUES))]
        return data, f"key added next to {path}"
    parent.append(ODD_VALUES[rng.randrange(len(ODD_VALUES))])
    return data, f"item appended next to {path}"


def mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """One random mutation of the JSON file ``text``; → (mutated text, what was done)."""
    kind = rng.randrange(8)
    n = len(text)
    if kind == 0:
        cut = rng.randrange(n + 1)
        return text[:cut], f"cut at {cut} of {n}"
    if kind == 1:
        start = rng.randrange(n)
        return text[:start] + text[start + rng.randint(1, 20):], f"deletion at {start}"
    if kind == 2:
        start = rng.randrange(n + 1)
        noise = "".join(rng.choice('{}[],:"0123456789.-eE \\ntruefalsnul\x00\xff') for _ in range(rng.randint(1, 8)))
        return text[:start] + noise + text[start:], f"insertion at {start}"
    if kind == 3:
        start = rng.randrange(n)
        span = text[start:start + rng.randint(1, 200)]
        return text[:start] + span + text[start:], f"duplication at {start}"
    if kind == 4:
        at = rng.randrange(n)
        return text[:at] + chr(rng.randrange(32, 127)) + text[at + 1:], f"character changed at {at}"
    data = json.loads(text)
    if kind == 5:
        return json.dumps(data, indent=rng.choice([None, 0, 1, 4]), sort_keys=rng.random() < 0.5), "re-indented"
    data, what = _json_mutation(data, rng)
    return json.dumps(data), what


def reseal(text: str) -> str:
    """``text`` with its ``checksum`` recomputed over its other keys (text that is not such a JSON object unchanged).

    A re-sealed edit that the schemas accept is a valid file of other contents: it gives a
    different result by design (no checksum can tell), so :class:`FileFuzzCounts` does not count
    it as a failure; tracebacks and multi-line errors still are.
    """
    from mazeinterp.runtime.digests import data_sha256

    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict) or "checksum" not in data:
        return text
    data.pop("checksum")
    return json.dumps({**data, "checksum": data_sha256(data)})


@dataclass(frozen=True)
class FileFuzzCounts:
    """What a fuzz of one file saw: how many mutations gave each of :data:`KINDS`, and the first failures."""

    file: str
    """Which file was mutated (``resume``, ``shard``, ``sweep.json``)."""
    counts: dict[str, int]
    """Mutations per kind of outcome (every kind of :data:`KINDS` present)."""
    examples: tuple[str, ...] = ()
    """Descriptions of the first few failures."""
    resealed: bool = False
    """Whether every mutated file was given a matching checksum (:func:`reseal`)."""

    @property
    def mutations(self) -> int:
        """Mutations tried."""
        return sum(self.counts.values())

    @property
    def failures(self) -> int:
        """Mutations that gave a traceback, a multi-line error or (unless re-sealed) a different result (must be 0)."""
        different = 0 if self.resealed else self.counts["different"]
        return different + self.counts["traceback"] + self.counts["multi_line_error"]

    def __str__(self) -> str:
        parts = ", ".join(f"{kind.replace('_', ' ')} {self.counts[kind]}" for kind in KINDS)
        sealed = " (re-sealed: a different result is a valid edit, not a failure)" if self.resealed else ""
        lines = [f"{self.file}: {self.mutations} mutations{sealed}: {parts}"]
        return "\n".join(lines + [f"  {e}" for e in self.examples])


def try_file(text: str, read: Callable[[str], Any], expected: Any,
             refusals: tuple[type[Exception], ...]) -> tuple[str, str]:
    """Read ``text`` back with ``read`` and classify it against the unchanged file's result ``expected``.

    Returns (one of :data:`KINDS`, a note: the error or the result's start).
    """
    try:
        result = read(text)
    except refusals as exc:
        message = str(exc)
        return ("multi_line_error" if "\n" in message or not message else "refused"), message
    except Exception as exc:  # noqa: BLE001 -- any other exception is what the fuzz counts
        return "traceback", f"{type(exc).__name__}: {exc}"
    return ("identical" if result == expected else "different"), repr(result)[:200]


def fuzz_file(file: str, text: str, read: Callable[[str], Any], refusals: tuple[type[Exception], ...], n: int,
              seed: int, resealed: bool = False) -> FileFuzzCounts:
    """Try ``n`` mutations of ``text`` (seeded by ``seed``; each :func:`reseal`-ed with ``resealed``) with
    :func:`try_file`; the counts."""
    expected = read(text)
    rng = random.Random(seed)
    counts: Counter[str] = Counter({kind: 0 for kind in KINDS})
    examples: list[str] = []
    for _ in range(n):
        mutated, what = mutate(text, rng)
        kind, note = try_file(reseal(mutated) if resealed else mutated, read, expected, refusals)
        counts[kind] += 1
        if kind not in ("refused", "identical", *(("different",) if resealed else ())) and len(examples) < 10:
            examples.append(f"{kind}: {what}: {note[:300]}")
    return FileFuzzCounts(file=file, counts=dict(counts), examples=tuple(examples), resealed=resealed)


# --------------------------------------------------------------------------------------
# the files, read back as the tool reads them


def resume_reader(folder: Path, key: ResumeKey, states: Sequence[MazeState]) -> Callable[[str], Any]:
    """Text → what ``rollout --resume`` takes from ``folder``'s resume file: the episodes as rows (with
    their move probabilities and trap) and the seconds. Raises ``ResumeError`` when it refuses."""
    from mazeinterp.rollout.resume import RESUME_FILE, load_partial

    def read(text: str) -> Any:
        (folder / RESUME_FILE).write_text(text)
        episodes, seconds = load_partial(folder, key, states)
        return ([(ep.to_row(), ep.trap, None if ep.action_probs is None else ep.action_probs.tolist())
                 for ep in episodes], seconds)

    return read


def shard_reader(path: Path, config: SweepConfig, sweep_sha256: str, n_conditions: int,
                 shard: int) -> Callable[[str], Any]:
    """Text → the data a sweep merges from the shard file ``path``. Raises ``SweepFileError`` when it refuses."""
    from mazeinterp.sweep.files import read_shard

    def read(text: str) -> Any:
        path.write_text(text)
        return read_shard(path, config, sweep_sha256, n_conditions, shard)

    return read


def manifest_reader(out: Path, manifest: Mapping[str, Any]) -> Callable[[str], Any]:
    """Text → the manifest a sweep resumed in ``out`` goes on with (``manifest``'s sweep, or refused with
    ``SweepConfigError``)."""
    from mazeinterp.sweep.files import MANIFEST, claim_folder, read_manifest

    def read(text: str) -> Any:
        (out / MANIFEST).write_text(text)
        claim_folder(out, manifest)
        return read_manifest(out)

    return read
