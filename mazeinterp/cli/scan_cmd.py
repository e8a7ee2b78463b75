"""The ``scan`` subcommand: every channel of a layer ranked by its estimated ablation effect, the top ones exact."""

from __future__ import annotations

import argparse

from mazeinterp.cli.common import (
    STEERING_HOOK,
    CliError,
    add_common,
    add_compute_options,
    add_decision_square_option,
    checked_layer,
    claim,
    header,
    load_model,
    non_negative_int,
    positive_int,
    print_written,
)
from mazeinterp.runtime.defaults import REFERENCE_MAZES

SCAN_FILES = ("summary.json", "scan.csv")
"""What ``scan`` writes into --out."""


def cmd_scan(args: argparse.Namespace) -> int:
    """Rank every channel of --hook by its estimated effect on P(cheese); verify the --top exactly."""
    from mazeinterp.core.hooks import can_forward_from
    from mazeinterp.rollout.config import TEST_SEED_START
    from mazeinterp.rollout.sources import standard_test_mazes
    from mazeinterp.analysis.scan import scan_channels

    model = load_model(args)
    shape, _ = checked_layer(model, args.hook)
    if not can_forward_from(args.hook):
        raise CliError(f"cannot scan {args.hook!r}: it lies inside a residual branch; scan a hook point on the "
                       "main path (`mazeinterp info` lists them)")
    if args.top > shape[0]:
        raise CliError(f"--top {args.top} is more than the {shape[0]} channels of {args.hook}")
    start = TEST_SEED_START if args.start_level is None else args.start_level
    if start + args.n_mazes >= 2**31 - 1:
        raise CliError(f"level seeds must stay below 2**31 - 1; --start-level {start} is too high")
    out, _ = claim(args, list(SCAN_FILES))
    level_seeds, states = standard_test_mazes(args.n_mazes, start, definition=args.decision_square)
    selection = (f"the first {args.n_mazes} level seeds from {start} on with a decision square "
                 f"({args.decision_square} definition) and the cheese outside the top-right 5×5")
    print(f"mazes: {selection} (seeds {level_seeds[0]}…{level_seeds[-1]})")
    result = scan_channels(model, states, args.hook, kind=args.kind, top=args.top,
                           reference_mazes=args.reference_mazes, seed=args.seed, workers=args.workers,
                           progress=args.progress)
    print(result)
    summary = {**header(args, model), **result.summary(), "mazes": selection, "level_seeds": level_seeds,
               "ranked_by": "|estimate|, largest first",
               "effect": "exact P(cheese) with the channel ablated minus without, mean over mazes; "
                         "interval: 95% bootstrap over mazes"}
    print_written([out.write_csv("scan.csv", result.rows()), out.write_json("summary.json", summary)])
    return 0


def add_scan(sub: argparse._SubParsersAction) -> None:
    """Register ``scan``."""
    p = sub.add_parser("scan", help="rank every channel of a layer by its ablation effect on P(cheese)",
                       description="Estimate the effect on the exact P(cheese) of ablating each channel of "
                                   "--hook (one forward and backward pass per maze), then compute the exact "
                                   "effect of the --top channels with the largest |estimate|.")
    add_common(p, "scan", None, plots=False)
    p.add_argument("--hook", default=STEERING_HOOK,
                   help=f"hook point on the main path (default: {STEERING_HOOK})")
    p.add_argument("--kind", choices=("mean", "zero"), default="mean",
                   help="ablation: the mean over --reference-mazes random mazes, or zero (default: mean)")
    p.add_argument("--n-mazes", type=positive_int, default=200, help="mazes (default: 200)")
    p.add_argument("--top", type=non_negative_int, default=16,
                   help="channels verified exactly, by |estimate| (default: 16)")
    p.add_argument("--start-level", type=non_negative_int, default=None,
                   help="first level seed searched for standard test mazes (default: 1000000)")
    p.add_argument("--reference-mazes", type=positive_int, default=REFERENCE_MAZES,
                   help=f"random mazes whose mean activation a mean ablation puts in (default: {REFERENCE_MAZES})")
    p.add_argument("--workers", type=non_negative_int, default=0,
                   help="local worker processes, one torch thread each (default: 0, this process)")
    add_decision_square_option(p)
    add_compute_options(p)
    p.set_defaults(func=cmd_scan)
