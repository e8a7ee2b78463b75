"""Subcommands that run the policy on many mazes and summarize the outcomes: ``rollout`` and ``stats``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mazeinterp.runtime import arguments
from mazeinterp.viz.animation import DEFAULT_MAX_FRAMES, FORMATS
from mazeinterp.cli.common import (
    CliError,
    add_common,
    add_compute_options,
    add_rollout_options,
    claim,
    header,
    load_model,
    positive_int,
    print_written,
    rollout_config,
    start_states,
)

if TYPE_CHECKING:
    from mazeinterp.core.model import ImpalaPolicy
    from mazeinterp.rollout.results import Episode


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
    if args.animate_frames < 2:
        raise CliError(f"--animate-frames must be at least 2 (an episode's start and end), got {args.animate_frames}")
    model = load_model(args)
    names = ["summary.json", "episodes.csv"] + (["outcomes.png", "trajectories.png"] if args.plots else [])
    animation = f"rollout.{args.animate_format}"
    names += [animation] if args.animate else []
    settings = _rollout_settings(args, model)
    if args.resume:  # the partial run's own files are replaced
        args.overwrite = True
    out, paths = claim(args, [*names, rollout_resume.RESUME_FILE] if not args.resume else names)
    states = start_states(args)
    config = rollout_config(args, trajectories=args.plots or bool(args.animate))
    if args.animate:
        config = replace(config, record_action_probs=True)
    key = rollout_resume.ResumeKey.of(settings, model, config, states)
    finished: list[Episode] = []
    seconds_before = 0.0
    if args.resume:
        try:
            finished, seconds_before = rollout_resume.load_partial(out.path, key, states)
        except rollout_resume.ResumeError as exc:
            raise CliError(str(exc)) from None
    try:
        with rollout_resume.sigterm_as_interrupt():
            result = run_rollouts(model, states, config=config,
                                  indices=rollout_resume.remaining(len(states), finished))
    except RolloutInterrupted as stop:
        partial = rollout_resume.merge(finished, stop.result, seconds_before)
        print_written([
            out.write_json("summary.json", {**header(args, model), **partial.as_dict(), "partial": True,
                                            "mazes_requested": len(states)}),
            out.write_csv("episodes.csv", partial.to_rows()),
            rollout_resume.save_partial(out.path, partial, key),
        ])
        print(f"partial: {len(partial)} of {len(states)} mazes finished; run the same command with --resume "
              "to finish", file=sys.stderr)
        raise
    result = rollout_resume.merge(finished, result, seconds_before)
    print(result)
    print(f"{result.frames_per_second:.1f} frames/s")
    written = [out.write_json("summary.json", {**header(args, model), **result.as_dict(), "partial": False}),
               out.write_csv("episodes.csv", result.to_rows())]
    rollout_resume.finish(out.path)
    if args.plots:
        from mazeinterp.core.hooks import render_states
        from mazeinterp.viz.plots import MAX_MAZE_PANELS, plot_rollout_outcomes, plot_trajectories, save_figure

        written.append(save_figure(plot_rollout_outcomes(result), paths["outcomes.png"]))
        shown = states[:MAX_MAZE_PANELS]
        written.append(save_figure(plot_trajectories(result.episodes, shown, render_states(shown)),
                                   paths["trajectories.png"]))
    if args.animate:
        from mazeinterp.viz.animation import animate_rollouts

        try:
            written.append(animate_rollouts(result.episodes[: args.animate], states[: args.animate],
                                            paths[animation], max_frames=args.animate_frames))
        except ValueError as exc:  # MP4 without its encoder package
            raise CliError(str(exc)) from None
    print_written(written)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Rollouts, then a logistic regression of 'reached the cheese' on maze features."""
    from mazeinterp.maze.grid import MazeFeatures
    from mazeinterp.rollout import run_rollouts
    from mazeinterp.analysis.stats import DEFAULT_FEATURES, feature_table, fit_cheese_regression

    features = args.features or list(DEFAULT_FEATURES)
    known = [f for f in MazeFeatures.__dataclass_fields__ if f not in ("n", "cheese", "decision_square",
                                                                        "has_decision_square")]
    unknown = [f for f in features if f not in known]
    if unknown:
        raise CliError(f"unknown feature {unknown[0]!r}; choose from {', '.join(known)}")
    model = load_model(args)
    names = ["summary.json", "episodes.csv", "coefficients.csv"]
    names += ["outcomes.png", "coefficients.png"] if args.plots else []
    out, paths = claim(args, names)
    states = start_states(args)
    result = run_rollouts(model, states, config=rollout_config(args))
    print(result.summary())
    print(result.summary(decision_square_only=True))
    print(result.summary().event_legend())
    summary: dict[str, Any] = {**header(args, model), **result.as_dict()}
    try:
        regression = fit_cheese_regression(result.episodes, features, test_fraction=args.test_fraction,
                                           C=args.C, seed=args.seed)
    except ValueError as exc:
        regression = None
        summary["regression_error"] = str(exc)
        print(f"no regression: {exc}")
    if regression is not None:
        print(regression)  # with its own warning line when few mazes were held out
        summary["regression"] = regression.as_dict()
    written = [out.write_json("summary.json", summary), out.write_csv("episodes.csv", feature_table(result.episodes)),
               out.write_csv("coefficients.csv", regression.coefficient_rows() if regression else [])]
    if args.plots:
        from mazeinterp.viz.plots import plot_regression_coefficients, plot_rollout_outcomes, save_figure

        written.append(save_figure(plot_rollout_outcomes(result), paths["outcomes.png"]))
        written.append(save_figure(plot_regression_coefficients(regression, summary.get("regression_error", "")),
                                   paths["coefficients.png"]))
    print_written(written)
    return 0


# --------------------------------------------------------------------------------------
# parsers


def add_rollout(sub: Any) -> None:
    """The ``rollout`` subcommand."""
    rollout = sub.add_parser("rollout", help="P(cheese / top_right / neither) over many mazes")
    add_common(rollout, "rollout", 100)
    add_rollout_options(rollout)
    rollout.add_argument("--animate", type=positive_int, default=None, metavar="N",
                         help="also write rollout.gif (or .mp4): the first N episodes step by step, with the move "
                              "probabilities")
    rollout.add_argument("--animate-format", choices=FORMATS, default="gif",
                         help="animation file format (default: gif; mp4 needs mazeinterp[video])")
    rollout.add_argument("--animate-frames", type=positive_int, default=DEFAULT_MAX_FRAMES, metavar="K",
                         help="most frames per animated episode; longer ones show every k-th step "
                              f"(default: {DEFAULT_MAX_FRAMES})")
    rollout.add_argument("--resume", action="store_true",
                         help="finish an interrupted run in --out (same arguments): only its unfinished mazes run")
    add_compute_options(rollout)
    rollout.set_defaults(func=cmd_rollout)


def add_stats(sub: Any) -> None:
    """The ``stats`` subcommand."""
    stats = sub.add_parser("stats", help="outcomes and a logistic regression on maze features")
    add_common(stats, "stats", 200)
    add_rollout_options(stats)
    stats.add_argument("--features", nargs="+", default=None, help="maze features (default: the 8 distances)")
    stats.add_argument("--test-fraction", type=arguments.open_unit_interval, default=0.25,
                       help="held-out fraction (default: 0.25)")
    stats.add_argument("--C", type=arguments.positive_float, default=1.0, help="inverse L2 strength (default: 1)")
    add_compute_options(stats)
    stats.set_defaults(func=cmd_stats)
