"""A sweep's definition: every field's check at its boundary, the TOML reader's errors and the grid's order.

Nothing here runs a model: the memory checks read a patched memory size, the grid reads hand-made shapes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mazeinterp.runtime import limits
from mazeinterp.runtime.defaults import DEFAULT_STEERING_HOOK, REFERENCE_MAZES, ROLLOUT_BATCH_SIZE
from mazeinterp.runtime.limits import FLOAT32_MAX
from mazeinterp.sweep.config import Condition, SweepConfig, SweepConfigError, conditions, load_sweep_config

HOOK = "embedder.block2.res1.resadd_out"


def test_defaults_and_the_config_is_frozen() -> None:
    config = SweepConfig()
    assert config.as_dict() == {
        "checkpoint": None, "hooks": [DEFAULT_STEERING_HOOK], "channels": None, "kinds": ["mean"],
        "coefficients": [1.0], "n_mazes": 200, "start_level": 0, "seeds": [0], "shard_size": 10,
        "reference_mazes": REFERENCE_MAZES, "reference_seed": 0, "max_steps": 500, "greedy": False,
        "cheese_region": None, "batch_size": ROLLOUT_BATCH_SIZE, "estimator": "sampled"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_mazes = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Condition(HOOK, 1, "zero", 1.0).channel = 2  # type: ignore[misc]


def test_level_seeds_and_shards() -> None:
    config = SweepConfig(n_mazes=25, start_level=7, shard_size=10)
    assert config.level_seeds == list(range(7, 32))
    assert config.n_shards == 3
    assert config.shard_levels(0) == list(range(7, 17))
    assert config.shard_levels(2) == list(range(27, 32))  # the last shard is short
    assert SweepConfig(n_mazes=20, shard_size=10).n_shards == 2


def test_the_smallest_values_are_accepted() -> None:
    config = SweepConfig(n_mazes=1, shard_size=1, reference_mazes=1, max_steps=1, batch_size=1, start_level=0,
                         reference_seed=0, cheese_region=1, channels=(0,), seeds=(0,))
    assert (config.n_mazes, config.cheese_region, config.channels) == (1, 1, (0,))
    assert SweepConfig(n_mazes=np.int64(5)).n_mazes == 5


@pytest.mark.parametrize("name", ["n_mazes", "shard_size", "reference_mazes", "max_steps", "batch_size",
                                  "cheese_region"])
def test_counts_below_one_are_refused(name: str) -> None:
    with pytest.raises(SweepConfigError, match=rf"^{name}: expected an integer >= 1, got 0$"):
        SweepConfig(**{name: 0})


@pytest.mark.parametrize("name", ["start_level", "reference_seed"])
def test_seeds_below_zero_are_refused(name: str) -> None:
    with pytest.raises(SweepConfigError, match=rf"^{name}: expected an integer >= 0, got -1$"):
        SweepConfig(**{name: -1})


@pytest.mark.parametrize("value", [True, 2.0, "3", None])
def test_a_count_must_be_an_integer(value) -> None:
    with pytest.raises(SweepConfigError, match=r"^n_mazes: expected an integer >= 1, got "):
        SweepConfig(n_mazes=value)


def test_integer_lists() -> None:
    assert SweepConfig(channels=3).channels == (3,)
    assert SweepConfig(channels=np.int64(3)).channels == (3,)
    assert SweepConfig(channels=[5, 1, 5, 2], seeds=[4, 4]).channels == (5, 1, 2)  # repeats dropped
    assert SweepConfig(seeds=[4, 4, 0]).seeds == (4, 0)
    with pytest.raises(SweepConfigError, match=r"^channels: expected a list of integers, got '3'$"):
        SweepConfig(channels="3")
    with pytest.raises(SweepConfigError, match=r"^seeds: expected a list of integers, got 1.5$"):
        SweepConfig(seeds=1.5)
    with pytest.raises(SweepConfigError, match=r"^channels: must not be empty$"):
        SweepConfig(channels=())
    with pytest.raises(SweepConfigError, match=r"^channels: expected an integer >= 0, got -1$"):
        SweepConfig(channels=(2, -1))
    with pytest.raises(SweepConfigError, match=r"^seeds: expected an integer >= 0, got -1$"):
        SweepConfig(seeds=(-1,))


def test_coefficient_lists() -> None:
    assert SweepConfig(coefficients=2).coefficients == (2.0,)
    assert SweepConfig(coefficients=[1, 1.0, -3]).coefficients == (1.0, -3.0)
    assert SweepConfig(coefficients=[FLOAT32_MAX, -FLOAT32_MAX]).coefficients == (FLOAT32_MAX, -FLOAT32_MAX)
    with pytest.raises(SweepConfigError, match=r"^coefficients: expected a list of numbers, got True$"):
        SweepConfig(coefficients=True)
    with pytest.raises(SweepConfigError, match=r"^coefficients: expected a list of numbers, got '1'$"):
        SweepConfig(coefficients="1")
    for bad in ([], [True], ["a"], [float("nan")], [float("inf")], [1.0, -3.5e38], [3.5e38]):
        with pytest.raises(SweepConfigError, match=r"^coefficients: expected a non-empty list of finite numbers "
                                                   r"within float32's range \(±3\.4e\+38\), got "):
            SweepConfig(coefficients=bad)


def test_name_lists() -> None:
    assert SweepConfig(hooks=HOOK).hooks == (HOOK,)
    assert SweepConfig(kinds=["zero", "scale", "zero"]).kinds == ("zero", "scale")
    for bad in ([""], [HOOK, 3], 3):
        with pytest.raises(SweepConfigError, match=r"^hooks: expected a list of names, got "):
            SweepConfig(hooks=bad)
    with pytest.raises(SweepConfigError, match=r"^kinds: must not be empty$"):
        SweepConfig(kinds=[])
    with pytest.raises(SweepConfigError, match=r"^kinds: unknown kind 'ablate'; choose from zero, mean, resample, "
                                               r"scale, clamp, add$"):
        SweepConfig(kinds=["zero", "ablate"])


def test_greedy_checkpoint_and_estimator() -> None:
    assert SweepConfig(greedy=True).greedy is True
    assert SweepConfig(estimator="exact", n_mazes=2).estimator == "exact"
    assert SweepConfig(checkpoint="agent.pt").checkpoint == "agent.pt"
    with pytest.raises(SweepConfigError, match=r"^greedy: expected true or false, got 1$"):
        SweepConfig(greedy=1)
    with pytest.raises(SweepConfigError, match=r"^checkpoint: expected a string, got 3$"):
        SweepConfig(checkpoint=3)
    with pytest.raises(SweepConfigError, match=r"^estimator: unknown estimator 'exakt'; choose from sampled, exact$"):
        SweepConfig(estimator="exakt")
    with pytest.raises(SweepConfigError, match=r"greedy = true needs estimator = 'sampled'$"):
        SweepConfig(estimator="exact", greedy=True)
    with pytest.raises(SweepConfigError, match=r"^estimator: 'exact' needs n_mazes >= 2"):
        SweepConfig(estimator="exact", n_mazes=1)


def test_the_last_level_seed_is_the_largest_procgen_takes() -> None:
    last = SweepConfig(start_level=2**31 - 3, n_mazes=2)  # seeds 2**31 - 3 and 2**31 - 2
    assert last.shard_levels(0) == [2**31 - 3, 2**31 - 2]
    with pytest.raises(SweepConfigError, match=r"^start_level \+ n_mazes must stay below 2\*\*31 - 1"):
        SweepConfig(start_level=2**31 - 3, n_mazes=3)


LIMIT = 36 * 100_000
"""A patched memory size: 100 000 level seeds of 36 bytes fill it exactly."""


@pytest.fixture
def small_memory(monkeypatch):
    monkeypatch.setattr(limits, "memory_limit", lambda: LIMIT)


def _small(**kw) -> SweepConfig:
    return SweepConfig(**{"reference_mazes": 1, "batch_size": 1, "max_steps": 1, "n_mazes": 1, **kw})


def test_memory_of_the_level_seeds(small_memory) -> None:
    assert _small(n_mazes=100_000).n_mazes == 100_000
    with pytest.raises(SweepConfigError, match=r"^n_mazes: 100001 mazes would need at least .* use fewer mazes$"):
        _small(n_mazes=100_001)


def test_memory_of_the_reference_mazes_counts_their_observations(small_memory) -> None:
    # a state (22 KiB) and its 64×64×3 observation: 34 816 bytes each, 103 fit and 104 do not
    assert _small(reference_mazes=103).reference_mazes == 103
    with pytest.raises(SweepConfigError, match=r"^reference_mazes: 104 mazes would need at least"):
        _small(reference_mazes=104)


def test_memory_and_length_of_the_episodes(small_memory) -> None:
    with pytest.raises(SweepConfigError, match=r"^max_steps and batch_size: 2 envs × 1 steps would need"):
        _small(batch_size=2)
    with pytest.raises(SweepConfigError, match=r"^max_steps: 2147483647 is above procgen's limit"):
        _small(max_steps=2**31 - 1)


def test_grid_order() -> None:
    config = SweepConfig(hooks=(HOOK, "other"), channels=(4, 1), kinds=("zero", "scale"), coefficients=(0.5, 2.0))
    grid = conditions(config, {HOOK: (8, 3, 3), "other": (5, 2, 2)})
    assert grid[:4] == [Condition(HOOK, 4, "zero", 0.5), Condition(HOOK, 1, "zero", 0.5),
                        Condition(HOOK, 4, "zero", 2.0), Condition(HOOK, 1, "zero", 2.0)]
    assert grid[4] == Condition(HOOK, 4, "scale", 0.5)
    assert len(grid) == 16 and grid[8] == Condition("other", 4, "zero", 0.5)
    # no channels given: every channel of each hook point (shape[0] of its (C, H, W))
    every = conditions(SweepConfig(hooks=(HOOK,), kinds=("zero",)), {HOOK: (3, 7, 7)})
    assert [c.channel for c in every] == [0, 1, 2]


def test_grid_errors_name_the_key() -> None:
    shapes = {HOOK: (8, 3, 3), "fc": (15,)}
    with pytest.raises(SweepConfigError, match=r"^hooks: unknown hook point 'nope'.*\(see `mazeinterp info`\)$"):
        conditions(SweepConfig(hooks=("nope",)), shapes)
    with pytest.raises(SweepConfigError, match=r"^hooks: hook point 'fc' has shape \(15,\); this needs a \(C, H, W\)"):
        conditions(SweepConfig(hooks=("fc",)), shapes)
    with pytest.raises(SweepConfigError, match=r"^channels: channel 8 is out of range for hook point"):
        conditions(SweepConfig(hooks=(HOOK,), channels=(8,)), shapes)


def test_memory_of_the_grid(small_memory) -> None:
    # (conditions + 1 baseline) × 1000 mazes × 2 seeds × 8 bytes: 224 conditions fit, 225 do not
    config = _small(n_mazes=1000, seeds=(0, 1), hooks=(HOOK,), kinds=("zero",))
    assert len(conditions(config, {HOOK: (224, 2, 2)})) == 224
    with pytest.raises(SweepConfigError, match=r"^the grid: 225 conditions × 1000 mazes × 2 seed\(s\) would need "
                                               r"at least .*; use fewer channels"):
        conditions(config, {HOOK: (225, 2, 2)})


def _toml(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_toml_reader(tmp_path: Path) -> None:
    config = load_sweep_config(_toml(tmp_path, 'channels = "all"\nkinds = ["zero"]\nn_mazes = 4\n'))
    assert (config.channels, config.kinds, config.n_mazes) == (None, ("zero",), 4)
    assert load_sweep_config(_toml(tmp_path, "channels = [3, 1]\n")).channels == (3, 1)


def test_toml_reader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^no sweep config file .*missing\.toml$"):
        load_sweep_config(tmp_path / "missing.toml")
    with pytest.raises(SweepConfigError, match=r": cannot read the sweep config \(Is a directory\)$"):
        load_sweep_config(tmp_path)
    with pytest.raises(SweepConfigError, match=r"sweep\.toml: not a TOML text file \(byte 3 is not UTF-8\)$"):
        load_sweep_config(_toml(tmp_path, b"a =\xff"))
    with pytest.raises(SweepConfigError, match=r"sweep\.toml: not valid TOML \("):
        load_sweep_config(_toml(tmp_path, "n_mazes = \n"))
    with pytest.raises(SweepConfigError, match=r"sweep\.toml: unknown key 'mazes'; known keys: batch_size, "):
        load_sweep_config(_toml(tmp_path, "mazes = 3\nzzz = 1\n"))
    with pytest.raises(SweepConfigError, match=r"sweep\.toml: n_mazes: expected an integer >= 1, got 0$"):
        load_sweep_config(_toml(tmp_path, "n_mazes = 0\n"))
