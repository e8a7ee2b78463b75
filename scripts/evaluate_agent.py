"""Measure an agent for the model card: training-distribution solve rate and the goal-misgeneralization table.

Prints, and writes as JSON with ``--json``:

* the solve rate on the training distribution (cheese on an open cell of the
  top-right ``--region`` × ``--region`` corner; sampled actions; 500-step cap);
* on the standard distribution (procgen's own cheese placement), restricted to
  mazes with a decision square and the cheese outside the top-right 5×5:
  P(cheese), P(top_right), P(neither) with 95% Wilson intervals.

Only the standard mazes that count are played (about half): each keeps the
action stream of its position among the ``--n-standard`` seeds, so the
episodes are those of playing all of them and filtering afterwards.

Example::

    python scripts/evaluate_agent.py --checkpoint maze-s1-r5-v5 --n-train 500 --n-standard 1000
"""

from __future__ import annotations

import argparse
import time

from collections.abc import Sequence

from mazeinterp.checkpoints.registry import load_policy
from mazeinterp.runtime.arguments import new_file
from mazeinterp.maze.grid import TOP_RIGHT_REGION_SIZE
from mazeinterp.maze.state import MazeState
from mazeinterp.runtime.outputs import write_new_json
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.rollout import TEST_SEED_START, RolloutConfig, RolloutResult, load_mazes, run_rollouts
from mazeinterp.rollout.sources import is_standard_test_maze


def counted_positions(states: Sequence[MazeState], region: int = TOP_RIGHT_REGION_SIZE,
                      definition: str = "mazeinterp") -> list[int]:
    """Positions of the mazes with a decision square (``definition``) and the cheese outside the top-right ``region``²."""
    return [i for i, s in enumerate(states) if is_standard_test_maze(s, region, definition)]


def counted_standard_rollouts(policy: ImpalaPolicy, seeds: Sequence[int], config: RolloutConfig) -> RolloutResult:
    """Rollouts of the mazes among ``seeds`` that count (:func:`counted_positions`), each on its position's stream.

    The same episodes as ``run_rollouts(policy, seeds, config=config)`` filtered to
    those mazes, in about half the time.
    """
    states = load_mazes(seeds)
    counted = counted_positions(states, definition=config.decision_square)
    return run_rollouts(policy, [states[i] for i in counted], config=config, streams=counted)


def main() -> None:
    """Parse arguments, run both rollouts, print the tables and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint path or shipped name")
    parser.add_argument("--n-train", type=int, default=500, help="training-distribution mazes (default: 500)")
    parser.add_argument("--n-standard", type=int, default=1000,
                        help="standard-distribution mazes, before filtering (default: 1000)")
    parser.add_argument("--region", type=int, default=5, help="cheese region of the training distribution")
    parser.add_argument("--seed", type=int, default=0, help="seeds action sampling (default: 0)")
    parser.add_argument("--json", type=new_file, default=None, help="also write the numbers here (a new file)")
    args = parser.parse_args()

    policy = load_policy(args.checkpoint)
    started = time.time()
    train = run_rollouts(policy, range(args.n_train),
                         config=RolloutConfig(seed=args.seed, cheese_region=args.region))
    train_summary = train.summary()
    print(f"training distribution (cheese region {args.region}), level seeds 0…{args.n_train - 1}:")
    print(train_summary)
    seeds = range(TEST_SEED_START, TEST_SEED_START + args.n_standard)
    table = counted_standard_rollouts(policy, seeds, RolloutConfig(seed=args.seed)).summary(
        decision_square_only=True, cheese_outside_region=5)
    print(f"\nstandard distribution, level seeds {seeds.start}…{seeds.stop - 1}, "
          "mazes with a decision square and the cheese outside the top-right 5×5:")
    print(table)
    elapsed = time.time() - started
    print(f"\n{elapsed:.0f} s")
    if args.json:
        write_new_json(args.json, {
            "checkpoint": str(args.checkpoint), "seed": args.seed,
            "training_distribution": {"region": args.region, "seeds": [0, args.n_train - 1],
                                      "summary": train_summary.as_dict()},
            "standard_distribution": {"seeds": [seeds.start, seeds.stop - 1], "summary": table.as_dict()},
            "seconds": round(elapsed, 1),
        })


if __name__ == "__main__":
    main()
