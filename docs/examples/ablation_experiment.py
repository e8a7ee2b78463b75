"""Mean-ablate the top cheese-tracking channels and measure how often the agent still finds the cheese.

The experiment, in four steps:

1. **Find channels by measurement.** Rank the channels of
   ``embedder.block2.res1.resadd_out`` with
   :func:`mazeinterp.analysis.channels.cheese_tracking_channels` on a set of
   *discovery* mazes (level seeds from ``--discovery-start-level``), kept apart
   from the evaluation mazes so that the channels are not chosen on the mazes
   they are tested on. Keep the ``--top-k`` best.
2. **Build the ablation.** Replace those channels, at every position and every
   forward pass, with their mean activation over the start observations of
   ``--reference-mazes`` random mazes (:func:`mazeinterp.analysis.references.mean_ablation`).
3. **Compare on the same mazes.** Run the baseline and the ablated policy on
   the evaluation mazes (level seeds ``--start-level …``) with
   :func:`mazeinterp.rollout.compare`: same mazes, same per-maze random
   numbers, so the paired difference in P(cheese) isolates the ablation.
4. **Report.** Print the paired difference with its 95% interval (Newcombe)
   and write everything to ``--out/result.json`` through
   :class:`mazeinterp.runtime.outputs.OutputDir`, which refuses to overwrite an
   earlier run's file unless ``--overwrite`` is given. The file name is
   claimed before any work starts, so a run into a used folder fails at once.

Run it from the repository root::

    python docs/examples/ablation_experiment.py --n-mazes 20 --out runs/ablation-experiment

Every number is a function of the arguments: the same command gives the same
result.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from mazeinterp.analysis.channels import ChannelTable, cheese_tracking_channels
from mazeinterp.analysis.references import mean_ablation
from mazeinterp.checkpoints.registry import DEFAULT_AGENT, CheckpointError, load_policy
from mazeinterp.core.interventions import MeanAblate
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.runtime.outputs import OutputDir, OutputExistsError
from mazeinterp.rollout import TEST_SEED_START, Comparison, RolloutConfig, compare, load_mazes

LAYER = "embedder.block2.res1.resadd_out"
"""The layer of the published cheese vector and of the cheese-tracking channels."""

RESULT_FILE = "result.json"
"""Name of the JSON file written into ``--out``."""

PROG = "ablation_experiment"


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: a non-negative integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=DEFAULT_AGENT,
                        help=f"checkpoint file or shipped agent name (default: {DEFAULT_AGENT})")
    parser.add_argument("--n-mazes", type=positive_int, default=100,
                        help="evaluation mazes, level seeds start-level … start-level + n - 1 (default: 100)")
    parser.add_argument("--start-level", type=non_negative_int, default=0,
                        help="first level seed of the evaluation mazes (default: 0)")
    parser.add_argument("--max-steps", type=positive_int, default=500,
                        help="step cap per episode (default: 500, procgen's episode length)")
    parser.add_argument("--top-k", type=positive_int, default=3,
                        help="number of top cheese-tracking channels to ablate (default: 3)")
    parser.add_argument("--discovery-mazes", type=positive_int, default=100,
                        help="mazes used to rank the channels (default: 100)")
    parser.add_argument("--discovery-start-level", type=non_negative_int, default=TEST_SEED_START,
                        help=f"first level seed of the discovery mazes (default: {TEST_SEED_START})")
    parser.add_argument("--reference-mazes", type=positive_int, default=100,
                        help="random mazes whose mean activation replaces the channels (default: 100)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="action sampling and the reference mazes (default: 0)")
    parser.add_argument("--batch-size", type=positive_int, default=64,
                        help="envs stepped together (default: 64); does not change the numbers")
    parser.add_argument("--out", default="runs/ablation-experiment",
                        help="output folder (default: runs/ablation-experiment)")
    parser.add_argument("--overwrite", action="store_true", help=f"replace an earlier {RESULT_FILE} in --out")
    return parser.parse_args(argv)


def find_channels(policy: ImpalaPolicy, n_mazes: int, start_level: int, top_k: int) -> ChannelTable:
    """Rank the channels of :data:`LAYER` by cheese tracking on discovery mazes; return the top ``top_k`` rows."""
    n_channels = policy.hook_points()[LAYER][0]
    if top_k > n_channels:
        raise ValueError(f"--top-k {top_k} is more than the {n_channels} channels of {LAYER}")
    states = load_mazes(range(start_level, start_level + n_mazes))
    return cheese_tracking_channels(policy, states, LAYER).top(top_k)


def build_ablation(policy: ImpalaPolicy, channels: Sequence[int], reference_mazes: int, seed: int) -> MeanAblate:
    """Mean ablation of ``channels`` at :data:`LAYER`, the mean taken over random mazes drawn from ``seed``."""
    return mean_ablation(policy, LAYER, reference_mazes, seed=seed, channels=list(channels))


def run_comparison(policy: ImpalaPolicy, ablation: MeanAblate, args: argparse.Namespace) -> Comparison:
    """Baseline and ablated rollouts on the same evaluation mazes, with the same random numbers."""
    mazes = range(args.start_level, args.start_level + args.n_mazes)
    config = RolloutConfig(max_steps=args.max_steps, seed=args.seed, batch_size=args.batch_size)
    return compare(policy, mazes, (), [ablation], config)


def summarise(policy: ImpalaPolicy, table: ChannelTable, ablation: MeanAblate, comparison: Comparison,
              args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """Everything worth keeping about the run, as plain data for JSON."""
    difference = comparison.difference("cheese")
    return {
        "checkpoint": str(policy.source),
        "scale": policy.scale,
        "layer": LAYER,
        "layer_shape": list(policy.hook_points()[LAYER]),
        "channels": [int(c) for c in table.channel],
        "channel_table": table.to_rows(),
        "ablation": repr(ablation),
        "settings": {key: value for key, value in vars(args).items() if key != "overwrite"},
        "n_mazes": len(comparison.baseline),
        "p_cheese_baseline": difference.p_baseline,
        "p_cheese_ablated": difference.p_treatment,
        "difference": difference.as_dict(),
        "baseline": comparison.baseline.summary().as_dict(),
        "ablated": comparison.treatment.summary().as_dict(),
        "seconds": seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiment; return the exit status (0, or 2 with a one-line error on stderr)."""
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        out = OutputDir(args.out, overwrite=args.overwrite)
        out.claim(RESULT_FILE)  # fail now, before any work, if an earlier result is there
        policy = load_policy(args.checkpoint)
        table = find_channels(policy, args.discovery_mazes, args.discovery_start_level, args.top_k)
        print(table)
        ablation = build_ablation(policy, table.channel.tolist(), args.reference_mazes, args.seed)
        comparison = run_comparison(policy, ablation, args)
        result = summarise(policy, table, ablation, comparison, args, time.perf_counter() - started)
        path = out.write_json(RESULT_FILE, result)
    except (CheckpointError, OutputExistsError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(comparison)
    d = comparison.difference("cheese")
    print(f"P(cheese): baseline {d.p_baseline:.3f}, ablated {d.p_treatment:.3f}")
    print(f"paired difference (ablated - baseline): {d.estimate:+.3f}, "
          f"95% CI [{d.low:+.3f}, {d.high:+.3f}] over {d.n} mazes")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
