"""Fuzz of maze states at scale: can a mutated state kill, hang or confuse the interpreter?

Takes real states (start states of many level seeds, states in the middle of
episodes, edited states, easy-distribution states), applies one random
mutation to each of ``--n`` copies (a field set to a boundary or random value,
a NaN, a bit flip, an unknown cell code, a string edit, a cut, a header
change; see :mod:`fuzzing.states`), and parses it. Every state the
parser accepts is checked for internal contradictions and then set into a
procgen env in a child process (observe, step, read back) under a timeout, so
a fatal assert, segfault or hang is counted, not suffered.

Prints the counts; exits 1 if any of interpreter deaths, hangs, parser crashes,
accepted states refused by ``set_state`` or inconsistent accepted states is
non-zero.

Usage::

    python scripts/fuzz_states.py                 # 5,000 mutated states, 2 child processes
    python scripts/fuzz_states.py --n 20000 --workers 4 --seed 1
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.state import MazeState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness: fuzzing/, at the repository root
from fuzzing.states import FuzzCounts, Sandbox, check_blob, mutate  # noqa: E402


def base_states(seed: int) -> list[MazeState]:
    """Real states to mutate: starts of 64 level seeds, mid-episode states, edited and easy-mode states."""
    rng = np.random.default_rng(seed)
    with MazeEnv.from_seeds(range(seed * 1000, seed * 1000 + 64)) as env:
        states = env.get_states()
        for _ in range(20):
            env.step(rng.integers(0, 15, env.num))
        states += env.get_states()
    edited = []
    for state in states[:32]:
        n = state.maze_size
        open_cells = [tuple(int(v) for v in c) for c in np.argwhere(state.open_cells) if tuple(c) != state.mouse]
        cell = open_cells[int(rng.integers(len(open_cells)))]
        edited.append(state.without_cheese().with_mouse(cell).with_mouse_reflected(True))
        if state.cheese is not None and state.cheese != (0, n - 1) and state.mouse != (0, n - 1):
            edited.append(state.with_cheese((0, n - 1)))
    with MazeEnv(16, distribution_mode="easy", seed=seed) as env:
        easy = env.get_states()
    return states + edited + easy


def run(n: int, workers: int, seed: int, timeout_s: float) -> FuzzCounts:
    """Fuzz ``n`` mutated states over ``workers`` child processes; the merged counts."""
    states = [s.to_bytes() for s in base_states(seed)]
    per_worker = [n // workers + (i < n % workers) for i in range(workers)]
    results = [FuzzCounts() for _ in range(workers)]

    def work(i: int) -> None:
        rng = np.random.default_rng([seed, i])
        with Sandbox(timeout_s=timeout_s) as sandbox:
            for _ in range(per_worker[i]):
                blob, note = mutate(states[int(rng.integers(len(states)))], rng)
                check_blob(blob, note, sandbox, results[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = FuzzCounts()
    for r in results:
        for name in ("mutated", "refused", "accepted", "parser_crashes", "deaths", "hangs", "refused_by_env",
                     "inconsistent"):
            setattr(total, name, getattr(total, name) + getattr(r, name))
        total.examples += r.examples[: 10 - len(total.examples)]
    return total


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the fuzz, print the counts; 0 when nothing failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="mutated states (default: 5000)")
    parser.add_argument("--workers", type=int, default=2, help="child processes in parallel (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the states and mutations (default: 0)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds a child may take for one state before it counts as hung (default: 30)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.workers < 1 or args.seed < 0 or not args.timeout > 0:
        parser.error("--n and --workers must be positive, --seed >= 0, --timeout > 0")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    counts = run(args.n, args.workers, args.seed, args.timeout)
    print(counts)
    print(f"{time.perf_counter() - started:.0f} s, {args.workers} child process(es), seed {args.seed}")
    return 1 if counts.failures else 0


if __name__ == "__main__":
    sys.exit(main())
