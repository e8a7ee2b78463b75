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
    mazeinterp sweep     a grid of channel edits × mazes × seeds from a TOML file, in processes or on Ray
    mazeinterp fetch     download a published checkpoint by name into the user cache

Common options: ``--checkpoint`` (file or shipped name; default the shipped
default agent), ``--n-mazes``, ``--start-level`` (mazes are the level seeds
``start-level … start-level + n - 1``), ``--seed`` (action sampling, cheese
placement, reference sets), ``--device``, ``--out``, ``--overwrite``, ``--plots``.
Every run writes ``summary.json`` (settings and results) and a CSV of rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mazeinterp import cli_args

if TYPE_CHECKING:
    from mazeinterp.maze.state import MazeState
    from mazeinterp.model import ImpalaPolicy
    from mazeinterp.outputs import OutputDir
    from mazeinterp.rollout import RolloutConfig

EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
STEERING_HOOK = "embedder.block2.res1.resadd_out"
MAX_MAZE_PLOTS = 8


class CliError(Exception):
    """A problem with the user's input, reported as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``mazeinterp CMD: error: …``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------------------
# argument helpers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _add_output_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, type=cli_args.output_dir,
                        help=f"output directory (default: {default_out})")
    parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier run in --out")


def _add_common(parser: argparse.ArgumentParser, command: str, n_mazes: int | None, plots: bool = True) -> None:
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file or shipped agent name (default: the shipped default agent)")
    if n_mazes is not None:
        parser.add_argument("--n-mazes", type=_positive_int, default=n_mazes,
                            help=f"number of mazes (default: {n_mazes})")
        parser.add_argument("--start-level", type=_non_negative_int, default=0,
                            help="first level seed; mazes are start-level … start-level + n-mazes - 1 (default: 0)")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="random seed: action sampling, cheese placement, reference sets (default: 0)")
    parser.add_argument("--device", default="cpu", type=cli_args.device, help="torch device (default: cpu)")
    _add_output_options(parser, f"runs/{command}")
    if plots:
        parser.add_argument("--plots", action="store_true", help="also save PNG figures into --out")


def _add_rollout_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("rollouts")
    group.add_argument("--max-steps", type=_positive_int, default=500, help="step cap per episode (default: 500)")
    group.add_argument("--batch-size", type=_positive_int, default=64, help="envs stepped together (default: 64)")
    group.add_argument("--greedy", action="store_true", help="take the most probable action instead of sampling")
    group.add_argument("--cheese-region", type=_positive_int, default=None, metavar="K",
                       help="move each cheese to a random open cell of the top-right K×K corner first")
    group.add_argument("--region-size", type=_positive_int, default=5, metavar="K",
                       help="record each episode's first arrival in the top-right K×K region (default: 5)")
    _add_decision_square_option(group)


def _add_decision_square_option(parser: Any) -> None:
    parser.add_argument("--decision-square", choices=("mazeinterp", "research"), default="mazeinterp",
                        help="decision-square definition that selects the mazes with a decision square: ours, or "
                             "the research code's (which also counts the cell after the corner when the top-right "
                             "cell lies on the cheese path) (default: mazeinterp)")


def _add_compute_options(parser: argparse.ArgumentParser) -> None:
    """--threads and --no-progress, for the commands that run the network."""
    group = parser.add_argument_group("compute")
    group.add_argument("--threads", type=_positive_int, default=None,
                       help="torch CPU threads (default: 1 for small batches such as a few mazes' rollouts, "
                            "else up to 4; one thread stays fast on a busy machine)")
    group.add_argument("--no-progress", dest="progress", action="store_false",
                       help="no progress reports (default: a bar on a terminal, else a stderr line every 2 s)")


def _set_threads(args: argparse.Namespace) -> None:
    """The process's torch thread count for the command's large batches (rollouts choose their own)."""
    import torch

    from mazeinterp.threads import default_threads

    torch.set_num_threads(args.threads or default_threads(batch_size=256))


def _add_layer_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--layer", default=default,
                        help=f"hook point (default: {default}); `mazeinterp info` lists every hook point and its shape")


# --------------------------------------------------------------------------------------
# shared steps


def _load_model(args: argparse.Namespace) -> ImpalaPolicy:
    import torch

    from mazeinterp import checkpoint

    name = args.checkpoint or checkpoint.DEFAULT_AGENT
    if name is None:
        raise CliError("no --checkpoint given and no shipped agent is registered yet; "
                       "pass --checkpoint PATH (a .pt file)")
    device = str(args.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError(f"device {device!r} is not available (torch.cuda.is_available() is False)")
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise CliError(f"bad --device {device!r}: {exc}") from None
    if hasattr(args, "threads"):
        _set_threads(args)
    return checkpoint.load_policy(name, device=device)


def _check_layer(model: ImpalaPolicy, layer: str, need_map: bool = False) -> tuple[int, ...]:
    points = model.hook_points()
    if layer not in points:
        try:
            model.module_for_hook(layer)
        except KeyError as exc:  # its message lists close names
            raise CliError(exc.args[0] if exc.args else f"{layer!r} is not a hook point") from None
        raise CliError(f"{layer!r} is not a hook point")
    shape = points[layer]
    if need_map and len(shape) != 3:
        raise CliError(f"layer {layer!r} has shape {shape}; this needs a (C, H, W) map layer")
    return shape


def _check_channels(layer: str, shape: tuple[int, ...], channels: Sequence[int]) -> list[int]:
    bad = [c for c in channels if not 0 <= c < shape[0]]
    if bad:
        raise CliError(f"channel {bad[0]} is out of range for layer {layer!r}, which has {shape[0]} "
                       f"channels (0..{shape[0] - 1})")
    return list(dict.fromkeys(channels))


def _seeds(args: argparse.Namespace) -> list[int]:
    last = args.start_level + args.n_mazes - 1
    if last >= 2**31 - 1:
        raise CliError(f"level seeds must stay below 2**31 - 1; got up to {last}")
    return list(range(args.start_level, args.start_level + args.n_mazes))


def _rollout_config(args: argparse.Namespace, trajectories: bool = False) -> RolloutConfig:
    """The rollout settings of the command; the cheese is placed by :func:`_start_states`, not here."""
    from mazeinterp.rollout import RolloutConfig

    return RolloutConfig(greedy=args.greedy, max_steps=args.max_steps, seed=args.seed, batch_size=args.batch_size,
                         device=args.device, cheese_region=None, record_trajectories=trajectories,
                         region_size=args.region_size, decision_square=args.decision_square,
                         progress=args.progress, threads=args.threads)


def _start_states(args: argparse.Namespace) -> list[MazeState]:
    """Start states of the command's mazes, with the cheese already placed when --cheese-region is given."""
    from mazeinterp.rollout import load_mazes, place_cheese

    states = load_mazes(_seeds(args), batch_size=getattr(args, "batch_size", 64))
    region = getattr(args, "cheese_region", None)
    return place_cheese(states, region, args.seed) if region else states


