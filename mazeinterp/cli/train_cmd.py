"""The ``train`` subcommand: PPO, or behaviour cloning from the BFS oracle, with the trainers' own options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mazeinterp.runtime import arguments
from mazeinterp.cli.common import CliError, add_numerics_option

TRAIN_EXAMPLES: dict[str, str] = {
    "ppo": """
mazeinterp train ppo --scale 1 --num-envs 16 --num-steps 64 --num-minibatches 4 --total-timesteps 2048 --device cpu --out runs/ppo-tiny   # a tiny run, to check the setup
mazeinterp train ppo --device cuda --out runs/ppo-r5           # the published settings: scale 4, cheese region 5 (GPU, hours)
mazeinterp train ppo --device cuda --out runs/ppo-r5 --resume  # continue after an interruption
""",
    "imitate": """
mazeinterp train imitate --total-samples 20000 --mazes-per-chunk 16 --eval-mazes 8 --held-out-mazes 4 --out runs/imitate-tiny   # a tiny run
mazeinterp train imitate --cheese-region 1 --out runs/imitate-r1                    # from random weights, cheese on the corner cell
mazeinterp train imitate --init-checkpoint maze-s1-r5-v5 --cheese-region 15 --out runs/r15   # fine-tune a shipped agent
mazeinterp train imitate --out runs/imitate-r1 --resume                             # continue after an interruption
""",
}
"""Example command lines shown at the end of ``mazeinterp train ppo --help`` and ``train imitate --help``."""


def run_trainer(run: Callable[[argparse.Namespace], Path], args: argparse.Namespace,
                config_from_args: Callable[[argparse.Namespace], Any]) -> int:
    """Check the trainer's settings, output folder and device before any work; run it; print the final checkpoint."""
    try:  # a bad setting is the user's: check it (and the output folder) before any work
        from mazeinterp.runtime.devices import choose_device

        config = config_from_args(args)
        arguments.check_output_dir(config.out_dir)
        choose_device(config.device)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    path = run(args)
    print(f"final checkpoint: {path}")
    return 0


def _examples(trainer: str) -> dict[str, Any]:
    """The epilog and formatter that end a trainer's ``--help`` with its examples."""
    lines = TRAIN_EXAMPLES[trainer].strip().splitlines()
    return {"epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def add_train(sub: Any) -> None:
    """The ``train`` subcommand and its trainers ``ppo`` and ``imitate``."""
    from mazeinterp.train import imitate, ppo

    train = sub.add_parser("train", help="train an agent (PPO, or behaviour cloning from the BFS oracle)")
    trainers = train.add_subparsers(dest="trainer", required=True, metavar="TRAINER")
    ppo_parser = trainers.add_parser("ppo", help="PPO at the published maze settings", **_examples("ppo"))
    ppo.add_ppo_arguments(ppo_parser)
    add_numerics_option(ppo_parser)
    ppo_parser.set_defaults(func=lambda args: run_trainer(ppo.run_from_args, args, ppo.config_from_args))
    imitate_parser = trainers.add_parser("imitate", help="behaviour cloning (+ DAgger) from the BFS oracle",
                                         **_examples("imitate"))
    imitate.add_imitation_arguments(imitate_parser)
    add_numerics_option(imitate_parser)
    imitate_parser.set_defaults(func=lambda args: run_trainer(imitate.run_from_args, args,
                                                              imitate.config_from_args))
