"""What every subcommand shares: its options, the model, the mazes, the rollout settings and the output folder."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mazeinterp.runtime import arguments
from mazeinterp.runtime.defaults import DEFAULT_STEERING_HOOK, FORWARD_BATCH_SIZE, MAX_STEPS, ROLLOUT_BATCH_SIZE
from mazeinterp.maze.outcomes import DEFAULT_REGION_SIZE
from mazeinterp.core.numerics import numerics_record

if TYPE_CHECKING:
    from mazeinterp.maze.state import MazeState
    from mazeinterp.core.model import ImpalaPolicy
    from mazeinterp.runtime.outputs import OutputDir
    from mazeinterp.rollout import RolloutConfig

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
STEERING_HOOK = DEFAULT_STEERING_HOOK


class CliError(Exception):
    """A problem with the user's input, reported as one line."""


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``mazeinterp CMD: error: …``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------------------
# options


positive_int = arguments.positive_int
"""argparse type: an integer ≥ 1 (:func:`mazeinterp.runtime.arguments.int_at_least`)."""
non_negative_int = arguments.non_negative_int
"""argparse type: an integer ≥ 0."""


def add_output_options(parser: argparse.ArgumentParser, default_out: str | None) -> None:
    """--out and --overwrite; with ``default_out`` None the command writes files only when given --out."""
    parser.add_argument("--out", default=default_out, type=arguments.output_dir,
                        help=f"output directory (default: {default_out})" if default_out is not None
                        else "also write the results into this folder (default: print only)")
    parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier run in --out")


def add_common(parser: argparse.ArgumentParser, command: str, n_mazes: int | None, plots: bool = True,
               default_out: str | None = "") -> None:
    """--checkpoint, the mazes (when ``n_mazes`` is a default count), --seed, --device, the output options, --plots.

    ``default_out``: the default --out; "" means ``runs/COMMAND``, None no files unless --out is given.
    """
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file or shipped agent name (default: the shipped default agent)")
    if n_mazes is not None:
        parser.add_argument("--n-mazes", type=arguments.n_mazes, default=n_mazes,
                            help=f"number of mazes (default: {n_mazes})")
        parser.add_argument("--start-level", type=non_negative_int, default=0,
                            help="first level seed; mazes are start-level … start-level + n-mazes - 1 (default: 0)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed: action sampling, cheese placement, reference sets (default: 0)")
    parser.add_argument("--device", default="cpu", type=arguments.device, help="torch device (default: cpu)")
    add_output_options(parser, f"runs/{command}" if default_out == "" else default_out)
    if plots:
        parser.add_argument("--plots", action="store_true", help="also save PNG figures into --out")


def add_rollout_options(parser: argparse.ArgumentParser) -> None:
    """The settings of rollouts (step cap, batch, greedy, cheese placement, region, decision square)."""
    group = parser.add_argument_group("rollouts")
    group.add_argument("--max-steps", type=arguments.max_steps, default=MAX_STEPS,
                       help=f"step cap per episode (default: {MAX_STEPS})")
    group.add_argument("--batch-size", type=positive_int, default=ROLLOUT_BATCH_SIZE,
                       help=f"envs stepped together (default: {ROLLOUT_BATCH_SIZE})")
    group.add_argument("--greedy", action="store_true", help="take the most probable action instead of sampling")
    group.add_argument("--cheese-region", type=positive_int, default=None, metavar="K",
                       help="move each cheese to a random open cell of the top-right K×K corner first")
    group.add_argument("--region-size", type=positive_int, default=DEFAULT_REGION_SIZE, metavar="K",
                       help="record each episode's first arrival in the top-right K×K region "
                            f"(default: {DEFAULT_REGION_SIZE})")
    add_decision_square_option(group)


def add_decision_square_option(parser: Any) -> None:
    """--decision-square (a parser or an argument group)."""
    parser.add_argument("--decision-square", choices=("mazeinterp", "research"), default="mazeinterp",
                        help="decision-square definition that selects the mazes with a decision square: ours, or "
                             "the research code's (which also counts the cell after the corner when the top-right "
                             "cell lies on the cheese path) (default: mazeinterp)")


def add_compute_options(parser: argparse.ArgumentParser) -> None:
    """--threads and --no-progress, for the commands that run the network."""
    group = parser.add_argument_group("compute")
    group.add_argument("--threads", type=positive_int, default=None,
                       help="torch CPU threads (default: 1 for small batches such as a few mazes' rollouts, "
                            "else up to 4; one thread stays fast on a busy machine)")
    group.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress reports (default: a bar on a terminal, else a stderr line every 2 s)")
    add_numerics_option(group)