def _claim(args: argparse.Namespace, names: Sequence[str]) -> tuple[OutputDir, dict[str, Path]]:
    """Claim every output name up front: nothing runs if one would overwrite an earlier file."""
    from mazeinterp.outputs import OutputDir

    out = OutputDir(args.out, overwrite=args.overwrite)
    paths = out.claim(*names)
    return out, dict(zip(names, paths))


def _header(args: argparse.Namespace, model: ImpalaPolicy | None = None) -> dict[str, Any]:
    head: dict[str, Any] = {
        "command": args.command, "argv": list(getattr(args, "argv", [])),
        "arguments": {k: v for k, v in vars(args).items() if k not in ("func", "argv")},
    }
    if model is not None:
        from mazeinterp.model import count_parameters

        head["checkpoint"] = str(model.source) if model.source else None
        head["scale"] = model.scale
        head["parameters"] = count_parameters(model)
    return head


def _print_written(paths: Sequence[Path]) -> None:
    print("wrote " + ", ".join(str(p) for p in paths))


_SHORT_LABELS = {"all mazes": "all mazes", "with decision square": "decision square",
                 "cheese outside top-right 5×5": "cheese outside\ntop-right 5×5",
                 "with decision square, cheese outside top-right 5×5": "decision square,\ncheese outside 5×5"}


def _standard_conditions(result: Any) -> dict[str, Any]:
    return {_SHORT_LABELS.get(s.label, s.label): s for s in result.summaries()}


def _outcome_figure(conditions: dict[str, Any], path: Path, title: str) -> Path:
    from mazeinterp.plots import draw_outcome_bars, new_figure, save_figure

    fig, axes = new_figure(size=max(4.0, 1.6 * len(conditions) + 1))
    draw_outcome_bars(axes[0, 0], conditions, title=title)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------
# info


def cmd_info(args: argparse.Namespace) -> int:
    """Checkpoint summary, hook points and shapes."""
    from mazeinterp.model import count_parameters

    model = _load_model(args)
    out, _ = _claim(args, ["summary.json", "hook_points.csv"])
    points = model.hook_points()
    print(f"checkpoint   {model.source}")
    print(f"scale        {model.scale}  (block widths {16 * model.scale}/{32 * model.scale}/{32 * model.scale})")
    print(f"parameters   {count_parameters(model):,}")
    for key, value in sorted(model.metadata.items()):
        text = json.dumps(value, default=str)
        print(f"metadata     {key} = {text if len(text) < 100 else text[:97] + '...'}")
    print(f"hook points  {len(points)}")
    width = max(len(name) for name in points)
    for name, shape in points.items():
        print(f"  {name:<{width}}  {' × '.join(map(str, shape))}")
    rows = [{"hook_point": name, "shape": "x".join(map(str, shape)), "channels": shape[0],
             "resolution": shape[1] if len(shape) == 3 else None} for name, shape in points.items()]
    summary = {**_header(args, model), "metadata": model.metadata,
               "hook_points": {name: list(shape) for name, shape in points.items()}}
    _print_written([out.write_json("summary.json", summary), out.write_csv("hook_points.csv", rows)])
    return 0


# --------------------------------------------------------------------------------------
# rollout


