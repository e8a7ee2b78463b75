"""The ``mazeinterp`` command line: thin subcommands over the library.

Each subcommand prints a readable result, writes its files into ``--out``
(refusing to overwrite earlier files unless ``--overwrite``), and turns bad
input into a one-line error and a non-zero exit status instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A problem with the user's input, reported as one line."""


def _add_output_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help=f"output directory (default: {default_out})")
    parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier run in --out")


def cmd_render(args: argparse.Namespace) -> int:
    """Render mazes as the agent sees them, with paths and decision square, to PNG files."""
    from mazeinterp.maze import grid
    from mazeinterp.maze.env import MazeEnv
    from mazeinterp.outputs import OutputDir
    from mazeinterp.plots import draw_maze, new_figure, save_figure

    out = OutputDir(args.out, overwrite=args.overwrite)
    names = [f"maze_seed{seed}.png" for seed in args.seeds]
    paths = out.claim(*names)
    with MazeEnv.from_seeds(args.seeds) as env:
        states = env.get_states()
        obs = env.observe()[1]
    for seed, state, frame, path in zip(args.seeds, states, obs, paths):
        square = grid.decision_square(state.open_cells, state.cheese) if state.cheese else None
        fig, axes = new_figure()
        draw_maze(axes[0, 0], state, frame, title=f"seed {seed}: {state.maze_size}×{state.maze_size}, "
                                                  f"decision square {square}")
        save_figure(fig, path)
        print(f"seed {seed}: maze {state.maze_size}×{state.maze_size}, cheese {state.cheese}, "
              f"decision square {square} -> {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="mazeinterp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = sub.add_parser("render", help="draw mazes with their paths and decision square")
    render.add_argument("--seeds", type=int, nargs="+", default=[0], help="level seeds (default: 0)")
    _add_output_options(render, "runs/render")
    render.set_defaults(func=cmd_render)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mazeinterp`` console script; returns the exit status."""
    from mazeinterp.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CliError, CheckpointError, ValueError, KeyError, IndexError, FileExistsError,
            FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else _one_line(exc)
        print(f"mazeinterp {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
