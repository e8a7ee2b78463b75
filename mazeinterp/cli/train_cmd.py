"""The ``train`` subcommand: PPO, or behaviour cloning from the BFS oracle, with the trainers' own options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mazeinterp import cli_args
from mazeinterp.cli.common import CliError, add_numerics_option


def run_trainer(run: Callable[[argparse.Namespace], Path], args: argparse.Namespace,
                config_from_args: Callable[[argparse.Namespace], Any]) -> int:
    """Check the trainer's settings, output folder and device before any work; run it; print the final checkpoint."""
    try:  # a bad setting is the user's: check it (and the output folder) before any work
        from mazeinterp.devices import choose_device

        config = config_from_args(args)
        cli_args.check_output_dir(config.out_dir)
        choose_device(config.device)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    path = run(args)
    print(f"final checkpoint: {path}")
    return 0


def add_train(sub: Any) -> None:
    """The ``train`` subcommand and its trainers ``ppo`` and ``imitate``."""
    from mazeinterp.train import imitate, ppo

    train = sub.add_parser("train", help="train an agent (PPO, or behaviour cloning from the BFS oracle)")
    trainers = train.add_subparsers(dest="trainer", required=True, metavar="TRAINER")
    ppo_parser = trainers.add_parser("ppo", help="PPO at the published maze settings")
    ppo.add_ppo_arguments(ppo_parser)
    add_numerics_option(ppo_parser)
    ppo_parser.set_defaults(func=lambda args: run_trainer(ppo.run_from_args, args, ppo.config_from_args))
    imitate_parser = trainers.add_parser("imitate", help="behaviour cloning (+ DAgger) from the BFS oracle")
    imitate.add_imitation_arguments(imitate_parser)
    add_numerics_option(imitate_parser)
    imitate_parser.set_defaults(func=lambda args: run_trainer(imitate.run_from_args, args,
                                                              imitate.config_from_args))