def _trajectory_figure(result: Any, states: Sequence[MazeState], path: Path) -> Path:
    from mazeinterp.hooks import render_states
    from mazeinterp.plots import draw_maze, new_figure, save_figure

    shown = list(zip(result.episodes, states))[:MAX_MAZE_PLOTS]
    obs = render_states([s for _, s in shown])
    cols = min(4, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = new_figure(ncols=cols, nrows=rows, size=3.2)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, (ep, state), frame in zip(axes.flat, shown, obs):
        draw_maze(ax, state, frame, trajectory=ep.trajectory,
                  title=f"level {ep.level_seed}: {ep.outcome} in {ep.steps} steps")
    return save_figure(fig, path)


def _rollout_settings(args: argparse.Namespace, model: ImpalaPolicy) -> dict[str, Any]:
    """The arguments that decide a rollout's episodes (a resumed run must repeat them)."""
    names = ("n_mazes", "start_level", "seed", "max_steps", "greedy", "cheese_region", "region_size",
             "decision_square", "plots", "animate", "device")
    return {"checkpoint": str(model.source), **{name: getattr(args, name) for name in names}}


def cmd_rollout(args: argparse.Namespace) -> int:
    """Run the policy on many mazes; P(cheese), P(top_right), P(neither) with Wilson intervals.

    Interrupted (Ctrl-C or SIGTERM), it writes the finished episodes marked
    partial; ``--resume`` on the same ``--out`` runs the rest.
    """
    from mazeinterp.rollout import resume as rollout_resume
    from mazeinterp.rollout import RolloutInterrupted, run_rollouts

    if args.animate is not None and args.animate > args.n_mazes:
        raise CliError(f"--animate {args.animate} asks for more episodes than --n-mazes {args.n_mazes}")
    model = _load_model(args)
    names = ["summary.json", "episodes.csv"] + (["outcomes.png", "trajectories.png"] if args.plots else [])
    names += ["rollout.gif"] if args.animate else []
    settings = _rollout_settings(args, model)
    if args.resume:  # the partial run's own files are replaced
        args.overwrite = True
    out, paths = _claim(args, [*names, rollout_resume.RESUME_FILE] if not args.resume else names)
    states = _start_states(args)
    finished, seconds_before = [], 0.0
    if args.resume:
        try:
            finished, seconds_before = rollout_resume.load_partial(out.path, settings, states)
        except rollout_resume.ResumeError as exc:
            raise CliError(str(exc)) from None
    config = _rollout_config(args, trajectories=args.plots or bool(args.animate))
    if args.animate:
        config = replace(config, record_action_probs=True)
    try:
        with rollout_resume.sigterm_as_interrupt():
            result = run_rollouts(model, states, config=config,
                                  indices=rollout_resume.remaining(len(states), finished))
    except RolloutInterrupted as stop:
        partial = rollout_resume.merge(finished, stop.result, seconds_before)
        _print_written([
            out.write_json("summary.json", {**_header(args, model), **partial.as_dict(), "partial": True,
                                            "mazes_requested": len(states)}),
            out.write_csv("episodes.csv", partial.to_rows()),
            rollout_resume.save_partial(out.path, partial, settings, len(states)),
        ])
        print(f"partial: {len(partial)} of {len(states)} mazes finished; run the same command with --resume "
              "to finish", file=sys.stderr)
        raise
    result = rollout_resume.merge(finished, result, seconds_before)
    print(result)
    print(f"{result.frames_per_second:.1f} frames/s")
    written = [out.write_json("summary.json", {**_header(args, model), **result.as_dict(), "partial": False}),
               out.write_csv("episodes.csv", result.to_rows())]
    rollout_resume.finish(out.path)
    if args.plots:
        written.append(_outcome_figure(_standard_conditions(result), paths["outcomes.png"], "outcomes"))
        written.append(_trajectory_figure(result, states, paths["trajectories.png"]))
    if args.animate:
        from mazeinterp.animation import animate_rollouts

        written.append(animate_rollouts(result.episodes[: args.animate], states[: args.animate],
                                        paths["rollout.gif"]))
    _print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# interventions from arguments


def _add_ablation_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--channels", type=int, nargs="+", required=required, default=None,
                        help="channels to ablate at --layer")
    parser.add_argument("--ablation", choices=("zero", "mean", "resample"), default="zero",
                        help="zero, mean (over --reference-mazes random mazes) or resample (default: zero)")
    parser.add_argument("--reference-mazes", type=_positive_int, default=100,
                        help="random mazes for mean/resample ablation (default: 100)")


def _ablation(model: ImpalaPolicy, args: argparse.Namespace) -> Any:
    from mazeinterp.interventions import MeanAblate, ResampleAblate, ZeroAblate, validate

    shape = _check_layer(model, args.layer)
    channels = _check_channels(args.layer, shape, args.channels)
    if args.ablation == "zero":
        iv = ZeroAblate(args.layer, channels=channels)
    elif args.ablation == "mean":
        iv = MeanAblate.from_random_mazes(model, args.layer, args.reference_mazes, seed=args.seed, channels=channels)
    else:
        iv = ResampleAblate.from_random_mazes(model, args.layer, args.reference_mazes, seed=args.seed,
                                              channels=channels)
    validate(model, iv)
    return iv


def _steering_vectors(model: ImpalaPolicy, states: Sequence[MazeState], args: argparse.Namespace) -> Any:
    """Per-maze vectors (N, C, H, W), or one vector (C, H, W) with --mean."""
    import torch
    from mazeinterp.progress import progress_bar
    from mazeinterp.steering import cheese_vector, mean_cheese_vector, top_right_vector

    if args.vector == "cheese" and args.mean:
        return mean_cheese_vector(model, states, args.layer)
    make = cheese_vector if args.vector == "cheese" else top_right_vector
    vectors = [make(model, s, args.layer)
               for s in progress_bar(states, desc=f"{args.vector} vectors", enabled=args.progress)]
    stacked = torch.stack(vectors)
    return stacked.mean(0) if args.mean else stacked


