"""Each shared default is defined once, in runtime/defaults.py, and every setting that uses it takes it from there."""

from __future__ import annotations

import inspect

import pytest

from mazeinterp.runtime import defaults


def test_the_defaults_have_their_documented_values() -> None:
    assert defaults.MAX_STEPS == 500  # procgen's episode length
    assert defaults.ROLLOUT_BATCH_SIZE == 64
    assert defaults.FORWARD_BATCH_SIZE == 256
    assert defaults.REFERENCE_MAZES == 100


def test_configs_take_the_shared_defaults() -> None:
    from mazeinterp.rollout import RolloutConfig
    from mazeinterp.sweep.config import SweepConfig
    from mazeinterp.train.imitation_config import ImitationConfig

    rollout, sweep = RolloutConfig(), SweepConfig()
    assert (rollout.max_steps, rollout.batch_size) == (defaults.MAX_STEPS, defaults.ROLLOUT_BATCH_SIZE)
    assert (sweep.max_steps, sweep.batch_size) == (defaults.MAX_STEPS, defaults.ROLLOUT_BATCH_SIZE)
    assert sweep.reference_mazes == defaults.REFERENCE_MAZES
    assert ImitationConfig().eval_max_steps == defaults.MAX_STEPS


def _default(function, name: str):
    return inspect.signature(function).parameters[name].default


@pytest.mark.parametrize("where", [
    "mazeinterp.analysis.vfield:first_arrival_probabilities",
    "mazeinterp.analysis.vfield:outcome_probabilities",
    "mazeinterp.analysis.vfield:outcomes_from_fields",
    "mazeinterp.analysis.exact_chain:first_arrival_torch",
    "mazeinterp.analysis.prefix_cache:prefix_outcome_probabilities",
    "mazeinterp.analysis.channel_gradients:cheese_probability",
    "mazeinterp.analysis.channel_gradients:channel_estimates",
    "mazeinterp.analysis.scan:scan_channels",
])
def test_the_exact_chain_caps_episodes_where_the_rollouts_do(where: str) -> None:
    import importlib

    module, name = where.split(":")
    assert _default(getattr(importlib.import_module(module), name), "max_steps") == defaults.MAX_STEPS


def test_the_command_line_and_maze_loading_take_the_shared_defaults() -> None:
    from mazeinterp.cli import build_parser
    from mazeinterp.rollout import load_mazes

    args = build_parser().parse_args(["rollout"])
    assert (args.max_steps, args.batch_size) == (defaults.MAX_STEPS, defaults.ROLLOUT_BATCH_SIZE)
    assert _default(load_mazes, "batch_size") == defaults.ROLLOUT_BATCH_SIZE
