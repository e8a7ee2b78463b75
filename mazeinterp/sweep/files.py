"""A sweep's files on disk: the manifest ``sweep.json`` and the shard files, checked before they are merged.

``sweep.json`` holds the sweep's manifest (config, checkpoint, sha256 of the
weights and of the grid); the sweep's *hash* is :func:`mazeinterp.runtime.digests.data_sha256`
of it. Every shard file is sealed by :func:`seal_shard` with that hash, its
maze range and a sha256 checksum over all its other keys, and is trusted only
after :func:`read_shard` has checked it: readable JSON of this version's
format, checksum intact, the same sweep, its own shard number, level seeds and
maze range, and outcome tables of the grid's shape holding only outcome codes.
A shard that fails any check raises :class:`SweepFileError` with one line
naming the file and what is wrong: it is never merged (delete it and it runs again).

:func:`finished_shards` finds the shards already written by listing the shard
folder: its cost follows the files present, not the number of shards possible.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mazeinterp.runtime.digests import data_sha256
from mazeinterp.runtime.messages import short_repr
from mazeinterp.sweep.config import SweepConfig, SweepConfigError
from mazeinterp.maze.outcomes import OUTCOME_CODES
from mazeinterp.sweep.shard import SHARD_FORMAT

__all__ = ["MANIFEST", "SweepFileError", "claim_folder", "finished_shards", "read_manifest", "read_shard",
           "seal_shard", "shard_path", "write_atomic"]

MANIFEST = "sweep.json"
"""Name of the manifest file inside a sweep's output folder."""
_SHARD_NAME = re.compile(r"shard-(\d{5,})\.json")
_CODES = frozenset(OUTCOME_CODES.values())


class SweepFileError(SweepConfigError):
    """A file of a sweep's output folder that cannot be trusted: one line naming the file and the problem."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def shard_path(out: Path, shard: int) -> Path:
    """Path of shard ``shard``'s file in the output folder ``out``."""
    return out / "shards" / f"shard-{shard:05d}.json"


def _read_json(path: Path, what: str, advice: str) -> Any:
    """The parsed JSON of ``path``; :class:`SweepFileError` (one line) for a folder, unreadable or non-JSON file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split("\n")[0]
        raise SweepFileError(f"{path} is not {what} ({reason or type(exc).__name__}); {advice}") from None


# --------------------------------------------------------------------------------------
# the manifest


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest in ``out`` (None if there is none), with the defaults of keys that older versions did not
    write (``numerics`` fast, ``estimator`` sampled); :class:`SweepFileError` if it is not one."""
    path = out / MANIFEST
    if not path.exists():
        return None
    data = _read_json(path, "a sweep manifest", "choose another output folder")
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise SweepFileError(f"{path} is not a sweep manifest (no config object); choose another output folder")
    # as this version reads a manifest written before these keys existed
    data.setdefault("numerics", "fast")  # older sweeps ran their rollouts channels-last
    data["config"].setdefault("estimator", "sampled")  # older sweeps were all sampled
    return data


