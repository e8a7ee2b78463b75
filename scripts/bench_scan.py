"""Benchmark of channel scans: four ways to measure every channel's ablation effect, against the physical limit.

On the default agent widened to ``--scale`` (:func:`mazeinterp.train.widen.widen_policy`,
the published width at 4), mean ablation of single channels of ``--hook``, on the
first ``--n-mazes`` standard test mazes (level seeds from 1,000,000 with a decision
square and the cheese outside the top-right 5×5), all in one run:

* **sampled** -- :func:`mazeinterp.rollout.run_rollouts`, one sampled episode per maze and
  condition (what ``sweep`` does today);
* **exact** -- :func:`mazeinterp.analysis.vfield.outcome_probabilities`, a full forward pass per cell,
  drawing and condition;
* **exact + prefix** -- what :func:`mazeinterp.analysis.prefix_cache.prefix_outcome_probabilities` does:
  the network up to the hook once per maze (timed apart, added once per maze to the
  full scan), the rest per condition;
* **scan** -- :func:`mazeinterp.analysis.scan.scan_channels`: every channel estimated from one
  forward and backward pass per maze, then the ``--top`` exact.

Each is timed per maze and condition on ``--conditions`` channels and extrapolated to a
full scan (every channel of the hook, ``--extrapolate`` mazes). Each is also set against the
physical limit: its FLOPs (counted by torch's ``FlopCounterMode`` on one batch of each
kind of pass) over this CPU's conv ceiling (one C→C 3×3 convolution at the hook's
resolution, channels-last, batch 64, timed here), so ``of limit`` = (FLOPs / ceiling) / time.

Usage::

    python scripts/bench_scan.py                               # scale 4, 2 mazes, 2 conditions, 2 threads
    python scripts/bench_scan.py --n-mazes 4 --conditions 4 --threads 2 --json runs/bench_scan.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.runtime.arguments import new_file
from mazeinterp.runtime.defaults import DEFAULT_STEERING_HOOK
from mazeinterp.core.hooks import activations, forward_from, render_states, to_model_input
from mazeinterp.analysis.references import mean_ablation
from mazeinterp.core.interventions import MeanAblate
from mazeinterp.core.model import move_probs
from mazeinterp.runtime.outputs import write_new_json
from mazeinterp.analysis.prefix_cache import build_prefix_cache, cached_move_probs
from mazeinterp.rollout import RolloutConfig, run_rollouts
from mazeinterp.rollout.sources import standard_test_mazes
from mazeinterp.analysis.scan import scan_channels
from mazeinterp.train.widen import widen_policy
from mazeinterp.analysis.vfield import field_cells, outcome_probabilities, outcomes_from_fields


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def conv_ceiling(channels: int, size: int, repeats: int = 5) -> float:
    """FLOP/s of one channels→channels 3×3 convolution on (64, channels, size, size), channels-last, best of repeats."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(64, channels, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        flops = _flops(lambda: conv(x))
        conv(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    return flops / best


def pass_flops(model, hook: str, state) -> dict[str, float]:
    """FLOPs per observation of a full forward pass, the part up to ``hook``, the rest, and the rest with backward."""
    x = to_model_input(model, render_states([state.with_mouse(c) for c in field_cells(state)[:8]]))
    n = x.shape[0]
    with torch.no_grad():
        full = _flops(lambda: model(x))
        act = activations(model, hook, x)
        rest = _flops(lambda: forward_from(model, hook, act))

    def rest_backward() -> None:
        leaf = act.clone().requires_grad_(True)
        logits, _ = forward_from(model, hook, leaf)
        move_probs(logits)[:, 0].sum().backward()  # FlopCounterMode counts .backward(), not autograd.grad

    return {"full": full / n, "prefix": (full - rest) / n, "rest": rest / n, "rest_backward": _flops(rest_backward) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4, help="width of the widened default agent (default: 4)")
    parser.add_argument("--hook", default=DEFAULT_STEERING_HOOK, help=f"hook point (default: {DEFAULT_STEERING_HOOK})")
    parser.add_argument("--n-mazes", type=int, default=2, help="standard test mazes timed (default: 2)")
    parser.add_argument("--conditions", type=int, default=2, help="channels timed per way (default: 2)")
    parser.add_argument("--top", type=int, default=16, help="channels the scan verifies exactly (default: 16)")
    parser.add_argument("--extrapolate", type=int, default=200, help="mazes of the full scan (default: 200)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--json", type=new_file, default=None, help="also write the numbers here (a new file)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = widen_policy(load_policy(DEFAULT_AGENT), args.scale).eval()
    hook = args.hook
    channels, height, _ = model.hook_points()[hook]
    _, states = standard_test_mazes(args.n_mazes)
    cells = sum(2 * len(field_cells(s)) for s in states)  # forward passes per condition, both drawings
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}")
    print(f"model: default agent widened to scale {args.scale}; hook {hook} ({channels} channels); "
          f"{args.n_mazes} standard test mazes, {cells} cell-drawings; {args.conditions} conditions")

    ceiling = conv_ceiling(channels, height)
    flops = pass_flops(model, hook, states[0])
    print(f"conv ceiling: {ceiling / 1e9:.1f} GFLOP/s; FLOPs per observation: full {flops['full'] / 1e6:.0f} M, "
          f"after the hook {flops['rest'] / flops['full']:.2f} of it")
    mean = mean_ablation(model, hook, 100, seed=0).mean
    conditions = [[MeanAblate(hook, mean, channels=[c])] for c in range(args.conditions)]
    n_cond = len(conditions) * len(states)

    rows = {}

    start = time.perf_counter()
    steps = 0
    for condition in conditions:
        result = run_rollouts(model, states, condition, RolloutConfig(seed=0, progress=False))
        steps += sum(e.steps for e in result.episodes)
    rows["sampled"] = ((time.perf_counter() - start) / n_cond, steps * flops["full"] / n_cond)

    start = time.perf_counter()
    for condition in conditions:
        outcome_probabilities(model, states, condition)
    rows["exact"] = ((time.perf_counter() - start) / n_cond, cells * flops["full"] / len(states))

    prefix_s = rest_s = 0.0  # the two parts of prefix_outcome_probabilities, timed apart
    for state in states:
        start = time.perf_counter()
        cache = build_prefix_cache(model, [state], hook)
        prefix_s += (time.perf_counter() - start) / len(states)
        start = time.perf_counter()
        for condition in conditions:
            outcomes_from_fields([state], cache.fields(cached_move_probs(model, cache, condition)))
        rest_s += (time.perf_counter() - start) / n_cond
    per_cell = cells / len(states)
    rows["exact + prefix"] = (rest_s, per_cell * flops["rest"])

    start = time.perf_counter()
    scan_channels(model, states, hook, kind="mean", top=args.top, mean=mean, progress=False)
    scan_s = (time.perf_counter() - start) / len(states)
    scan_flops = per_cell * (2 * flops["prefix"] + flops["rest"] + flops["rest_backward"] + args.top * flops["rest"])

    full_conditions = channels * args.extrapolate
    print(f"\n{'way':<16} {'s per maze·condition':>21} {'of limit':>9} {'full scan (h)':>14}   "
          f"({channels} channels × {args.extrapolate} mazes)")
    report = {}
    for way, (seconds, way_flops) in rows.items():
        total = seconds * full_conditions
        if way == "exact + prefix":
            total += prefix_s * args.extrapolate
        limit = way_flops / ceiling / seconds
        report[way] = {"seconds_per_maze_condition": seconds, "of_limit": limit, "full_scan_hours": total / 3600}
        print(f"{way:<16} {seconds:>21.3f} {limit:>9.2f} {total / 3600:>14.2f}")
    scan_total = scan_s * args.extrapolate
    scan_limit = scan_flops / ceiling / scan_s
    report["scan"] = {"seconds_per_maze": scan_s, "of_limit": scan_limit, "full_scan_hours": scan_total / 3600,
                      "top": args.top}
    print(f"{'scan (top ' + str(args.top) + ')':<16} {scan_s / channels:>21.3f} {scan_limit:>9.2f} "
          f"{scan_total / 3600:>14.2f}   ({scan_s:.1f} s per maze, all channels)")
    print(f"\nfull scan, scan vs sampled: {report['sampled']['full_scan_hours'] / (scan_total / 3600):.1f}× faster; "
          "target: the full scan <= 1 h on 2 cores")
    if args.json:
        write_new_json(args.json, {"scale": args.scale, "hook": hook, "n_mazes": args.n_mazes,
                                   "conditions": args.conditions, "threads": args.threads,
                                   "load_average": os.getloadavg()[0], "conv_ceiling_flops": ceiling,
                                   "flops_per_observation": flops, "ways": report})


if __name__ == "__main__":
    main()