def _steering(model: ImpalaPolicy, states: Sequence[MazeState], args: argparse.Namespace) -> tuple[Any, Any]:
    """(intervention for a rollout over ``states``, function maze index → intervention for that maze)."""
    from mazeinterp.interventions import AddVector
    from mazeinterp.rollout import EpisodeVectors

    _check_layer(model, args.layer, need_map=True)
    vectors = _steering_vectors(model, states, args)
    if vectors.ndim == 3:
        single = AddVector(args.layer, vectors, args.coefficient)
        return single, lambda i: single
    return EpisodeVectors(args.layer, vectors, args.coefficient), lambda i: AddVector(args.layer, vectors[i],
                                                                                       args.coefficient)


# --------------------------------------------------------------------------------------
# vfield


def _vfield_figure(state: MazeState, base: Any, treated: Any | None, path: Path, label: str) -> Path:
    from mazeinterp.hooks import render_states
    from mazeinterp.plots import draw_field_difference, draw_vector_field, new_figure, save_figure
    from mazeinterp.vfield import field_difference

    obs = render_states([state])[0]
    fig, axes = new_figure(ncols=1 if treated is None else 3, size=4.5)
    draw_vector_field(axes[0, 0], base, obs, paths=True, title=f"level {state.level_seed}: policy")
    if treated is not None:
        draw_vector_field(axes[0, 1], treated, obs, color="orange", paths=True, title=label)
        draw_field_difference(axes[0, 2], field_difference(base, treated), obs, title="difference")
    return save_figure(fig, path)


def cmd_vfield(args: argparse.Namespace) -> int:
    """Vector fields of mazes, optionally with an ablation or a steering vector, and their difference."""
    import numpy as np

    from mazeinterp.model import MOVES
    from mazeinterp.vfield import cheese_ward_move, decision_square_cheese_prob, vector_field, vector_fields

    if args.channels and args.vector:
        raise CliError("give either --channels (ablation) or --vector (steering), not both")
    model = _load_model(args)
    if args.channels:
        _ablation_args_check(model, args)
    if args.vector:
        _check_layer(model, args.layer, need_map=True)
    seeds = _seeds(args)
    plotted = seeds[:MAX_MAZE_PLOTS] if args.plots else []
    out, paths = _claim(args, ["summary.json", "cells.csv"] + [f"vfield_level{s}.png" for s in plotted])
    states = _start_states(args)
    per_maze: Callable[[int], Any] | None = None
    label = ""
    base_fields = vector_fields(model, states, progress=args.progress)
    definition = args.decision_square
    p_base = decision_square_cheese_prob(model, states, definition=definition)
    treated_fields, p_treated = None, None
    if args.channels:  # one intervention for every maze: batched
        iv = _ablation(model, args)
        per_maze, label = (lambda i: iv), repr(iv)
        treated_fields = vector_fields(model, states, [iv], progress=args.progress)
        p_treated = decision_square_cheese_prob(model, states, [iv], definition=definition)
    elif args.vector:  # each maze its own vector
        _, per_maze = _steering(model, states, args)
        label = f"{args.vector} vector × {args.coefficient:g} at {args.layer}" + (" (mean)" if args.mean else "")
        treated_fields = [vector_field(model, s, [per_maze(i)]) for i, s in enumerate(states)]
        p_treated = np.array([decision_square_cheese_prob(model, [s], [per_maze(i)], definition=definition)[0]
                              for i, s in enumerate(states)])

    rows, mazes = [], []
    print(f"{'level':>8} {'size':>5} {'cells':>6} {'cheese-ward move':>17} {'P at decision square':>21}"
          + (f" {'edited':>8} {'change':>8}" if per_maze else ""))
    for i, (state, field) in enumerate(zip(states, base_fields)):
        move = cheese_ward_move(state, definition)
        line = (f"{state.level_seed:>8} {state.maze_size:>5} {len(field):>6} "
                f"{MOVES[move] if move is not None else '-':>17} {_num(p_base[i]):>21}")
        maze = {"level_seed": state.level_seed, "maze_size": state.maze_size, "cells": len(field),
                "cheese_ward_move": MOVES[move] if move is not None else None,
                "p_cheese_ward_at_decision_square": p_base[i]}
        if p_treated is not None:
            line += f" {_num(p_treated[i]):>8} {_num(p_treated[i] - p_base[i], '+.3f'):>8}"
            maze["p_cheese_ward_edited"] = p_treated[i]
        print(line)
        mazes.append(maze)
        for j, cell in enumerate(field.cells):
            row: dict[str, Any] = {"level_seed": state.level_seed, "row": cell[0], "col": cell[1]}
            row.update({f"p_{m}": field.probs[j, k] for k, m in enumerate(MOVES)})
            if treated_fields is not None:
                row.update({f"edited_p_{m}": treated_fields[i].probs[j, k] for k, m in enumerate(MOVES)})
            rows.append(row)
    valid = ~np.isnan(p_base)
    summary: dict[str, Any] = {**_header(args, model), "edit": label or None, "mazes": mazes,
                               "mean_p_cheese_ward": float(np.mean(p_base[valid])) if valid.any() else None,
                               "n_with_decision_square": int(valid.sum()), "decision_square_definition": definition}
    if p_treated is not None and valid.any():
        summary["mean_p_cheese_ward_edited"] = float(np.nanmean(p_treated[valid]))
        summary["mean_change"] = float(np.nanmean(p_treated[valid] - p_base[valid]))
        print(f"mean change of P(cheese-ward move at the decision square): {summary['mean_change']:+.3f} "
              f"over {int(valid.sum())} mazes ({label})")
    written = [out.write_json("summary.json", summary), out.write_csv("cells.csv", rows)]
    for i, seed in enumerate(plotted):
        written.append(_vfield_figure(states[i], base_fields[i], treated_fields[i] if treated_fields else None,
                                      paths[f"vfield_level{seed}.png"], label))
    _print_written(written)
    return 0