def claim_folder(out: Path, manifest: Mapping[str, Any]) -> None:
    """Create ``out`` for the sweep of ``manifest``, or check that it holds the same sweep (then it is resumed).

    Raises :class:`SweepConfigError` (one line) for a folder of another sweep (naming the config keys
    that differ) or one that holds other files; nothing in it is changed then.
    """
    earlier = read_manifest(out)
    if earlier is not None:
        if earlier != json.loads(json.dumps(manifest)):
            old, new = earlier["config"], manifest["config"]
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            names = [k if k in new else short_repr(k) for k in diff]  # a stored key may be anything
            if earlier["numerics"] != manifest.get("numerics"):
                there = earlier["numerics"]
                there = there if isinstance(there, str) and there.isidentifier() else short_repr(there)
                names.append(f"numerics: {there} there, {manifest.get('numerics')} now")
            names = names or ["the model's weights"]
            raise SweepConfigError(f"{out} holds another sweep (it differs in {', '.join(names)}); "
                                   "choose another output folder")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SweepConfigError(f"{out} exists and holds no sweep; choose another output folder")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    if earlier is None:
        write_atomic(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")


# --------------------------------------------------------------------------------------
# shards


def _maze_range(config: SweepConfig, shard: int) -> list[int]:
    first = shard * config.shard_size
    return [first, min(first + config.shard_size, config.n_mazes)]


def seal_shard(result: Mapping[str, Any], config: SweepConfig, sweep_sha256: str) -> dict[str, Any]:
    """``result`` (:func:`~mazeinterp.sweep.shard.run_shard`'s) with the sweep's hash, its maze range
    (positions ``[first, stop)`` in the sweep) and a checksum over everything else added."""
    data = json.loads(json.dumps({**result, "sweep_sha256": sweep_sha256,
                                  "mazes": _maze_range(config, int(result["shard"]))}))
    data.pop("checksum", None)
    data["checksum"] = data_sha256(data)
    return data


def _is_code(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in _CODES


def _is_probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def _check_table(table: Any, shape: tuple[int, ...], name: str, leaf: Callable[[Any], bool], what: str) -> None:
    """``table`` must be nested lists of ``shape`` whose entries all pass ``leaf`` (each one ``what``)."""
    if not shape:
        if not leaf(table):
            raise ValueError(f"{name} holds {short_repr(table)}, not {what}")
        return
    if not isinstance(table, list) or len(table) != shape[0]:
        raise ValueError(f"{name} is not a list of {shape[0]}")
    for item in table:
        _check_table(item, shape[1:], name, leaf, what)


def _check_shard(data: Any, config: SweepConfig, sweep_sha256: str, n_conditions: int, shard: int) -> None:
    """Raise ``ValueError`` (one line, without the path) for the first check ``data`` fails."""
    rerun = "delete it to run that shard again"
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not a shard object; {rerun}")
    if data.get("format") != SHARD_FORMAT:
        if data.get("format") in (None, 1):
            raise ValueError(f"written by an earlier version of mazeinterp that kept no checksum; {rerun} "
                             "(or rerun the sweep in a new folder)")
        raise ValueError(f"unknown format {short_repr(data.get('format'))} (this version writes {SHARD_FORMAT}); "
                         f"{rerun}")
    body = {k: v for k, v in data.items() if k != "checksum"}
    if data.get("checksum") != data_sha256(body):
        raise ValueError(f"its checksum does not match its contents (edited or corrupted); {rerun}")
    if data.get("sweep_sha256") != sweep_sha256:
        raise ValueError(f"it belongs to another sweep (sweep_sha256 {short_repr(data.get('sweep_sha256'))}); {rerun}")
    levels = config.shard_levels(shard)
    n, seeds = len(levels), len(config.seeds)
    for key, expected in (("shard", shard), ("mazes", _maze_range(config, shard)), ("level_seeds", levels),
                          ("episodes", 0 if config.estimator == "exact" else n * seeds * (n_conditions + 1))):
        if key not in data:
            raise ValueError(f"missing key {key!r}; {rerun}")
        if data[key] != expected or isinstance(data[key], bool):
            raise ValueError(f"{key} is {short_repr(data[key])}, not this shard's {short_repr(expected)}; {rerun}")
    for key in ("baseline", "treated", "seconds"):
        if key not in data:
            raise ValueError(f"missing key {key!r}; {rerun}")
    if data.get("estimator", "sampled") != config.estimator:
        raise ValueError(f"estimator is {short_repr(data.get('estimator'))}, not this sweep's "
                         f"{config.estimator!r}; {rerun}")
    if config.estimator == "exact":
        placements = seeds if config.cheese_region is not None else 1
        _check_table(data["baseline"], (placements, n, 4), "baseline", _is_probability, "a probability")
        _check_table(data["treated"], (n_conditions, placements, n, 4), "treated", _is_probability, "a probability")
    else:
        code = f"an outcome code {sorted(_CODES)}"
        _check_table(data["baseline"], (seeds, n), "baseline", _is_code, code)
        _check_table(data["treated"], (n_conditions, seeds, n), "treated", _is_code, code)
    seconds = data["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise ValueError(f"seconds is {short_repr(seconds)}, not a duration; {rerun}")


def read_shard(path: Path, config: SweepConfig, sweep_sha256: str, n_conditions: int, shard: int) -> dict[str, Any]:
    """Shard ``shard``'s data from ``path`` once every check of the module holds.

    Raises:
        SweepFileError: one line naming ``path`` and the first problem.
    """
    data = _read_json(path, "a shard file (half-written or corrupted?)", "delete it to run that shard again")
    try:
        _check_shard(data, config, sweep_sha256, n_conditions, shard)
    except ValueError as exc:
        raise SweepFileError(f"{path}: {exc}") from None
    return data


def finished_shards(out: Path, config: SweepConfig, sweep_sha256: str, n_conditions: int) -> dict[int, dict[str, Any]]:
    """The shards already in ``out/shards``, checked by :func:`read_shard`; shard number → data.

    Lists the folder once: the cost follows the files present. Files not named like a shard
    (temporary files, notes) are ignored.

    Raises:
        SweepFileError: a shard file that fails a check, is a folder, or is numbered beyond the sweep.
    """
    folder = out / "shards"
    if not folder.is_dir():
        return {}
    done = {}
    for name in sorted(os.listdir(folder)):
        match = _SHARD_NAME.fullmatch(name)
        if match is None:
            continue
        shard, path = int(match.group(1)), folder / name
        if path != shard_path(out, shard):
            continue  # e.g. shard-000001.json: not a name this sweep writes, so never merged
        if shard >= config.n_shards:
            raise SweepFileError(f"{path}: shard {shard} is beyond this sweep's {config.n_shards} shards; "
                                 "delete it")
        done[shard] = read_shard(path, config, sweep_sha256, n_conditions, shard)
    return done
