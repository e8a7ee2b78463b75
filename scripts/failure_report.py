"""Where an agent loses on its training distribution, and whether its losses belong to their mazes.

Plays ``--n`` training-distribution mazes (level seeds 0…n-1, the cheese on an
open cell of the top-right ``--region`` square, action seed ``--seed``, 500-step
cap, sampled actions) and prints:

* P(cheese) by maze side, with 95% Wilson intervals;
* for the lost episodes: the cells where the mouse met a most probable move that
  is not the BFS oracle's (the first move of the shortest path to the cheese),
  counted once per maze and split into cells on and off the shortest
  start-to-cheese path;
* the lost mazes replayed with the same cheese cells and ``--replays`` other
  action seeds: how many of them then reach the cheese. Few means the losses
  belong to those maze-and-cheese layouts; many means bad luck spread thinly.

Example::

    python scripts/failure_report.py --checkpoint maze-s1-r1 --region 1 --n 500
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from mazeinterp.checkpoints.registry import load_policy
from mazeinterp.runtime.arguments import new_file
from mazeinterp.maze import grid
from mazeinterp.maze.moves import move_from_delta
from mazeinterp.maze.state import MazeState
from mazeinterp.runtime.outputs import write_new_json
from mazeinterp.rollout import Episode, Policy, RolloutConfig, ScriptedPolicy, load_mazes, run_rollouts
from mazeinterp.analysis.stats import wilson_interval


@dataclass(frozen=True)
class SideRow:
    """Episodes of one maze side: how many, and how many reached the cheese."""

    side: int
    mazes: int
    reached: int

    @property
    def interval(self) -> tuple[float, float]:
        """95% Wilson interval of P(cheese)."""
        return wilson_interval(self.reached, self.mazes)


@dataclass(frozen=True)
class FailureReport:
    """What :func:`failure_report` measured.

    ``misleading_on_path`` and ``misleading_off_path`` count (maze, cell) pairs;
    ``replays`` maps each replay's action seed to the number of lost mazes that
    then reached the cheese.
    """

    region: int
    seed: int
    mazes: int
    reached: int
    by_side: tuple[SideRow, ...]
    lost_seeds: tuple[int, ...]
    trapped: int
    misleading_on_path: int
    misleading_off_path: int
    replays: dict[int, int]


def side_table(episodes: Sequence[Episode]) -> tuple[SideRow, ...]:
    """One :class:`SideRow` per maze side present in ``episodes``, by increasing side."""
    sides = sorted({e.maze_size for e in episodes})
    return tuple(SideRow(side, sum(e.maze_size == side for e in episodes),
                         sum(e.maze_size == side and e.outcome == "cheese" for e in episodes)) for side in sides)


def misleading_cells(trajectory: Sequence[grid.Cell], action_probs: np.ndarray, open_cells: np.ndarray,
                     cheese: grid.Cell) -> dict[grid.Cell, bool]:
    """Cells of a walk where the most probable move is not the oracle's, each mapped to "on the shortest path".

    Args:
        trajectory: the mouse's cells, start first (``Episode.trajectory``).
        action_probs: move probabilities ``(steps, 5)`` before each step's move
            (``Episode.action_probs``); row ``t`` belongs to ``trajectory[t]``.
        open_cells: bool ``(n, n)`` inner grid; ``cheese``: the cheese's cell.

    The path is the shortest one from the walk's first cell to the cheese. A
    cell met several times counts once.
    """
    oracle = grid.oracle_moves(open_cells, cheese)
    path = set(grid.shortest_path(open_cells, trajectory[0], cheese))
    cells: dict[grid.Cell, bool] = {}
    for cell, probs in zip(trajectory, action_probs):
        if cell != cheese and int(np.argmax(probs)) != int(move_from_delta(oracle[cell])):
            cells[cell] = cell in path
    return cells


def failure_report(policy: Policy | ScriptedPolicy, mazes: Sequence[int] | Sequence[MazeState], region: int, *, seed: int = 0,
                   replay_seeds: Sequence[int] = (1, 2), max_steps: int = 500,
                   threads: int | None = None) -> FailureReport:
    """Play ``mazes`` with the cheese in the top-right ``region``², then replay the lost ones.

    Args:
        policy: a pixel or scripted policy, as :func:`~mazeinterp.rollout.run_rollouts` takes.
        mazes: level seeds or start states.
        region: side of the top-right square the cheese is placed in.
        seed: action (and cheese-placement) seed of the main run.
        replay_seeds: action seeds of the replays of the lost mazes, which keep
            the cheese cells of the main run.
    """
    config = RolloutConfig(seed=seed, cheese_region=region, max_steps=max_steps, threads=threads, progress=False,
                           record_trajectories=True, record_action_probs=True)
    starts = list(mazes) if mazes and isinstance(mazes[0], MazeState) else load_mazes(list(mazes))
    result = run_rollouts(policy, starts, config=config)  # maze i keeps stream i, as when given its seed
    lost = [i for i, e in enumerate(result.episodes) if e.outcome != "cheese"]
    on_path = off_path = 0
    for i in lost:
        episode = result.episodes[i]
        cells = misleading_cells(episode.trajectory, episode.action_probs, starts[i].open_cells, episode.cheese)
        on_path += sum(cells.values())
        off_path += sum(not on for on in cells.values())
    replayed = [starts[i].with_cheese(result.episodes[i].cheese) for i in lost]
    replays = {}
    for replay_seed in replay_seeds:
        again = run_rollouts(policy, replayed, config=RolloutConfig(
            seed=replay_seed, max_steps=max_steps, threads=threads, progress=False)) if replayed else None
        replays[int(replay_seed)] = 0 if again is None else sum(e.outcome == "cheese" for e in again.episodes)
    return FailureReport(
        region=region, seed=seed, mazes=len(result.episodes),
        reached=sum(e.outcome == "cheese" for e in result.episodes), by_side=side_table(result.episodes),
        lost_seeds=tuple(result.episodes[i].level_seed for i in lost),
        trapped=sum(result.episodes[i].trap is not None for i in lost),
        misleading_on_path=on_path, misleading_off_path=off_path, replays=replays,
    )


def _share(successes: int, n: int) -> str:
    low, high = wilson_interval(successes, n)
    return f"{successes / n:.3f} [{low:.3f}, {high:.3f}]"


def format_report(report: FailureReport) -> str:
    """The report as the text :func:`main` prints."""
    lines = [f"cheese region {report.region}, action seed {report.seed}: P(cheese) "
             f"{_share(report.reached, report.mazes)} ({report.reached} of {report.mazes} mazes)",
             "", "  side  mazes  reached  P(cheese) [95% Wilson]"]
    lines += [f"  {row.side:>4}  {row.mazes:>5}  {row.reached:>7}  {_share(row.reached, row.mazes)}"
              for row in report.by_side]
    lost = len(report.lost_seeds)
    lines += ["", f"lost: {lost} ({report.trapped} trapped)"]
    if lost:
        lines.append(f"cells with a most probable move that is not the oracle's, met in lost episodes: "
                     f"{report.misleading_on_path + report.misleading_off_path} "
                     f"({report.misleading_off_path} off the shortest start-to-cheese path)")
        lines += [f"replayed with action seed {s} (same cheese cells): {n} of {lost} reach the cheese"
                  for s, n in report.replays.items()]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, measure, print, and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint path or shipped name")
    parser.add_argument("--region", type=int, required=True, help="cheese region of the training distribution")
    parser.add_argument("--n", type=int, default=500, help="mazes: level seeds 0…n-1 (default: 500)")
    parser.add_argument("--seed", type=int, default=0, help="action seed of the main run (default: 0)")
    parser.add_argument("--replays", type=int, default=2,
                        help="replays of the lost mazes, with action seeds seed+1… (default: 2)")
    parser.add_argument("--json", type=new_file, default=None, help="also write the numbers here (a new file)")
    args = parser.parse_args()

    started = time.time()
    report = failure_report(load_policy(args.checkpoint), range(args.n), args.region, seed=args.seed,
                            replay_seeds=range(args.seed + 1, args.seed + 1 + args.replays))
    print(format_report(report))
    print(f"\n{time.time() - started:.0f} s")
    if args.json is not None:
        write_new_json(args.json, {"checkpoint": str(args.checkpoint), **asdict(report)})


if __name__ == "__main__":
    main()
