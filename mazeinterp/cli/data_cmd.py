"""Subcommands about checkpoints, mazes and batches of runs: ``info``, ``render``, ``sweep``, ``fetch``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from mazeinterp.runtime import arguments
from mazeinterp.cli.common import (
    CliError,
    add_common,
    add_numerics_option,
    add_output_options,
    claim,
    header,
    load_model,
    non_negative_int,
    positive_int,
    print_written,
)
from mazeinterp.sweep.config import ESTIMATORS


def cmd_info(args: argparse.Namespace) -> int:
    """Checkpoint summary, hook points and shapes; with --out, also summary.json and hook_points.csv."""
    from mazeinterp.core.hook_points import hook_point_rows
    from mazeinterp.core.model import count_parameters

    model = load_model(args)
    out = claim(args, ["summary.json", "hook_points.csv"])[0] if args.out is not None else None
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
    if out is not None:
        summary = {**header(args, model), "metadata": model.metadata,
                   "hook_points": {name: list(shape) for name, shape in points.items()}}
        print_written([out.write_json("summary.json", summary),
                       out.write_csv("hook_points.csv", hook_point_rows(model))])
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Render mazes as the agent sees them, with paths and decision square, to PNG files."""
    from mazeinterp.maze.env import MazeEnv
    from mazeinterp.viz.plots import plot_maze, save_figure
    from mazeinterp.viz.tables import maze_rows

    pictures = [f"maze_seed{seed}.png" for seed in args.seeds]
    out, paths = claim(args, ["summary.json", "mazes.csv", *pictures])
    with MazeEnv.from_seeds(args.seeds) as env:
        states = env.get_states()
        obs = env.observe()[1]
    rows, written = [], []
    for seed, state, frame, name, row in zip(args.seeds, states, obs, pictures, maze_rows(states)):
        n, square = state.maze_size, row["decision_square"]
        written.append(save_figure(plot_maze(state, frame, f"seed {seed}: {n}×{n}, decision square {square}"),
                                   paths[name]))
        print(f"seed {seed}: maze {n}×{n}, cheese {state.cheese}, decision square {square} -> {paths[name]}")
        rows.append({**row, "level_seed": seed, "picture": name})
    summary = {**header(args), "mazes": [{k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}
                                         for row in rows]}
    print_written([out.write_json("summary.json", summary), out.write_csv("mazes.csv", rows), *written])
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep from a TOML config; print the conditions with the largest effect."""
    from dataclasses import replace

    from mazeinterp.sweep.runner import SweepConfigError, load_sweep_config, run_sweep
    from mazeinterp.sweep.ray_backend import RayUnavailableError

    try:  # a bad config, hook point, channel, output folder or Ray address is the user's error
        config = load_sweep_config(args.config)
        if args.estimator is not None:
            config = replace(config, estimator=args.estimator)
        result = run_sweep(config, args.out, workers=args.workers, ray_address=args.ray_address)
    except (SweepConfigError, RayUnavailableError) as exc:
        raise CliError(str(exc)) from None
    skipped = config.n_shards - len(result.ran)
    print(f"{len(result.rows)} conditions × {config.n_mazes} mazes × {len(config.seeds)} seed(s), "
          f"{config.estimator} estimator: "
          f"{len(result.ran)} shard(s) run, {skipped} found finished, {result.episodes} episodes "
          f"in {result.seconds:.1f} s")
    print(f"{'hook':<34} {'channel':>7} {'kind':>8} {'coef':>6} {'P(cheese)':>9} {'base':>6} "
          f"{'effect':>7}  95% CI")
    for row in result.top(args.top):
        print(f"{row['hook']:<34} {row['channel']:>7} {row['kind']:>8} {row['coefficient']:>6g} "
              f"{row['p_cheese']:>9.3f} {row['p_cheese_baseline']:>6.3f} {row['effect']:>+7.3f}  "
              f"[{row['effect_low']:+.3f}, {row['effect_high']:+.3f}]")
    print_written(list(result.paths.values()))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch a published checkpoint by name (download, mirror or local copy), or list the names; print its
    path and sha256."""
    from mazeinterp.checkpoints.fetch import MIRROR_ENV, cache_dir, fetch, fetch_from_file, recorded_hashes, source_url
    from mazeinterp.checkpoints.published import PUBLISHED

    if args.list or not args.name:
        if args.url or args.from_file:
            raise CliError("--url and --from-file need a checkpoint NAME")
        recorded = recorded_hashes()
        for name, entry in sorted(PUBLISHED.items()):
            sha = entry.sha256 or recorded.get(name, {}).get("sha256")
            origin = "table" if entry.sha256 else "recorded" if sha else "not known yet"
            print(f"{name}\n  {entry.description}\n  url     {source_url(name)}\n  source  {entry.source}\n"
                  f"  sha256  {sha or '-'} ({origin})")
        mirror = os.environ.get(MIRROR_ENV)
        print(f"cache: {cache_dir()}" + (f"\nmirror: {mirror} (${MIRROR_ENV})" if mirror else ""))
        return 0
    if args.url and args.from_file:
        raise CliError("give --url or --from-file, not both")
    if args.from_file:
        path = fetch_from_file(args.name, args.from_file, sha256=args.sha256)
    else:
        path = fetch(args.name, sha256=args.sha256, url=args.url)
    import pooch

    print(f"{args.name}: {path}\nsha256 {pooch.file_hash(str(path))}")
    print(f"load it with mazeinterp.load_policy('published:{args.name}') or --checkpoint published:{args.name}")
    return 0


