"""Fuzz of the files the tool reads back: a mutated file is refused with one line or gives the same result.

Makes one real file of each kind -- a resume file of an interrupted rollout
(a random scale-1 policy on 6 mazes, 4 finished, with trajectories and move
probabilities), a shard of a small sweep and that sweep's ``sweep.json`` --
then reads ``--n`` mutated copies of each back the way the tool does (see
:mod:`fuzzing.files` for the mutations). Each read is counted as
refused (a one-line error), identical (the unchanged file's result), different,
a traceback, or an error of several lines.

With ``--reseal`` every mutated file gets a matching checksum again, so the
checks behind the checksum are fuzzed too; a different result then is a valid
edit (not counted as a failure), and tracebacks and multi-line errors must
still be 0.

Prints the counts per file; exits 1 if any file had a different result (without
``--reseal``), a traceback or a multi-line error.

Usage::

    python scripts/fuzz_files.py                  # 2,000 mutations of each file
    python scripts/fuzz_files.py --n 10000 --seed 1 --files shard
    python scripts/fuzz_files.py --reseal         # past the checksums, into the schemas
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness: fuzzing/, at the repository root
from fuzzing.files import FileFuzzCounts, fuzz_file, manifest_reader, resume_reader, shard_reader  # noqa: E402

FILES = ("resume", "shard", "sweep.json")


def fuzz_resume(work: Path, n: int, seed: int, resealed: bool) -> FileFuzzCounts:
    """Mutations of a real resume file, read back by ``load_partial``."""
    import torch

    from mazeinterp.core.model import ImpalaPolicy
    from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts
    from mazeinterp.rollout.resume import RESUME_FILE, ResumeError, ResumeKey, save_partial

    torch.manual_seed(seed)
    model = ImpalaPolicy(scale=1).eval()
    states = load_mazes(range(7 + 10 * seed, 13 + 10 * seed))
    config = RolloutConfig(max_steps=20, seed=seed, progress=False, record_trajectories=True,
                           record_action_probs=True)
    result = run_rollouts(model, states, config=config, indices=[0, 1, 3, 4])
    key = ResumeKey.of({"n_mazes": len(states), "seed": seed}, model, config, states)
    folder = work / "resume"
    folder.mkdir()
    save_partial(folder, result, key)
    text = (folder / RESUME_FILE).read_text()
    return fuzz_file("resume", text, resume_reader(folder, key, states), (ResumeError,), n, seed, resealed)


def fuzz_sweep(work: Path, n: int, seed: int, files: list[str], resealed: bool) -> list[FileFuzzCounts]:
    """Mutations of a real shard and of its sweep's ``sweep.json``, read back as a resumed sweep reads them."""
    import torch

    from mazeinterp.runtime.digests import data_sha256
    from mazeinterp.core.model import ImpalaPolicy
    from mazeinterp.sweep.runner import SweepConfig, SweepConfigError, run_sweep
    from mazeinterp.sweep.files import MANIFEST, read_manifest, shard_path

    torch.manual_seed(seed)
    model = ImpalaPolicy(scale=1).eval()
    config = SweepConfig(hooks=("embedder.relu3_out",), channels=(3, 5), kinds=("zero", "scale"),
                         coefficients=(1.0, 2.0), n_mazes=4, shard_size=2, seeds=(0, 1), max_steps=10,
                         start_level=100 + seed)
    out = work / "sweep"
    run_sweep(config, out, workers=0, model=model, progress=False)
    manifest = read_manifest(out)
    assert manifest is not None
    counts = []
    if "shard" in files:
        path = shard_path(out, 1)
        read = shard_reader(path, config, data_sha256(manifest), manifest["conditions"], 1)
        counts.append(fuzz_file("shard", path.read_text(), read, (SweepConfigError,), n, seed, resealed))
    if "sweep.json" in files:
        read = manifest_reader(out, manifest)
        counts.append(fuzz_file("sweep.json", (out / MANIFEST).read_text(), read, (SweepConfigError,), n, seed,
                                resealed))
    return counts


def main(argv: list[str] | None = None) -> int:
    """Parse the options, fuzz each file, print the counts; 0 when no file had a failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="mutations of each file (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the files and mutations (default: 0)")
    parser.add_argument("--files", nargs="+", choices=FILES, default=list(FILES), help="which files (default: all)")
    parser.add_argument("--reseal", action="store_true",
                        help="give every mutated file a matching checksum (fuzz the checks behind it)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.seed < 0:
        parser.error("--n must be positive and --seed >= 0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        counts = [fuzz_resume(Path(work), args.n, args.seed, args.reseal)] if "resume" in args.files else []
        if {"shard", "sweep.json"} & set(args.files):
            counts += fuzz_sweep(Path(work), args.n, args.seed, args.files, args.reseal)
    for count in counts:
        print(count)
    print(f"{time.perf_counter() - started:.0f} s, seed {args.seed}")
    print(json.dumps({c.file: c.counts for c in counts}))
    return 1 if any(c.failures for c in counts) else 0


if __name__ == "__main__":
    sys.exit(main())
