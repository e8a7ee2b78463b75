"""Fuzz of the fetch cache's ``hashes.json``: is a mutated file ever read as something else?

Writes real ``hashes.json`` files (zero to three entries, pinned and not),
applies one random mutation to each of ``--n`` copies -- byte-level (a flipped
bit, a byte replaced, inserted or deleted, a span cut or repeated, the file
cut short, whitespace added) or structural (a field removed, renamed, retyped
or set to a boundary value, a hex digit changed, an entry added, removed or
duplicated, the checksum changed, deep nesting, a non-object) -- and reads it
back with :func:`mazeinterp.checkpoints.fetch_hashes.read_hashes`. Each result is counted
as one of:

* ``identical``: the same entries as the file before the mutation;
* ``refused``: a one-line :class:`~mazeinterp.checkpoints.fetch_hashes.HashesFileError`;
* ``different`` (silently different entries) or ``traceback`` (any other
  exception, or a multi-line message): the failures.

Prints the counts; exits 1 if either failure count is non-zero.

Usage::

    python scripts/fuzz_hashes.py                 # 5,000 mutated files
    python scripts/fuzz_hashes.py --n 20000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mazeinterp.checkpoints.fetch_hashes import HashesFileError, read_hashes, write_hashes

_HEX = "0123456789abcdef"
_ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 1e308, "", "x" * 70, [], {}, "0" * 64, "A" * 64]


def base_entries(rng: random.Random) -> dict[str, dict[str, Any]]:
    """Zero to three entries as :func:`mazeinterp.checkpoints.fetch._record` writes them."""
    names = ["maze-rand-region-5", "maze-other", "ünïcode-name", "a"]
    return {name: {"sha256": "".join(rng.choice(_HEX) for _ in range(64)),
                   "url": f"https://example.org/{name}.pth", "pinned": rng.random() < 0.5,
                   "recorded": "2026-01-01T00:00:00+00:00"}
            for name in rng.sample(names, rng.randint(0, 3))}


def _byte_mutation(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    j = min(len(data), i + rng.randint(1, 16))
    kind = rng.randrange(8)
    if kind == 0:
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    if kind == 1:
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
    if kind == 2:
        return data[:i] + bytes([rng.choice(b'{}[]",:0123456789abcdef \n\\-+.eE')]) + data[i:]
    if kind == 3:
        return data[:i] + data[i + 1:]
    if kind == 4:
        return data[:i] + data[j:]
    if kind == 5:
        return data[:j] + data[i:j] + data[j:]
    if kind == 6:
        return data[:i]
    return data[:i] + b" \n\t"[rng.randrange(3):] + data[i:]


def _structural_mutation(obj: dict[str, Any], rng: random.Random) -> Any:
    entries = obj["entries"]
    names = list(entries)
    kind = rng.randrange(10)
    if kind == 0 and names:
        del entries[rng.choice(names)][rng.choice(["sha256", "url", "pinned", "recorded"])]
    elif kind == 1 and names:
        entry = entries[rng.choice(names)]
        entry[rng.choice(list(entry))] = rng.choice(_ODD_VALUES)
    elif kind == 2 and names:
        entry = entries[rng.choice(names)]
        digits = list(entry["sha256"])
        k = rng.randrange(64)
        digits[k] = rng.choice(_HEX.replace(digits[k], ""))
        entry["sha256"] = "".join(digits)
    elif kind == 3 and names:
        name = rng.choice(names)
        entries[name + rng.choice(["", "x", " "])] = entries.pop(name)
    elif kind == 4 and names:
        entries[rng.choice(names)]["extra"] = 1
    elif kind == 5:
        entries["new"] = {"sha256": "1" * 64, "url": "", "pinned": False, "recorded": ""}
    elif kind == 6:
        obj["checksum"] = rng.choice(_ODD_VALUES + ["".join(rng.choice(_HEX) for _ in range(64))])
    elif kind == 7:
        obj[rng.choice(["format", "entries", "other"])] = rng.choice(_ODD_VALUES)
    elif kind == 8:
        return rng.choice([[obj], "text", 3, None, {"entries": entries}])
    else:
        depth = rng.choice([10, 10_000, 100_000])
        return json.loads("[" * 10 + "]" * 10) if depth == 10 else "[" * depth + "]" * depth
    return obj


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation of a ``hashes.json`` file's bytes (byte-level or structural)."""
    if rng.random() < 0.6:
        return _byte_mutation(data, rng)
    obj = json.loads(data)
    mutated = _structural_mutation(obj, rng)
    if isinstance(mutated, str) and mutated.startswith("["):
        return mutated.encode()
    text = json.dumps(mutated, indent=rng.choice([None, 2]), sort_keys=rng.random() < 0.5)
    if rng.random() < 0.1 and '"sha256"' in text:  # a duplicated key, which a JSON parser keeps silently
        text = text.replace('"sha256"', '"sha256": "' + "2" * 64 + '", "sha256"', 1)
    return text.encode()


def classify(path: Path, mutated: bytes, original: dict[str, dict[str, Any]]) -> str:
    """``"identical"``, ``"refused"``, ``"different"`` or ``"traceback"`` for ``mutated`` written at ``path``."""
    path.write_bytes(mutated)
    try:
        got = read_hashes(path)
    except HashesFileError as exc:
        return "refused" if len(str(exc).splitlines()) == 1 and str(path) in str(exc) else "traceback"
    except Exception:  # noqa: BLE001 -- what the fuzz counts
        return "traceback"
    return "identical" if got == original else "different"


def run(n: int, seed: int, report: Callable[[str], None] | None = None) -> Counter[str]:
    """Read ``n`` mutated files back; the counts by class (see :func:`classify`)."""
    rng = random.Random(seed)
    counts: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hashes.json"
        for i in range(n):
            original = base_entries(rng)
            write_hashes(path, original)
            mutated = mutate(path.read_bytes(), rng)
            result = classify(path, mutated, original)
            counts[result] += 1
            if result in ("different", "traceback") and report is not None:
                report(f"mutation {i}: {result}: {mutated[:200]!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz from the command line; print the counts; 1 if anything was silently different or crashed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="mutated files (default: 5000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    counts = run(args.n, args.seed, report=lambda line: print(line, file=sys.stderr))
    print(f"{args.n} mutated hashes.json files (seed {args.seed}): "
          + ", ".join(f"{key} {counts[key]}" for key in ("identical", "refused", "different", "traceback")))
    return 1 if counts["different"] or counts["traceback"] else 0


if __name__ == "__main__":
    sys.exit(main())
