"""Benchmark of sweep scaling: throughput (episodes per second) against the number of local workers.

Runs the same sweep with each worker count in ``--workers`` (a fresh output
folder each time, so nothing is resumed) and prints, per count, the wall time
of the whole :func:`mazeinterp.sweep.runner.run_sweep` call (worker start-up, shards,
merge and files), episodes per second, the speed-up over the first count and
the ratio speed-up / N (target: ≥ 0.8), and the CPU seconds spent per episode
by this process and its workers together (flat across N when the workers add
no overhead). It also prints the CPU count and the load average before and
after each run: on a machine shared with other work the ratios measure the
share of the CPU the workers got, not the sweep; the CPU seconds per episode
do not depend on that share.

Usage::

    python scripts/bench_sweep.py                          # default agent, 1 and 2 workers
    python scripts/bench_sweep.py --workers 1 2 4 8 --n-mazes 80
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.sweep.runner import SweepConfig, run_sweep


def main() -> None:
    """Parse the options, run the sweep once per worker count, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=DEFAULT_AGENT)
    parser.add_argument("--hook", default="embedder.block2.res1.resadd_out")
    parser.add_argument("--channels", type=int, default=8, help="channels 0 … N-1 are swept (default: 8)")
    parser.add_argument("--n-mazes", type=int, default=40)
    parser.add_argument("--shard-size", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    model = load_policy(args.checkpoint)
    config = SweepConfig(checkpoint=args.checkpoint, hooks=(args.hook,), channels=tuple(range(args.channels)),
                         kinds=("mean",), n_mazes=args.n_mazes, shard_size=args.shard_size,
                         max_steps=args.max_steps)
    print(f"{os.cpu_count()} CPUs; sweep of {args.channels} channels × mean ablation × {args.n_mazes} mazes "
          f"({config.n_shards} shards of {args.shard_size}), {args.checkpoint}")
    print(f"{'workers':>7} {'seconds':>8} {'episodes':>8} {'episodes/s':>10} {'speed-up':>8} {'/N':>6} "
          f"{'CPU s/episode':>13}   load before → after")
    first = None
    for workers in args.workers:
        load_before = os.getloadavg()[0]
        cpu_before = _cpu_seconds()
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            result = run_sweep(config, Path(tmp) / "out", workers=workers, model=model, progress=False)
            seconds = time.perf_counter() - started
        cpu = (_cpu_seconds() - cpu_before) / result.episodes
        rate = result.episodes / seconds
        first = first or (rate, workers)
        speedup = rate / first[0] * first[1]
        print(f"{workers:>7} {seconds:>8.1f} {result.episodes:>8} {rate:>10.2f} {speedup:>8.2f} "
              f"{speedup / workers:>6.2f} {cpu:>13.3f}   {load_before:.1f} → {os.getloadavg()[0]:.1f}")


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished (reaped) worker processes."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


if __name__ == "__main__":
    main()