def add_numerics_option(parser: Any) -> None:
    """--reference-numerics (a parser or an argument group), for every command that runs the network."""
    parser.add_argument("--reference-numerics", action="store_true",
                        help="run the network with the contiguous layout of the published research code, bit "
                             "for bit, instead of the faster channels-last path (default: fast; also "
                             "MAZEINTERP_REFERENCE_NUMERICS=1); summary.json records which")


def add_layer_option(parser: argparse.ArgumentParser, default: str) -> None:
    """--layer, a hook point."""
    parser.add_argument("--layer", default=default,
                        help=f"hook point (default: {default}); `mazeinterp info` lists every hook point and its shape")


# --------------------------------------------------------------------------------------
# shared steps


def load_model(args: argparse.Namespace) -> ImpalaPolicy:
    """The policy of --checkpoint (default: the shipped default agent) on --device; sets --threads.

    --device was checked when the arguments were parsed (:func:`mazeinterp.runtime.arguments.device`).
    """
    import torch

    from mazeinterp.checkpoints import registry as checkpoint
    from mazeinterp.runtime.threads import default_threads

    name = args.checkpoint or checkpoint.DEFAULT_AGENT
    if name is None:
        raise CliError("no --checkpoint given and no shipped agent is registered yet; "
                       "pass --checkpoint PATH (a .pt file)")
    if hasattr(args, "threads"):  # the command's large batches; rollouts choose their own
        torch.set_num_threads(args.threads or default_threads(batch_size=FORWARD_BATCH_SIZE))
    return checkpoint.load_policy(name, device=str(args.device))


def checked_layer(model: ImpalaPolicy, layer: str, channels: Sequence[int] | None = None,
                  need_map: bool = False) -> tuple[tuple[int, ...], list[int] | None]:
    """(shape of hook point ``layer``, ``channels`` checked and without repeats, or None when not given).

    The library's check (:func:`mazeinterp.core.hook_points.check_layer`), its mistakes raised as :class:`CliError`.
    """
    from mazeinterp.core.hook_points import check_layer

    return check_layer(model, layer, channels, need_map=need_map, error=CliError)


def seeds(args: argparse.Namespace) -> list[int]:
    """The level seeds --start-level … --start-level + --n-mazes - 1."""
    last = args.start_level + args.n_mazes - 1
    if last >= arguments.LEVEL_SEED_LIMIT:
        raise CliError(f"level seeds must stay below 2**31 - 1; got up to {last}")
    return list(range(args.start_level, args.start_level + args.n_mazes))


def rollout_config(args: argparse.Namespace, trajectories: bool = False) -> RolloutConfig:
    """The rollout settings of the command; the cheese is placed by :func:`start_states`, not here."""
    from mazeinterp.rollout import RolloutConfig

    return RolloutConfig(greedy=args.greedy, max_steps=args.max_steps, seed=args.seed, batch_size=args.batch_size,
                         device=args.device, cheese_region=None, record_trajectories=trajectories,
                         region_size=args.region_size, decision_square=args.decision_square,
                         progress=args.progress, threads=args.threads)


def start_states(args: argparse.Namespace) -> list[MazeState]:
    """Start states of the command's mazes, with the cheese already placed when --cheese-region is given."""
    from mazeinterp.rollout import load_mazes, place_cheese

    states = load_mazes(seeds(args), batch_size=getattr(args, "batch_size", ROLLOUT_BATCH_SIZE))
    region = getattr(args, "cheese_region", None)
    return place_cheese(states, region, args.seed) if region else states


def claim(args: argparse.Namespace, names: Sequence[str]) -> tuple[OutputDir, dict[str, Path]]:
    """Claim every output name up front: nothing runs if one would overwrite an earlier file."""
    from mazeinterp.runtime.outputs import OutputDir

    out = OutputDir(args.out, overwrite=args.overwrite)
    paths = out.claim(*names)
    return out, dict(zip(names, paths))


def header(args: argparse.Namespace, model: ImpalaPolicy | None = None) -> dict[str, Any]:
    """The head of every summary.json: command, argv, arguments; with a model also the checkpoint's source,
    scale, size and the numerics of its forward passes (:func:`mazeinterp.core.numerics.numerics_record`)."""
    head: dict[str, Any] = {
        "command": args.command, "argv": list(getattr(args, "argv", [])),
        "arguments": {k: v for k, v in vars(args).items() if k not in ("func", "argv")},
    }
    if model is not None:
        from mazeinterp.core.model import count_parameters

        head["checkpoint"] = str(model.source) if model.source else None
        head["scale"] = model.scale
        head["parameters"] = count_parameters(model)
        head.update(numerics_record(next(model.parameters()).device))
    return head


def print_written(paths: Sequence[Path]) -> None:
    """The last line of every command: the files it wrote."""
    print("wrote " + ", ".join(str(p) for p in paths))
