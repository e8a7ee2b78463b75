"""Benchmark of the rollout harness: is the network kept busy?

Prints, in one run:

* env-only steps/s -- ``MazeEnv`` stepping random actions (no network);
* model-only frames/s -- forward passes of a random-weight ``ImpalaPolicy`` on
  real observations, batch ``--batch-size``, inference mode, with the package's
  numerics (channels-last unless ``MAZEINTERP_REFERENCE_NUMERICS=1``; see
  ``scripts/bench_forward.py`` for the two compared);
* end-to-end rollout frames/s -- :func:`mazeinterp.rollout.run_rollouts` on
  ``--n-mazes`` level seeds with ``--max-steps`` steps, counting every frame sent
  through the network (maze loading and outcome tracking included);
* the ratio end-to-end / model-only (target: ≥ 0.8).

Usage::

    python scripts/bench_rollout.py                      # scale 4, batch 64, CPU
    python scripts/bench_rollout.py --scale 1 --n-mazes 64 --max-steps 8
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from mazeinterp.maze.env import MazeEnv
from mazeinterp.core.model import ImpalaPolicy, count_parameters, obs_to_tensor
from mazeinterp.rollout import RolloutConfig, run_rollouts


def env_only(batch_size: int, steps: int, seed: int) -> float:
    """Env steps per second (summed over envs) with random actions."""
    rng = np.random.default_rng(seed)
    with MazeEnv(batch_size, seed=seed) as env:
        env.step(rng.integers(0, 15, batch_size))
        start = time.perf_counter()
        for _ in range(steps):
            env.step(rng.integers(0, 15, batch_size))
        return batch_size * steps / (time.perf_counter() - start)


def model_only(model: ImpalaPolicy, batch_size: int, batches: int, device: torch.device) -> float:
    """Frames per second of the network alone, on real observations, in inference mode (the package's numerics)."""
    with MazeEnv.from_seeds(range(batch_size)) as env:
        obs = env.observe()[1].copy()
    with torch.inference_mode():
        x = obs_to_tensor(obs, device=device)
        model(x)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(batches):
            logits, _ = model(x)
        logits.cpu()
        return batch_size * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4, help="IMPALA width multiplier (default: 4)")
    parser.add_argument("--batch-size", type=int, default=64, help="envs per batch (default: 64)")
    parser.add_argument("--n-mazes", type=int, default=128, help="mazes for the end-to-end run (default: 128)")
    parser.add_argument("--max-steps", type=int, default=12, help="step cap of the end-to-end run (default: 12)")
    parser.add_argument("--model-batches", type=int, default=12, help="batches for model-only (default: 12)")
    parser.add_argument("--env-steps", type=int, default=300, help="steps for env-only (default: 300)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = ImpalaPolicy(scale=args.scale).to(device).eval()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, device {device}")
    print(f"model: ImpalaPolicy(scale={args.scale}), {count_parameters(model):,} parameters, random weights; "
          f"batch {args.batch_size}")

    env_rate = env_only(args.batch_size, args.env_steps, args.seed)
    print(f"env-only:         {env_rate:10.0f} env-steps/s   ({args.batch_size} envs, random actions)")

    model_rate = model_only(model, args.batch_size, args.model_batches, device)
    print(f"model-only:       {model_rate:10.1f} frames/s      ({args.model_batches} batches of {args.batch_size})")

    config = RolloutConfig(max_steps=args.max_steps, batch_size=args.batch_size, seed=args.seed,
                           device=args.device, progress=False)
    start = time.perf_counter()
    result = run_rollouts(model, range(args.n_mazes), config=config)
    wall = time.perf_counter() - start
    e2e_rate = result.frames / wall
    print(f"end-to-end:       {e2e_rate:10.1f} frames/s      ({result.frames} frames, {args.n_mazes} mazes, "
          f"max {args.max_steps} steps, {wall:.1f} s incl. maze loading)")
    print(f"ratio end-to-end / model-only: {e2e_rate / model_rate:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