def _num(value: float, fmt: str = ".3f") -> str:
    """A number for a table; '-' for NaN (no decision square)."""
    return "-" if value != value else format(value, fmt)


def _ablation_args_check(model: ImpalaPolicy, args: argparse.Namespace) -> None:
    shape = _check_layer(model, args.layer)
    _check_channels(args.layer, shape, args.channels)


# --------------------------------------------------------------------------------------
# ablate / steer


def _run_comparison(args: argparse.Namespace, model: ImpalaPolicy, states: Sequence[MazeState], treatment: Any,
                    out: OutputDir, paths: dict[str, Path], label: str) -> list[Path]:
    from mazeinterp.rollout import Comparison, run_rollouts

    config = _rollout_config(args)
    print("baseline …", file=sys.stderr)
    baseline = run_rollouts(model, states, config=config)
    print(f"{label} …", file=sys.stderr)
    treated = run_rollouts(model, states, [treatment], config=config)
    comparison = Comparison(baseline, treated)
    print(comparison)
    d = comparison.difference()
    print(f"P(cheese) {label}: {d}")
    written = [out.write_json("summary.json", {**_header(args, model), "edit": label, **comparison.as_dict()}),
               out.write_csv("episodes.csv", comparison.rows())]
    if args.plots:
        conditions = {}
        for ds in (False, True):
            tag = "decision sq." if ds else "all"
            conditions[f"baseline\n{tag}"] = baseline.summary(decision_square_only=ds)
            conditions[f"edited\n{tag}"] = treated.summary(decision_square_only=ds)
        written.append(_outcome_figure(conditions, paths["outcomes.png"], label))
    return written


def cmd_ablate(args: argparse.Namespace) -> int:
    """Baseline vs channels ablated at a layer, on the same mazes, with the paired difference."""
    model = _load_model(args)
    _ablation_args_check(model, args)
    out, paths = _claim(args, ["summary.json", "episodes.csv"] + (["outcomes.png"] if args.plots else []))
    iv = _ablation(model, args)
    states = _start_states(args)
    _print_written(_run_comparison(args, model, states, iv, out, paths, repr(iv)))
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    """Baseline vs a steering vector added with a coefficient, on the same mazes."""
    model = _load_model(args)
    _check_layer(model, args.layer, need_map=True)
    names = ["summary.json", "episodes.csv"] + (["outcomes.png", "vfield_first_maze.png"] if args.plots else [])
    out, paths = _claim(args, names)
    states = _start_states(args)
    treatment, per_maze = _steering(model, states, args)
    kind = "mean " if args.mean else "per-maze "
    label = f"{kind}{args.vector} vector × {args.coefficient:g} at {args.layer}"
    written = _run_comparison(args, model, states, treatment, out, paths, label)
    if args.plots:
        from mazeinterp.vfield import vector_field

        base = vector_field(model, states[0])
        steered = vector_field(model, states[0], [per_maze(0)])
        written.append(_vfield_figure(states[0], base, steered, paths["vfield_first_maze.png"], label))
    _print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# channels


_CHANNEL_METHODS = ("cheese", "directional", "attribution", "probe")


def cmd_channels(args: argparse.Namespace) -> int:
    """Channel discovery tables: cheese tracking, move directions, behaviour attribution, linear probe."""
    from mazeinterp import channels as ch

    model = _load_model(args)
    layer = args.layer or ("embedder.relu3_out" if args.method == "directional" else STEERING_HOOK)
    shape = _check_layer(model, layer, need_map=args.method != "directional")
    chosen = _check_channels(layer, shape, args.only) if args.only else None
    names = ["summary.json", "channels.csv"] + (["channels_first_maze.png", "top_channel.png"] if args.plots else [])
    out, paths = _claim(args, names)
    states = _start_states(args)
    started = time.perf_counter()
    if args.method == "cheese":
        table = ch.cheese_tracking_channels(model, states, layer)
    elif args.method == "directional":
        table = ch.directional_channels(model, states, layer, move=args.move, progress=args.progress)
    elif args.method == "attribution":
        table = ch.behaviour_attribution(model, states, layer, chosen, ablation=args.ablation, progress=args.progress)
    else:
        table = ch.cheese_probe(model, states, layer, seed=args.seed)
    seconds = time.perf_counter() - started
    print(table.top(args.top))
    print(f"{len(states)} mazes in {seconds:.1f} s")
    summary = {**_header(args, model), "method": table.method, "layer": table.hook,
               "description": table.description, "table_summary": dict(table.summary), "seconds": seconds,
               "top": table.top(args.top).to_rows()}
    written = [out.write_json("summary.json", summary), out.write_csv("channels.csv", table.to_rows())]
    if args.plots and len(shape) == 3:
        from mazeinterp.hooks import render_states, run_states_with_cache
        from mazeinterp.plots import draw_channel_heatmap, new_figure, plot_channel_grid, save_figure

        _, cache = run_states_with_cache(model, states[:1], [layer], stop_early=True)
        acts = cache[layer][0]
        written.append(save_figure(plot_channel_grid(acts, title=f"{layer}, level {states[0].level_seed}",
                                                     state=states[0]),
                                   paths["channels_first_maze.png"]))
        best = int(table.channel[0])
        fig, axes = new_figure(size=5)
        draw_channel_heatmap(axes[0, 0], states[0], acts[best], render_states(states[:1])[0],
                             title=f"top channel {best} ({table.method}), level {states[0].level_seed}")
        written.append(save_figure(fig, paths["top_channel.png"]))
    _print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# stats


