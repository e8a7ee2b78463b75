"""The ``mazeinterp`` command line: thin subcommands over the library.

Each subcommand prints a readable result, writes its files into ``--out``
(refusing to overwrite earlier files unless ``--overwrite``), and turns bad
input into a one-line error and a non-zero exit status instead of a traceback.

Subcommands::

    mazeinterp info      checkpoint summary, hook points and their shapes
    mazeinterp rollout   P(cheese / top_right / neither) over many mazes
    mazeinterp vfield    vector fields (move probabilities at every cell), optionally edited
    mazeinterp ablate    baseline vs channels ablated at a layer, same mazes, paired difference
    mazeinterp steer     baseline vs a steering vector (cheese / top-right) with a coefficient
    mazeinterp channels  channel discovery tables (cheese tracking, directions, attribution, probe)
    mazeinterp stats     outcomes and a logistic regression of P(cheese) on maze features
    mazeinterp render    pictures of mazes with their paths and decision square
    mazeinterp scan      every channel of a layer ranked by its ablation effect on P(cheese), the top exact
    mazeinterp sweep     a grid of channel edits × mazes × seeds from a TOML file, in processes or on Ray
    mazeinterp fetch     download a published checkpoint by name into the user cache

Common options: ``--checkpoint`` (file or shipped name; default the shipped
default agent), ``--n-mazes``, ``--start-level`` (mazes are the level seeds
``start-level … start-level + n - 1``), ``--seed`` (action sampling, cheese
placement, reference sets), ``--device``, ``--out``, ``--overwrite``, ``--plots``;
``--reference-numerics`` on every command that runs the network (the contiguous
layout of the published code instead of the faster channels-last path).
Every run writes ``summary.json`` (settings and results) and a CSV of rows.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from mazeinterp.cli import data_cmd, probe_cmd, rollout_cmd, scan_cmd, train_cmd
from mazeinterp.cli.common import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, STEERING_HOOK, CliError, Parser

__all__ = ["EXAMPLES", "EXIT_BAD_INPUT", "EXIT_BROKEN_PIPE", "STEERING_HOOK", "CliError", "build_parser", "main"]

EXAMPLES: dict[str, str] = {
    "info": """
mazeinterp info                                   # the default agent: scale, parameters, hook points
mazeinterp info --checkpoint path/to/agent.pt     # any checkpoint, published format or ours
""",
    "rollout": """
mazeinterp rollout --n-mazes 200 --plots          # P(cheese / top_right / neither), 95% intervals
mazeinterp rollout --n-mazes 100 --cheese-region 5 --out runs/rollout-region5   # training distribution
mazeinterp rollout --n-mazes 5 --threads 1 --no-progress   # quiet, one CPU thread
""",
    "vfield": """
mazeinterp vfield --n-mazes 4 --plots             # move probabilities at every open cell
mazeinterp vfield --channels 3 7 --layer embedder.relu3_out --plots   # ... with two channels zeroed
mazeinterp vfield --vector cheese --coefficient -1 --plots           # ... with the cheese vector subtracted
""",
    "ablate": """
mazeinterp ablate --layer embedder.relu3_out --channels 3 7          # zero two channels, same mazes
mazeinterp ablate --channels 5 --ablation mean --reference-mazes 200 # mean-ablate one channel
""",
    "steer": """
mazeinterp steer --vector cheese --coefficient -1                    # each maze's own cheese vector
mazeinterp steer --vector top_right --coefficient 1 --mean           # one mean top-right vector
""",
    "channels": """
mazeinterp channels --n-mazes 200                                    # cheese-tracking channels
mazeinterp channels --method directional --move up --top 10          # channels that push 'up'
mazeinterp channels --method attribution --only 3 7 42               # P(cheese-ward move) when ablated
""",
    "sweep": """
mazeinterp sweep sweep.toml --out runs/sweep                         # local worker processes; rerun to resume
mazeinterp sweep sweep.toml --workers 0                              # in this process
mazeinterp sweep sweep.toml --ray-address auto                       # on a running Ray cluster
mazeinterp sweep sweep.toml --estimator exact                        # exact outcome probabilities, no sampling
""",
    "scan": """
mazeinterp scan --n-mazes 200 --top 16 --out runs/scan                # mean-ablate each channel of the steering layer
mazeinterp scan --hook embedder.relu3_out --kind zero --n-mazes 50 --workers 2
""",
    "fetch": """
mazeinterp fetch --list                                              # published names, URLs and hashes
mazeinterp fetch maze-rand-region-5                                  # download (resumes) and verify
mazeinterp fetch maze-rand-region-5 --url https://mirror.example/model_rand_region_5.pth   # from a mirror
mazeinterp fetch maze-rand-region-5 --from-file ~/Downloads/model_rand_region_5.pth      # from a copy
""",
    "stats": """
mazeinterp stats --n-mazes 500 --plots                               # outcomes and a regression on features
mazeinterp stats --features cheese_top_right_path cheese_top_right_euclidean
""",
    "render": """
mazeinterp render --seeds 0 1 2                                      # pictures, paths, decision square
""",
}
"""Example command lines shown at the end of each subcommand's ``--help``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    doc = __doc__ or ""
    epilog = doc[doc.index("Common options"):].replace("``", "").strip() if "Common options" in doc else None
    parser = Parser(prog="mazeinterp",
                    description="Interpretability of the procgen maze policy (IMPALA CNN) from the command line.",
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for add in (data_cmd.add_info, rollout_cmd.add_rollout, probe_cmd.add_vfield, probe_cmd.add_ablate,
                probe_cmd.add_steer, probe_cmd.add_channels, rollout_cmd.add_stats, data_cmd.add_render,
                data_cmd.add_sweep, scan_cmd.add_scan, data_cmd.add_fetch):
        add(sub)
    for name, text in EXAMPLES.items():
        sub.choices[name].epilog = "examples:\n" + "\n".join(f"  {line}" for line in text.strip().splitlines())
        sub.choices[name].formatter_class = argparse.RawDescriptionHelpFormatter
    train_cmd.add_train(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _numerics(args: argparse.Namespace) -> AbstractContextManager[None]:
    """The numerics the command asked for (``--reference-numerics``); CliError for a bad environment variable."""
    from mazeinterp.core.numerics import is_reference, reference_numerics

    try:
        is_reference()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return reference_numerics() if getattr(args, "reference_numerics", False) else nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mazeinterp`` console script; returns the exit status."""
    from mazeinterp.checkpoints.registry import CheckpointError
    from mazeinterp.core.finite import NonFiniteOutputError
    from mazeinterp.runtime.limits import ResourceLimitError
    from mazeinterp.train.common import RunSetupError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with _numerics(args):
            code = func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit-time flush
        return code
    except (CliError, CheckpointError, NonFiniteOutputError, ResourceLimitError, RunSetupError, FileExistsError,
            FileNotFoundError) as exc:
        # only the user's errors end here; anything else is ours and keeps its traceback
        print(f"mazeinterp {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"mazeinterp {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`mazeinterp info | head`): stop quietly, as other Unix tools do.
        # Pointing stdout at devnull keeps Python's exit-time flush from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
