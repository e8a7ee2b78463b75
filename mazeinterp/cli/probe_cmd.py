"""Subcommands that edit or read the network's activations: ``vfield``, ``ablate``, ``steer``, ``channels``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mazeinterp.runtime import arguments
from mazeinterp.runtime.defaults import CHEESE_VECTOR_COEFFICIENT, DIRECTIONAL_HOOK, REFERENCE_MAZES
from mazeinterp.cli.common import (
    STEERING_HOOK,
    CliError,
    add_common,
    add_compute_options,
    add_decision_square_option,
    add_layer_option,
    add_rollout_options,
    checked_layer,
    claim,
    header,
    load_model,
    positive_int,
    print_written,
    rollout_config,
    seeds,
    start_states,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mazeinterp.core.interventions import Intervention
    from mazeinterp.maze.state import MazeState
    from mazeinterp.core.model import ImpalaPolicy
    from mazeinterp.runtime.outputs import OutputDir

CHANNEL_METHODS = ("cheese", "directional", "attribution", "probe")
"""Values of ``channels --method``."""


# --------------------------------------------------------------------------------------
# interventions from arguments


def _ablation(model: ImpalaPolicy, args: argparse.Namespace, channels: list[int] | None) -> Intervention:
    """The --ablation of ``channels`` (None: all) at --layer (checked by :func:`checked_layer`)."""
    from mazeinterp.analysis.references import mean_ablation, resample_ablation
    from mazeinterp.core.interventions import ZeroAblate

    if args.ablation == "zero":
        return ZeroAblate(args.layer, channels=None if channels is None else tuple(channels))
    build = mean_ablation if args.ablation == "mean" else resample_ablation
    return build(model, args.layer, args.reference_mazes, seed=args.seed, channels=channels)


def _steering_vectors(model: ImpalaPolicy, states: Sequence[MazeState], args: argparse.Namespace) -> Any:
    """Per-maze vectors (N, C, H, W), or one vector (C, H, W) with --mean."""
    from mazeinterp.analysis.steering import cheese_vectors, top_right_vectors

    make = cheese_vectors if args.vector == "cheese" else top_right_vectors
    vectors = make(model, states, args.layer, progress=args.progress)
    return vectors.mean(0) if args.mean else vectors


def _steering(model: ImpalaPolicy, states: Sequence[MazeState],
              args: argparse.Namespace) -> tuple[Intervention, Callable[[int], Intervention]]:
    """(intervention for a rollout over ``states``, function maze index → intervention for that maze).

    --layer must have been checked to be a map (:func:`checked_layer`).
    """
    from mazeinterp.core.interventions import AddVector
    from mazeinterp.rollout import EpisodeVectors

    vectors = _steering_vectors(model, states, args)
    if vectors.ndim == 3:
        single = AddVector(args.layer, vectors, args.coefficient)
        return single, lambda i: single
    return EpisodeVectors(args.layer, vectors, args.coefficient), lambda i: AddVector(args.layer, vectors[i],
                                                                                       args.coefficient)


def _save_vfield_figure(state: MazeState, base: Any, edited: Any | None, path: Path, label: str) -> Path:
    from mazeinterp.core.hooks import render_states
    from mazeinterp.viz.plots import plot_vector_field_edit, save_figure

    return save_figure(plot_vector_field_edit(base, edited, render_states([state])[0], label), path)


# --------------------------------------------------------------------------------------
# vfield


def _num(value: float, fmt: str = ".3f") -> str:
    """A number for a table; '-' for NaN (no decision square)."""
    return "-" if value != value else format(value, fmt)


def _print_decision_square_table(rows: Sequence[dict[str, Any]], edited: bool) -> None:
    print(f"{'level':>8} {'size':>5} {'cells':>6} {'cheese-ward move':>17} {'P at decision square':>21}"
          + (f" {'edited':>8} {'change':>8}" if edited else ""))
    for row in rows:
        p = row["p_cheese_ward_at_decision_square"]
        line = (f"{row['level_seed']:>8} {row['maze_size']:>5} {row['cells']:>6} "
                f"{row['cheese_ward_move'] or '-':>17} {_num(p):>21}")
        if "p_cheese_ward_edited" in row:
            line += f" {_num(row['p_cheese_ward_edited']):>8} {_num(row['p_cheese_ward_edited'] - p, '+.3f'):>8}"
        print(line)


def cmd_vfield(args: argparse.Namespace) -> int:
    """Vector fields of mazes, optionally with an ablation or a steering vector, and their difference."""
    import numpy as np

    from mazeinterp.viz.plots import MAX_MAZE_PANELS
    from mazeinterp.viz.tables import decision_square_rows, decision_square_summary, vector_field_rows
    from mazeinterp.analysis.vfield import decision_square_cheese_prob, vector_field, vector_fields

    if args.channels and args.vector:
        raise CliError("give either --channels (ablation) or --vector (steering), not both")
    model = load_model(args)
    channels = None
    if args.channels or args.vector:
        _, channels = checked_layer(model, args.layer, args.channels or None, need_map=bool(args.vector))
    plotted = seeds(args)[:MAX_MAZE_PANELS] if args.plots else []
    out, paths = claim(args, ["summary.json", "cells.csv"] + [f"vfield_level{s}.png" for s in plotted])
    states = start_states(args)
    per_maze: Callable[[int], Any] | None = None
    label = ""
    base_fields = vector_fields(model, states, progress=args.progress)
    definition = args.decision_square
    p_base = decision_square_cheese_prob(model, states, definition=definition)
    treated_fields, p_treated = None, None
    if channels:  # one intervention for every maze: batched
        iv = _ablation(model, args, channels)
        per_maze, label = (lambda i: iv), repr(iv)
        treated_fields = vector_fields(model, states, [iv], progress=args.progress)
        p_treated = decision_square_cheese_prob(model, states, [iv], definition=definition)
    elif args.vector:  # each maze its own vector
        _, per_maze = _steering(model, states, args)
        label = f"{args.vector} vector × {args.coefficient:g} at {args.layer}" + (" (mean)" if args.mean else "")
        treated_fields = [vector_field(model, s, [per_maze(i)]) for i, s in enumerate(states)]
        p_treated = np.array([decision_square_cheese_prob(model, [s], [per_maze(i)], definition=definition)[0]
                              for i, s in enumerate(states)])

    mazes = decision_square_rows(base_fields, p_base, p_treated, definition)
    _print_decision_square_table(mazes, edited=per_maze is not None)
    summary: dict[str, Any] = {**header(args, model), "edit": label or None, "mazes": mazes,
                               **decision_square_summary(p_base, p_treated), "decision_square_definition": definition}
    if "mean_change" in summary:
        print(f"mean change of P(cheese-ward move at the decision square): {summary['mean_change']:+.3f} "
              f"over {summary['n_with_decision_square']} mazes ({label})")
    written = [out.write_json("summary.json", summary),
               out.write_csv("cells.csv", vector_field_rows(base_fields, treated_fields))]
    for i, seed in enumerate(plotted):
        written.append(_save_vfield_figure(states[i], base_fields[i], treated_fields[i] if treated_fields else None,
                                           paths[f"vfield_level{seed}.png"], label))
    print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# ablate / steer


def _run_comparison(args: argparse.Namespace, model: ImpalaPolicy, states: Sequence[MazeState],
                    treatment: Intervention, out: OutputDir, paths: dict[str, Path], label: str) -> list[Path]:
    """Baseline and ``treatment`` on the same mazes (:func:`mazeinterp.rollout.compare`): print, write, plot."""
    from mazeinterp.rollout import compare

    print(f"baseline, then {label} …", file=sys.stderr)
    comparison = compare(model, states, treatment_interventions=[treatment], config=rollout_config(args))
    print(comparison)
    print(f"P(cheese) {label}: {comparison.difference()}")
    written = [out.write_json("summary.json", {**header(args, model), "edit": label, **comparison.as_dict()}),
               out.write_csv("episodes.csv", comparison.rows())]
    if args.plots:
        from mazeinterp.viz.plots import plot_comparison_outcomes, save_figure

        written.append(save_figure(plot_comparison_outcomes(comparison, label), paths["outcomes.png"]))
    return written


def cmd_ablate(args: argparse.Namespace) -> int:
    """Baseline vs channels ablated at a layer, on the same mazes, with the paired difference."""
    model = load_model(args)
    _, channels = checked_layer(model, args.layer, args.channels)
    out, paths = claim(args, ["summary.json", "episodes.csv"] + (["outcomes.png"] if args.plots else []))
    iv = _ablation(model, args, channels)
    states = start_states(args)
    print_written(_run_comparison(args, model, states, iv, out, paths, repr(iv)))
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    """Baseline vs a steering vector added with a coefficient, on the same mazes."""
    model = load_model(args)
    checked_layer(model, args.layer, need_map=True)
    names = ["summary.json", "episodes.csv"] + (["outcomes.png", "vfield_first_maze.png"] if args.plots else [])
    out, paths = claim(args, names)
    states = start_states(args)
    treatment, per_maze = _steering(model, states, args)
    kind = "mean " if args.mean else "per-maze "
    label = f"{kind}{args.vector} vector × {args.coefficient:g} at {args.layer}"
    written = _run_comparison(args, model, states, treatment, out, paths, label)
    if args.plots:
        from mazeinterp.analysis.vfield import vector_field

        base = vector_field(model, states[0])
        steered = vector_field(model, states[0], [per_maze(0)])
        written.append(_save_vfield_figure(states[0], base, steered, paths["vfield_first_maze.png"], label))
    print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# channels


def cmd_channels(args: argparse.Namespace) -> int:
    """Channel discovery tables: cheese tracking, move directions, behaviour attribution, linear probe."""
    from mazeinterp.analysis import channels as ch
    if args.method == "probe" and args.n_mazes < ch.PROBE_MIN_MAZES:
        raise CliError(f"the probe needs at least {ch.PROBE_MIN_MAZES} mazes, got {args.n_mazes} (--n-mazes)")
    model = load_model(args)
    layer = args.layer or (DIRECTIONAL_HOOK if args.method == "directional" else STEERING_HOOK)
    shape, chosen = checked_layer(model, layer, args.only, need_map=args.method != "directional")
    names = ["summary.json", "channels.csv"] + (["channels_first_maze.png", "top_channel.png"] if args.plots else [])
    out, paths = claim(args, names)
    states = start_states(args)
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
    summary = {**header(args, model), "method": table.method, "layer": table.hook,
               "description": table.description, "table_summary": dict(table.summary), "seconds": seconds,
               "top": table.top(args.top).to_rows()}
    written = [out.write_json("summary.json", summary), out.write_csv("channels.csv", table.to_rows())]
    if args.plots and len(shape) == 3:
        from mazeinterp.core.hooks import render_states, run_batched_with_cache
        from mazeinterp.viz.plots import plot_channel_grid, plot_channel_heatmap, save_figure

        _, cache = run_batched_with_cache(model, states[:1], [layer], stop_early=True)
        acts = cache[layer][0]
        written.append(save_figure(plot_channel_grid(acts, title=f"{layer}, level {states[0].level_seed}",
                                                     state=states[0]),
                                   paths["channels_first_maze.png"]))
        best = int(table.channel[0])
        title = f"top channel {best} ({table.method}), level {states[0].level_seed}"
        written.append(save_figure(plot_channel_heatmap(states[0], acts[best], render_states(states[:1])[0], title),
                                   paths["top_channel.png"]))
    print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# parsers


def _add_ablation_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--channels", type=int, nargs="+", required=required, default=None,
                        help="channels to ablate at --layer")
    parser.add_argument("--ablation", choices=("zero", "mean", "resample"), default="zero",
                        help="zero, mean (over --reference-mazes random mazes) or resample (default: zero)")
    parser.add_argument("--reference-mazes", type=positive_int, default=REFERENCE_MAZES,
                        help=f"random mazes for mean/resample ablation (default: {REFERENCE_MAZES})")


def _add_vector_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """--vector (``default`` None: no steering unless asked), --coefficient and --mean."""
    parser.add_argument("--vector", choices=("cheese", "top_right"), default=default,
                        help="steer with each maze's cheese vector (cheese minus no cheese) or top-right "
                             f"vector (default: {default or 'none'})")
    parser.add_argument("--coefficient", type=arguments.finite_float, default=CHEESE_VECTOR_COEFFICIENT,
                        help=f"steering coefficient (default: {CHEESE_VECTOR_COEFFICIENT:g})")
    parser.add_argument("--mean", action="store_true",
                        help="one vector, the mean over the mazes, instead of each maze's own")


def add_vfield(sub: Any) -> None:
    """The ``vfield`` subcommand."""
    vfield = sub.add_parser("vfield", help="vector fields of mazes, optionally ablated or steered")
    add_common(vfield, "vfield", 1)
    add_layer_option(vfield, STEERING_HOOK)
    _add_ablation_options(vfield, required=False)
    _add_vector_options(vfield, default=None)
    add_decision_square_option(vfield)
    add_compute_options(vfield)
    vfield.set_defaults(func=cmd_vfield)


def add_ablate(sub: Any) -> None:
    """The ``ablate`` subcommand."""
    ablate = sub.add_parser("ablate", help="baseline vs channels ablated at a layer (same mazes)")
    add_common(ablate, "ablate", 100)
    add_layer_option(ablate, STEERING_HOOK)
    _add_ablation_options(ablate, required=True)
    add_rollout_options(ablate)
    add_compute_options(ablate)
    ablate.set_defaults(func=cmd_ablate)


def add_steer(sub: Any) -> None:
    """The ``steer`` subcommand."""
    steer = sub.add_parser("steer", help="baseline vs a steering vector with a coefficient (same mazes)")
    add_common(steer, "steer", 100)
    add_layer_option(steer, STEERING_HOOK)
    _add_vector_options(steer, default="cheese")
    add_rollout_options(steer)
    add_compute_options(steer)
    steer.set_defaults(func=cmd_steer)


def add_channels(sub: Any) -> None:
    """The ``channels`` subcommand."""
    channels = sub.add_parser("channels", help="channel discovery tables")
    add_common(channels, "channels", 100)
    channels.add_argument("--method", choices=CHANNEL_METHODS, default="cheese",
                          help="cheese tracking, move directions, behaviour attribution or probe (default: cheese)")
    channels.add_argument("--layer", default=None,
                          help=f"hook point (default: {STEERING_HOOK}; {DIRECTIONAL_HOOK} for directional); "
                               "`mazeinterp info` lists every hook point and its shape")
    channels.add_argument("--move", choices=("left", "down", "up", "right"), default=None,
                          help="directional: rank by the push toward this move")
    channels.add_argument("--only", type=int, nargs="+", default=None, metavar="CHANNEL",
                          help="attribution: only these channels")
    channels.add_argument("--ablation", choices=("zero", "mean"), default="zero", help="attribution: ablation")
    channels.add_argument("--top", type=positive_int, default=20, help="rows to print (default: 20)")
    add_compute_options(channels)
    channels.set_defaults(func=cmd_channels)