def cmd_stats(args: argparse.Namespace) -> int:
    """Rollouts, then a logistic regression of 'reached the cheese' on maze features."""
    from mazeinterp.rollout import run_rollouts
    from mazeinterp.stats import DEFAULT_FEATURES, feature_table, fit_cheese_regression

    features = args.features or list(DEFAULT_FEATURES)
    from mazeinterp.maze.grid import MazeFeatures

    known = [f for f in MazeFeatures.__dataclass_fields__ if f not in ("n", "cheese", "decision_square",
                                                                        "has_decision_square")]
    unknown = [f for f in features if f not in known]
    if unknown:
        raise CliError(f"unknown feature {unknown[0]!r}; choose from {', '.join(known)}")
    if not 0 < args.test_fraction < 1:
        raise CliError(f"--test-fraction must lie strictly between 0 and 1, got {args.test_fraction}")
    model = _load_model(args)
    names = ["summary.json", "episodes.csv", "coefficients.csv"]
    names += ["outcomes.png", "coefficients.png"] if args.plots else []
    out, paths = _claim(args, names)
    states = _start_states(args)
    result = run_rollouts(model, states, config=_rollout_config(args))
    print(result.summary())
    print(result.summary(decision_square_only=True))
    summary: dict[str, Any] = {**_header(args, model), **result.as_dict()}
    try:
        regression = fit_cheese_regression(result.episodes, features, test_fraction=args.test_fraction,
                                           C=args.C, seed=args.seed)
    except ValueError as exc:
        regression = None
        summary["regression_error"] = str(exc)
        print(f"no regression: {exc}")
    if regression is not None:
        print(regression)
        summary["regression"] = regression.as_dict()
        if regression.few_held_out_warning:
            print(f"mazeinterp stats: warning: {regression.few_held_out_warning}", file=sys.stderr)
    written = [out.write_json("summary.json", summary), out.write_csv("episodes.csv", feature_table(result.episodes)),
               out.write_csv("coefficients.csv", regression.coefficient_rows() if regression else [])]
    if args.plots:
        from mazeinterp.plots import new_figure, save_figure

        written.append(_outcome_figure(_standard_conditions(result), paths["outcomes.png"], "outcomes"))
        fig, axes = new_figure(size=5)
        ax = axes[0, 0]
        if regression is not None:
            rows = regression.coefficient_rows()[::-1]
            ax.barh([r["feature"] for r in rows], [r["coefficient"] for r in rows], color="slateblue")
            ax.axvline(0, color="black", lw=0.8)
            ax.set_xlabel("coefficient (log-odds of cheese per SD)")
            ax.set_title(f"held-out accuracy {regression.accuracy:.2f} vs baseline "
                         f"{regression.baseline_accuracy:.2f}", fontsize=9)
        else:
            ax.text(0.5, 0.5, "no regression:\n" + summary["regression_error"], ha="center", va="center",
                    wrap=True, fontsize=8)
            ax.set_axis_off()
        written.append(save_figure(fig, paths["coefficients.png"]))
    _print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# render


def cmd_render(args: argparse.Namespace) -> int:
    """Render mazes as the agent sees them, with paths and decision square, to PNG files."""
    from mazeinterp.maze import grid
    from mazeinterp.maze.env import MazeEnv
    from mazeinterp.plots import draw_maze, new_figure, save_figure

    pictures = [f"maze_seed{seed}.png" for seed in args.seeds]
    out, paths = _claim(args, ["summary.json", "mazes.csv", *pictures])
    with MazeEnv.from_seeds(args.seeds) as env:
        states = env.get_states()
        obs = env.observe()[1]
    rows, written = [], []
    for seed, state, frame, name in zip(args.seeds, states, obs, pictures):
        square = grid.decision_square(state.open_cells, state.cheese) if state.cheese else None
        fig, axes = new_figure()
        draw_maze(axes[0, 0], state, frame, title=f"seed {seed}: {state.maze_size}×{state.maze_size}, "
                                                  f"decision square {square}")
        written.append(save_figure(fig, paths[name]))
        print(f"seed {seed}: maze {state.maze_size}×{state.maze_size}, cheese {state.cheese}, "
              f"decision square {square} -> {paths[name]}")
        rows.append({"level_seed": seed, "maze_size": state.maze_size, "mouse": state.mouse,
                     "cheese": state.cheese, "decision_square": square, "picture": name})
    summary = {**_header(args), "mazes": [{k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}
                                          for row in rows]}
    _print_written([out.write_json("summary.json", summary), out.write_csv("mazes.csv", rows), *written])
    return 0


