"""Draw the edge trap: a timed-out episode whose mouse shuttled between two cells near the top-right region.

Runs the agent on standard test mazes (level seeds from ``TEST_SEED_START``)
that have a decision square and the cheese outside the top-right 5×5, takes
the first episode that hit the step cap trapped between two cells within
``--max-edge-distance`` cells of the region's edge, and draws the policy's
vector field on that maze (mouse drawn plain) with the 5×5 region, the two
trap cells and the episode's last 100 cells. It prints the move
probabilities on the two trap cells: each points at the other.

Example::

    python scripts/edge_trap_figure.py --checkpoint maze-s1-r5-v5 --out docs/images/edge-trap.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.maze.outcomes import TRAP_WINDOW, region_edge_distance
from mazeinterp.core.model import MOVES
from mazeinterp.rollout import TEST_SEED_START, RolloutConfig, load_mazes, run_rollouts

REGION = 5


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=DEFAULT_AGENT, help="checkpoint path or shipped name")
    parser.add_argument("--out", default="runs/edge-trap.png", help="PNG to write (never overwritten)")
    parser.add_argument("--seed", type=int, default=0, help="action sampling")
    parser.add_argument("--batch", type=int, default=32, help="test mazes searched per round")
    parser.add_argument("--max-mazes", type=int, default=512, help="give up after this many test mazes")
    parser.add_argument("--max-edge-distance", type=int, default=2, help="how near the region's edge the trap lies")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Find an edge trap, print it and draw it; exit status 1 when none is found."""
    import matplotlib.patches as patches

    from mazeinterp.core.hooks import render_states
    from mazeinterp.maze.pixels import WORLD_SIZE
    from mazeinterp.runtime.outputs import OutputDir
    from mazeinterp.viz.plots import cell_centre_xy, draw_vector_field, new_figure, save_figure
    from mazeinterp.analysis.vfield import vector_field

    args = parse_args(argv)
    (path,) = OutputDir(Path(args.out).parent).claim(Path(args.out).name)  # fails before any work if it exists
    cell = 64 / WORLD_SIZE  # one cell in observation pixels, the unit of the plot axes
    policy = load_policy(args.checkpoint)
    config = RolloutConfig(seed=args.seed, record_trajectories=True, progress=False)
    for start in range(TEST_SEED_START, TEST_SEED_START + args.max_mazes, args.batch):
        states = load_mazes(range(start, start + args.batch))
        result = run_rollouts(policy, states, config=config)
        for episode, state in zip(result.episodes, states):
            if not (episode.has_decision_square and not episode.cheese_in_region(REGION) and episode.trapped):
                continue
            n = state.maze_size
            if max(region_edge_distance(c, n, REGION) for c in episode.trap.cells) > args.max_edge_distance:
                continue
            field = vector_field(policy, state)
            a, b = episode.trap.cells
            print(f"level seed {state.level_seed}: {n}×{n}, cheese {state.cheese}, trap {a} ↔ {b} "
                  f"({episode.trap.share:.0%} of the last {TRAP_WINDOW} steps)")
            for trap_cell in (a, b):
                probs = ", ".join(f"{m} {p:.2f}" for m, p in zip(MOVES, field.prob_at(trap_cell)))
                print(f"  move probabilities on {trap_cell}: {probs}")
            fig, axes = new_figure(size=6)
            ax = axes[0, 0]
            draw_vector_field(ax, field, render_states([state])[0], paths=True,
                              title=f"level seed {state.level_seed}: trapped between {a} and {b} until step "
                                    f"{episode.steps}")
            corner = cell_centre_xy([(0, n - REGION)], n)[0] - cell / 2
            ax.add_patch(patches.Rectangle(tuple(corner), REGION * cell, REGION * cell, fill=False,
                                           edgecolor="white", linestyle="--", lw=1.5,
                                           label=f"top-right {REGION}×{REGION}"))
            ax.plot(*cell_centre_xy(episode.trajectory[-TRAP_WINDOW:], n).T, color="white", lw=1, alpha=0.7,
                    label=f"last {TRAP_WINDOW} steps")
            ax.scatter(*cell_centre_xy([a, b], n).T, s=120, facecolors="none", edgecolors="magenta", linewidths=2,
                       label="trap cells", zorder=4)
            ax.legend(fontsize=7, loc="lower right")
            print(f"wrote {save_figure(fig, path)}")
            return 0
    print(f"no edge trap in the first {args.max_mazes} test mazes")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
