"""Wall time of each channel-discovery method on N mazes (default: 200 mazes, scale 4, random weights).

Usage::

    python scripts/bench_channels.py                      # N = 200, scale 4, 1 torch thread
    python scripts/bench_channels.py --n 50 --scale 1 --threads 2 --json out/bench.json

Mazes are procgen levels ``first_seed … first_seed + N - 1`` at their start
(mouse bottom-left, cheese where procgen put it). Every method renders its own
observations (shared renderer), so rendering is included in its time; building
the envs that produce the states is timed separately. Random weights are fine
for timing: the cost does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from mazeinterp.analysis.channels import (
    behaviour_attribution,
    cheese_probe,
    cheese_tracking_channels,
    directional_channels,
)
from mazeinterp.runtime.arguments import new_file
from mazeinterp.core.hooks import render_states
from mazeinterp.maze.env import MazeEnv
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.runtime.outputs import write_new_json
from mazeinterp.analysis.steering import DEFAULT_STEERING_HOOK, mean_cheese_vector, probe_cheese_vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of mazes")
    parser.add_argument("--scale", type=int, default=4, help="IMPALA width multiplier (published agent: 4)")
    parser.add_argument("--first-seed", type=int, default=0, help="first procgen level seed")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--hook", default=DEFAULT_STEERING_HOOK, help="layer for the cheese methods")
    parser.add_argument("--skip-vectors", action="store_true", help="do not time the cheese-vector recipes")
    parser.add_argument("--json", type=new_file, default=None, help="also write the timings here (a new file)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=args.scale).eval()
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        start = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - start
        print(f"{name:<34} {timings[name]:8.2f} s", flush=True)
        return result

    states = timed("build envs + read states", lambda: _states(args.first_seed, args.n))
    timed("render (warm-up, not a method)", lambda: render_states(states[:8]))
    table = timed("cheese_tracking_channels", lambda: cheese_tracking_channels(model, states, args.hook))
    print(table.top(5), "\n", flush=True)
    table = timed("directional_channels", lambda: directional_channels(model, states))
    print(table.top(5), "\n", flush=True)
    table = timed("behaviour_attribution", lambda: behaviour_attribution(model, states, args.hook))
    print(table.top(5), "\n", flush=True)
    table = timed("cheese_probe", lambda: cheese_probe(model, states, args.hook))
    print(table.top(5), "\n", flush=True)
    if not args.skip_vectors:
        timed("mean_cheese_vector", lambda: mean_cheese_vector(model, states, args.hook))
        timed("probe_cheese_vector", lambda: probe_cheese_vector(model, states, args.hook))

    info = {
        "n_mazes": args.n, "scale": args.scale, "threads": args.threads, "hook": args.hook,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(), "torch": torch.__version__, "seconds": timings,
    }
    print(json.dumps(info, indent=2))
    if args.json is not None:
        write_new_json(args.json, info)


def _states(first_seed: int, n: int):
    states = []
    for start in range(first_seed, first_seed + n, 256):
        with MazeEnv.from_seeds(range(start, min(start + 256, first_seed + n))) as env:
            states.extend(env.get_states())
    return states


if __name__ == "__main__":
    main()
