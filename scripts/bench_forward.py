"""The network's forward pass against this CPU's convolution ceiling, fast numerics against reference.

In one run, for each thread count (default 1 and 2), on a batch of ``--batch-size``
random inputs to a random ``ImpalaPolicy(scale=--scale)`` (a random network costs
as much as a trained one):

* the **conv ceiling**: FLOP/s of one 128→128 3×3 convolution on a channels-last
  (B, 128, 16, 16) batch -- the network's widest layer in its best layout, the most
  this CPU does on these convolutions;
* the forward pass with the **reference** numerics (contiguous layout) and with the
  **fast** numerics (channels-last: what every forward pass of the package uses),
  both under ``torch.inference_mode``, and two variants of the fast path: with the
  weights also converted to channels-last, and under ``torch.no_grad`` instead;
* for each: milliseconds per batch, FLOP/s (FLOPs counted once by torch's
  ``FlopCounterMode``), the fraction of the conv ceiling, and fast / reference.

Timings interleave the variants and keep each one's fastest of ``--repeats`` batches, so
that other processes on the machine slow all of them alike; the median is printed too.

    python scripts/bench_forward.py                   # scale 4, batch 64, 1 and 2 threads
    python scripts/bench_forward.py --scale 1 --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.core.numerics import reference_numerics

TARGET = 0.85
"""Target of the fast forward pass: this fraction of the conv ceiling."""


def count_flops(run: Callable[[], object]) -> int:
    """FLOPs of one call of ``run``, counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        run()
    return counter.get_total_flops()


def time_interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, the variants taking turns; one untimed warm-up call each."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def variants(scale: int, batch_size: int, seed: int) -> tuple[dict[str, Callable[[], object]], dict[str, int]]:
    """The timed calls (ceiling and forward-pass variants) and their FLOPs."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ImpalaPolicy(scale=scale).eval()
    model_cl = ImpalaPolicy(scale=scale).eval()
    model_cl.load_state_dict(model.state_dict())
    model_cl.to(memory_format=torch.channels_last)
    x = torch.rand(batch_size, 3, 64, 64, generator=generator)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).eval().to(memory_format=torch.channels_last)
    conv_in = torch.rand(batch_size, 128, 16, 16, generator=generator).contiguous(memory_format=torch.channels_last)

    def inference(run: Callable[[], object], reference: bool = False) -> Callable[[], object]:
        def call() -> object:
            with reference_numerics(reference), torch.inference_mode():
                return run()
        return call

    def no_grad_fast() -> object:
        with reference_numerics(False), torch.no_grad():
            return model(x)

    runs = {
        "conv ceiling": inference(lambda: conv(conv_in)),
        "reference": inference(lambda: model(x), reference=True),
        "fast": inference(lambda: model(x)),
        "fast, weights channels-last": inference(lambda: model_cl(x)),
        "fast, no_grad": no_grad_fast,
    }
    network_flops = count_flops(lambda: model(x))
    flops = {name: network_flops for name in runs}
    flops["conv ceiling"] = count_flops(lambda: conv(conv_in))
    return runs, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4, help="IMPALA width multiplier (default: 4)")
    parser.add_argument("--batch-size", type=int, default=64, help="inputs per forward pass (default: 64)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads (default: 1 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls of each variant (default: 7)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.repeats < 1 or args.batch_size < 1 or min(args.threads) < 1:
        parser.error("--repeats, --batch-size and --threads must be at least 1")

    runs, flops = variants(args.scale, args.batch_size, args.seed)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, load average "
          f"{load:.1f} at start; torch {torch.__version__}; ImpalaPolicy(scale={args.scale}), batch {args.batch_size}, "
          f"{flops['fast'] / 1e9:.2f} GFLOP per pass; ceiling conv {flops['conv ceiling'] / 1e9:.2f} GFLOP")
    before = torch.get_num_threads()
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            seconds = time_interleaved(runs, args.repeats)
            best = {name: min(s) for name, s in seconds.items()}
            ceiling = flops["conv ceiling"] / best["conv ceiling"]
            print(f"\n{threads} thread(s): conv ceiling {ceiling / 1e9:.1f} GFLOP/s")
            print(f"  {'variant':<28} {'best ms':>9} {'median ms':>10} {'GFLOP/s':>8} {'of ceiling':>11} "
                  f"{'fast/ref':>9}")
            for name in runs:
                if name == "conv ceiling":
                    continue
                rate = flops[name] / best[name]
                print(f"  {name:<28} {best[name] * 1e3:>9.1f} {statistics.median(seconds[name]) * 1e3:>10.1f} "
                      f"{rate / 1e9:>8.1f} {rate / ceiling:>11.2f} {best['reference'] / best[name]:>8.2f}x")
            print(f"  fast forward pass: {flops['fast'] / best['fast'] / ceiling:.2f} of the conv ceiling "
                  f"(target >= {TARGET})")
    finally:
        torch.set_num_threads(before)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.1f} at the end")


if __name__ == "__main__":
    main()
