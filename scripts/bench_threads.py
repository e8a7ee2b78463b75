"""Benchmark: a small-batch rollout on a busy machine, for each torch thread setting.

torch's default (a thread per core) hands every forward pass to threads that
must wait for a time slice when other processes hold the cores; a small batch
then runs many times slower than on one thread. This script makes the machine
busy itself -- ``--load-procs`` processes spinning on the CPU, each ending on
its own after ``--load-seconds`` at most and stopped when the measurement ends
-- and times :func:`mazeinterp.rollout.run_rollouts` of ``--n-mazes`` mazes
with each thread count, interleaved over ``--repeats`` rounds (median kept).

It prints seconds and frames/s per setting, checks that every setting gives
the same outcomes, and prints the library default's (``threads=None``) time
over the best setting's time (target: ≤ 1.5).

Usage::

    python scripts/bench_threads.py                           # shipped default agent, 5 mazes
    python scripts/bench_threads.py --n-mazes 8 --max-steps 80 --load-procs 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import torch

from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts
from mazeinterp.runtime.threads import available_cpus, default_threads

TORCH_DEFAULT = torch.get_num_threads()  # what torch chose at start-up (OMP_NUM_THREADS, else the cores)


def _spin(deadline: float) -> None:
    """Burn one CPU until ``deadline`` (time.time()), then exit."""
    x = 0
    while time.time() < deadline:
        for i in range(10_000):
            x += i * i


def start_load(procs: int, seconds: float) -> list[mp.Process]:
    """``procs`` spinning processes that end by themselves after ``seconds``."""
    deadline = time.time() + seconds
    workers = [mp.Process(target=_spin, args=(deadline,), daemon=True) for _ in range(procs)]
    for w in workers:
        w.start()
    return workers


def stop_load(workers: list[mp.Process]) -> None:
    """Stop the spinning processes (each by its own handle) and reap them."""
    for w in workers:
        if w.is_alive():
            w.terminate()
    for w in workers:
        w.join(timeout=5)


def settings(cpus: int) -> list[int | None]:
    """Thread counts to try: 1, 2, 4, … up to the CPUs, the CPUs, torch's start-up default, and None (ours)."""
    counts = {1, cpus, TORCH_DEFAULT}
    t = 2
    while t < cpus:
        counts.add(t)
        t *= 2
    return [*sorted(counts), None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=DEFAULT_AGENT, help="agent (default: the shipped default)")
    parser.add_argument("--n-mazes", type=int, default=5, help="mazes per rollout (the batch size; default: 5)")
    parser.add_argument("--max-steps", type=int, default=40, help="step cap per episode (default: 40)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all settings (default: 2)")
    parser.add_argument("--load-procs", type=int, default=available_cpus(),
                        help="competing CPU-bound processes (default: one per available CPU)")
    parser.add_argument("--load-seconds", type=float, default=300.0,
                        help="longest life of the competing load, seconds (default: 300)")
    args = parser.parse_args()

    policy = load_policy(args.checkpoint)
    mazes = load_mazes(range(args.n_mazes))
    cpus = available_cpus()
    tried = settings(cpus)
    config = lambda t: RolloutConfig(max_steps=args.max_steps, seed=0, threads=t, progress=False)  # noqa: E731
    run_rollouts(policy, mazes, config=config(1))  # warm-up: imports, first env

    print(f"policy {policy.source} (scale {policy.scale}); {args.n_mazes} mazes, max {args.max_steps} steps; "
          f"{cpus} CPUs available; torch start-up threads {TORCH_DEFAULT}; "
          f"default for this batch: {default_threads(args.n_mazes)}")
    load_before = os.getloadavg()
    workers = start_load(args.load_procs, args.load_seconds)
    times: dict[int | None, list[float]] = {t: [] for t in tried}
    frames: dict[int | None, int] = {}
    outcomes: dict[int | None, list[tuple[str, int]]] = {}
    try:
        time.sleep(1.0)  # let the load take the cores
        for _ in range(args.repeats):
            for t in tried:
                result = run_rollouts(policy, mazes, config=config(t))
                times[t].append(result.seconds)
                frames[t] = result.frames
                outcomes[t] = [(e.outcome, e.steps) for e in result]
    finally:
        stop_load(workers)
    load_after = os.getloadavg()

    median = {t: statistics.median(v) for t, v in times.items()}
    best = min(median.values())
    print(f"competing load: {args.load_procs} spinning processes; 1-min load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} at the end")
    print(f"{'threads':>16} {'seconds':>9} {'frames/s':>9} {'/ best':>7}")
    for t in tried:
        name = f"default ({default_threads(args.n_mazes)})" if t is None else str(t)
        if t == TORCH_DEFAULT:
            name += " torch"
        print(f"{name:>16} {median[t]:>9.2f} {frames[t] / median[t]:>9.1f} {median[t] / best:>7.2f}")
    same = len({tuple(v) for v in outcomes.values()}) == 1
    print(f"same outcomes with every setting: {same}")
    print(f"default / best = {median[None] / best:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