# --------------------------------------------------------------------------------------
# sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep from a TOML config; print the conditions with the largest effect."""
    from mazeinterp.sweep import SweepConfigError, load_sweep_config, run_sweep

    try:  # a bad config, hook point, channel or output folder is the user's error
        config = load_sweep_config(args.config)
        result = run_sweep(config, args.out, workers=args.workers, ray_address=args.ray_address)
    except SweepConfigError as exc:
        raise CliError(str(exc)) from None
    skipped = config.n_shards - len(result.ran)
    print(f"{len(result.rows)} conditions × {config.n_mazes} mazes × {len(config.seeds)} seed(s): "
          f"{len(result.ran)} shard(s) run, {skipped} found finished, {result.episodes} episodes "
          f"in {result.seconds:.1f} s")
    print(f"{'hook':<34} {'channel':>7} {'kind':>8} {'coef':>6} {'P(cheese)':>9} {'base':>6} "
          f"{'effect':>7}  95% CI")
    for row in result.top(args.top):
        print(f"{row['hook']:<34} {row['channel']:>7} {row['kind']:>8} {row['coefficient']:>6g} "
              f"{row['p_cheese']:>9.3f} {row['p_cheese_baseline']:>6.3f} {row['effect']:>+7.3f}  "
              f"[{row['effect_low']:+.3f}, {row['effect_high']:+.3f}]")
    _print_written(list(result.paths.values()))
    return 0