# --------------------------------------------------------------------------------------
# parsers


def add_info(sub: Any) -> None:
    """The ``info`` subcommand."""
    info = sub.add_parser("info", help="checkpoint summary, hook points and shapes")
    # info only prints unless given --out, so it can be run again and again
    add_common(info, "info", None, plots=False, default_out=None)
    info.set_defaults(func=cmd_info)


def add_render(sub: Any) -> None:
    """The ``render`` subcommand."""
    render = sub.add_parser("render", help="draw mazes with their paths and decision square")
    render.add_argument("--seeds", type=arguments.level_seed, nargs="+", default=[0], help="level seeds (default: 0)")
    add_output_options(render, "runs/render")
    render.set_defaults(func=cmd_render)


def add_sweep(sub: Any) -> None:
    """The ``sweep`` subcommand."""
    sweep = sub.add_parser("sweep", help="a grid of channel edits × mazes × seeds (TOML config), resumable")
    sweep.add_argument("config", help="TOML file whose keys are the fields of mazeinterp.sweep.runner.SweepConfig")
    sweep.add_argument("--out", default="runs/sweep", type=arguments.output_dir,
                       help="output folder; a folder holding the same sweep is resumed (default: runs/sweep)")
    sweep.add_argument("--workers", type=non_negative_int, default=None,
                       help="local worker processes (default: the CPU count; 0 = this process)")
    sweep.add_argument("--ray-address", default=None, metavar="ADDRESS",
                       help='run on a Ray cluster ("auto", "ray://HOST:10001"; needs mazeinterp[ray])')
    sweep.add_argument("--estimator", choices=ESTIMATORS, default=None,
                       help="sampled rollouts or exact outcome probabilities (default: the config's, else sampled)")
    sweep.add_argument("--top", type=positive_int, default=10, help="rows to print (default: 10)")
    add_numerics_option(sweep)
    sweep.set_defaults(func=cmd_sweep)


def add_fetch(sub: Any) -> None:
    """The ``fetch`` subcommand."""
    fetch = sub.add_parser("fetch", help="download a published checkpoint by name into the user cache")
    fetch.add_argument("name", nargs="?", default=None, help="published checkpoint name (see --list)")
    fetch.add_argument("--sha256", default=None, metavar="HEX",
                       help="expected sha256; a match is recorded (pinned) in the cache")
    source = fetch.add_mutually_exclusive_group()
    source.add_argument("--url", default=None, metavar="URL",
                        help="download from this URL (a mirror) instead of the table's; hash-checked the same way. "
                             "$MAZEINTERP_PUBLISHED_URL=BASE fetches every name from BASE/FILENAME")
    source.add_argument("--from-file", default=None, metavar="PATH",
                        help="copy a checkpoint file you already have into the cache, hash-checked like a download")
    fetch.add_argument("--list", action="store_true", help="list the published names, URLs and hashes")
    fetch.set_defaults(func=cmd_fetch)
