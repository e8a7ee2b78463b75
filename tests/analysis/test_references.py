"""Reference activations and the edits built from them: the seeded mazes, one forward pass, exact values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mazeinterp.analysis.references import (
    mean_ablation,
    mean_ablation_from_observations,
    patch_from_input,
    random_maze_states,
    reference_activations,
    resample_ablation,
    resample_ablation_from_observations,
)
from mazeinterp.core.hooks import run_with_cache
from mazeinterp.core.interventions import MeanAblate, Patch, ResampleAblate
from mazeinterp.maze.env import MazeEnv

MAP_HOOK = "embedder.relu3_out"  # (32, 8, 8) at scale 1
VEC_HOOK = "fc_value_out"  # (1,)


def seeded_observations(n_mazes: int, seed: int) -> np.ndarray:
    """Start observations (n, 64, 64, 3) of the mazes of ``seed``, drawn and observed here from procgen itself."""
    level_seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=n_mazes).tolist()
    with MazeEnv.from_seeds(level_seeds) as env:
        return env.observe()[1]


def one_hook(model, obs: np.ndarray, hook: str) -> torch.Tensor:
    """``hook``'s activations on ``obs``, one forward pass for this hook alone."""
    _, cache = run_with_cache(model, obs, [hook])
    return cache[hook]


def test_random_maze_states_are_the_seeded_levels_at_their_start() -> None:
    states = random_maze_states(3, seed=7)
    expected = np.random.default_rng(7).integers(0, 2**31 - 1, size=3).tolist()
    assert [s.level_seed for s in states] == expected
    with MazeEnv.from_seeds(expected) as env:
        assert [s.mouse for s in states] == [s.mouse for s in env.get_states()]
    with pytest.raises(ValueError, match="n_mazes must be at least 1, got 0"):
        random_maze_states(0)


def test_reference_activations_equal_one_pass_per_hook(model) -> None:
    obs = seeded_observations(4, seed=3)
    acts = reference_activations(model, [MAP_HOOK, VEC_HOOK], 4, seed=3)
    assert list(acts) == [MAP_HOOK, VEC_HOOK]
    for hook in (MAP_HOOK, VEC_HOOK):
        assert torch.equal(acts[hook], one_hook(model, obs, hook)), hook
    single = reference_activations(model, MAP_HOOK, 4, seed=3)
    assert list(single) == [MAP_HOOK] and torch.equal(single[MAP_HOOK], acts[MAP_HOOK])
    with pytest.raises(KeyError, match="embedder.relu3"):
        reference_activations(model, ["embedder.relu3"], 4)


def test_mean_and_resample_ablations_of_random_mazes(model) -> None:
    expected = one_hook(model, seeded_observations(3, seed=7), MAP_HOOK)
    mean = mean_ablation(model, MAP_HOOK, 3, seed=7, channels=[1])
    assert isinstance(mean, MeanAblate) and mean.channels == (1,)
    assert torch.equal(mean.mean, expected.mean(0))
    resample = resample_ablation(model, MAP_HOOK, 3, seed=7, pixels=[(2, 2)])
    assert isinstance(resample, ResampleAblate) and resample.seed == 7 and resample.pixels == ((2, 2),)
    assert torch.equal(resample.sources, expected)


def test_ablations_and_patches_from_observations(model) -> None:
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    act = one_hook(model, x, MAP_HOOK)
    mean = mean_ablation_from_observations(model, MAP_HOOK, x, channels=[0])
    assert torch.equal(mean.mean, act.mean(0)) and mean.channels == (0,)
    resample = resample_ablation_from_observations(model, MAP_HOOK, x, seed=5)
    assert torch.equal(resample.sources, act) and resample.seed == 5
    patch = patch_from_input(model, MAP_HOOK, x, channels=[2])
    assert isinstance(patch, Patch) and torch.equal(patch.source, act) and patch.channels == (2,)
    with pytest.raises(KeyError, match="not a hook point|unknown hook point"):
        mean_ablation_from_observations(model, "embedder.nope_out", x)