# --------------------------------------------------------------------------------------
# fetch


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download a published checkpoint by name (or list the names); print its path and sha256."""
    from mazeinterp.fetch import cache_dir, fetch, recorded_hashes
    from mazeinterp.published import PUBLISHED

    if args.list or not args.name:
        recorded = recorded_hashes()
        for name, entry in sorted(PUBLISHED.items()):
            sha = entry.sha256 or recorded.get(name, {}).get("sha256")
            origin = "table" if entry.sha256 else "recorded" if sha else "not known yet"
            print(f"{name}\n  {entry.description}\n  url     {entry.url}\n  source  {entry.source}\n"
                  f"  sha256  {sha or '-'} ({origin})")
        print(f"cache: {cache_dir()}")
        return 0
    path = fetch(args.name, sha256=args.sha256)
    import pooch

    print(f"{args.name}: {path}\nsha256 {pooch.file_hash(str(path))}")
    print(f"load it with mazeinterp.load_policy('published:{args.name}') or --checkpoint published:{args.name}")
    return 0


# --------------------------------------------------------------------------------------
# the parser


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
""",
    "fetch": """
mazeinterp fetch --list                                              # published names, URLs and hashes
mazeinterp fetch maze-rand-region-5                                  # download (resumes) and verify
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
    parser = _Parser(prog="mazeinterp",
                     description="Interpretability of the procgen maze policy (IMPALA CNN) from the command line.",
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    info = sub.add_parser("info", help="checkpoint summary, hook points and shapes")
    _add_common(info, "info", None, plots=False)
    info.set_defaults(func=cmd_info)

    rollout = sub.add_parser("rollout", help="P(cheese / top_right / neither) over many mazes")
    _add_common(rollout, "rollout", 100)
    _add_rollout_options(rollout)
    rollout.add_argument("--animate", type=_positive_int, default=None, metavar="N",
                         help="also write rollout.gif: the first N episodes step by step, with the move probabilities")
    rollout.add_argument("--resume", action="store_true",
                         help="finish an interrupted run in --out (same arguments): only its unfinished mazes run")
    _add_compute_options(rollout)
    rollout.set_defaults(func=cmd_rollout)

    vfield = sub.add_parser("vfield", help="vector fields of mazes, optionally ablated or steered")
    _add_common(vfield, "vfield", 1)
    _add_layer_option(vfield, STEERING_HOOK)
    _add_ablation_options(vfield, required=False)
    vfield.add_argument("--vector", choices=("cheese", "top_right"), default=None,
                        help="steer with this vector (per maze; --mean for the mean over the mazes)")
    vfield.add_argument("--coefficient", type=cli_args.finite_float, default=-1.0,
                        help="steering coefficient (default: -1)")
    vfield.add_argument("--mean", action="store_true", help="use the mean vector over the mazes")
    _add_decision_square_option(vfield)
    _add_compute_options(vfield)
    vfield.set_defaults(func=cmd_vfield)

    ablate = sub.add_parser("ablate", help="baseline vs channels ablated at a layer (same mazes)")
    _add_common(ablate, "ablate", 100)
    _add_layer_option(ablate, STEERING_HOOK)
    _add_ablation_options(ablate, required=True)
    _add_rollout_options(ablate)
    _add_compute_options(ablate)
    ablate.set_defaults(func=cmd_ablate)

    steer = sub.add_parser("steer", help="baseline vs a steering vector with a coefficient (same mazes)")
    _add_common(steer, "steer", 100)
    _add_layer_option(steer, STEERING_HOOK)
    steer.add_argument("--vector", choices=("cheese", "top_right"), default="cheese",
                       help="cheese vector (cheese minus no cheese) or top-right vector (default: cheese)")
    steer.add_argument("--coefficient", type=cli_args.finite_float, default=-1.0, help="coefficient (default: -1)")
    steer.add_argument("--mean", action="store_true",
                       help="one vector, the mean over the mazes, instead of each maze's own")
    _add_rollout_options(steer)
    _add_compute_options(steer)
    steer.set_defaults(func=cmd_steer)

    channels = sub.add_parser("channels", help="channel discovery tables")
    _add_common(channels, "channels", 100)
    channels.add_argument("--method", choices=_CHANNEL_METHODS, default="cheese",
                          help="cheese tracking, move directions, behaviour attribution or probe (default: cheese)")
    channels.add_argument("--layer", default=None,
                          help=f"hook point (default: {STEERING_HOOK}; embedder.relu3_out for directional); "
                               "`mazeinterp info` lists every hook point and its shape")
    channels.add_argument("--move", choices=("left", "down", "up", "right"), default=None,
                          help="directional: rank by the push toward this move")
    channels.add_argument("--only", type=int, nargs="+", default=None, metavar="CHANNEL",
                          help="attribution: only these channels")
    channels.add_argument("--ablation", choices=("zero", "mean"), default="zero", help="attribution: ablation")
    channels.add_argument("--top", type=_positive_int, default=20, help="rows to print (default: 20)")
    _add_compute_options(channels)
    channels.set_defaults(func=cmd_channels)

    stats = sub.add_parser("stats", help="outcomes and a logistic regression on maze features")
    _add_common(stats, "stats", 200)
    _add_rollout_options(stats)
    stats.add_argument("--features", nargs="+", default=None, help="maze features (default: the 8 distances)")
    stats.add_argument("--test-fraction", type=cli_args.open_unit_interval, default=0.25,
                       help="held-out fraction (default: 0.25)")
    stats.add_argument("--C", type=cli_args.positive_float, default=1.0, help="inverse L2 strength (default: 1)")
    _add_compute_options(stats)
    stats.set_defaults(func=cmd_stats)

    render = sub.add_parser("render", help="draw mazes with their paths and decision square")
    render.add_argument("--seeds", type=int, nargs="+", default=[0], help="level seeds (default: 0)")
    _add_output_options(render, "runs/render")
    render.set_defaults(func=cmd_render)

    sweep = sub.add_parser("sweep", help="a grid of channel edits × mazes × seeds (TOML config), resumable")
    sweep.add_argument("config", help="TOML file whose keys are the fields of mazeinterp.sweep.SweepConfig")
    sweep.add_argument("--out", default="runs/sweep", type=cli_args.output_dir,
                       help="output folder; a folder holding the same sweep is resumed (default: runs/sweep)")
    sweep.add_argument("--workers", type=_non_negative_int, default=None,
                       help="local worker processes (default: the CPU count; 0 = this process)")
    sweep.add_argument("--ray-address", default=None, metavar="ADDRESS",
                       help='run on a Ray cluster ("auto", "ray://HOST:10001"; needs mazeinterp[ray])')
    sweep.add_argument("--top", type=_positive_int, default=10, help="rows to print (default: 10)")
    sweep.set_defaults(func=cmd_sweep)

    fetch = sub.add_parser("fetch", help="download a published checkpoint by name into the user cache")
    fetch.add_argument("name", nargs="?", default=None, help="published checkpoint name (see --list)")
    fetch.add_argument("--sha256", default=None, metavar="HEX",
                       help="expected sha256; a match is recorded (pinned) in the cache")
    fetch.add_argument("--list", action="store_true", help="list the published names, URLs and hashes")
    fetch.set_defaults(func=cmd_fetch)

    for name, text in EXAMPLES.items():
        sub.choices[name].epilog = "examples:\n" + "\n".join(f"  {line}" for line in text.strip().splitlines())
        sub.choices[name].formatter_class = argparse.RawDescriptionHelpFormatter

    train = sub.add_parser("train", help="train an agent (PPO, or behaviour cloning from the BFS oracle)")
    trainers = train.add_subparsers(dest="trainer", required=True, metavar="TRAINER")
    from mazeinterp.train import imitate, ppo

    ppo_parser = trainers.add_parser("ppo", help="PPO at the published maze settings")
    ppo.add_ppo_arguments(ppo_parser)
    ppo_parser.set_defaults(func=lambda args: _run_trainer(ppo.run_from_args, args, ppo.config_from_args))
    imitate_parser = trainers.add_parser("imitate", help="behaviour cloning (+ DAgger) from the BFS oracle")
    imitate.add_imitation_arguments(imitate_parser)
    imitate_parser.set_defaults(func=lambda args: _run_trainer(imitate.run_from_args, args,
                                                               imitate.config_from_args))
    return parser


def _run_trainer(run: Callable[[argparse.Namespace], Path], args: argparse.Namespace,
                 config_from_args: Callable[[argparse.Namespace], Any]) -> int:
    try:  # a bad setting is the user's: check it (and the output folder) before any work
        from mazeinterp.train.common import choose_device

        config = config_from_args(args)
        cli_args.check_output_dir(config.out_dir)
        choose_device(config.device)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    path = run(args)
    print(f"final checkpoint: {path}")
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mazeinterp`` console script; returns the exit status."""
    from mazeinterp.checkpoint import CheckpointError
    from mazeinterp.train.common import RunSetupError

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in Python's exit-time flush
        return code
    except (CliError, CheckpointError, RunSetupError, FileExistsError, FileNotFoundError) as exc:
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


if __name__ == "__main__":
    raise SystemExit(main())
