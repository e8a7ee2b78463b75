"""The prefix cache: edits at one hook point replayed on cached activations equal the full forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mazeinterp.core.interventions import MeanAblate, ResampleAblate, ZeroAblate
from mazeinterp.analysis.prefix_cache import build_prefix_cache, hooks_after, prefix_outcome_probabilities
from mazeinterp.analysis.vfield import outcome_probabilities

HOOK = "embedder.block2.res1.resadd_out"


@pytest.fixture(scope="module")
def small_states(seeded_states):
    """Two mazes of side 5…9 (a few dozen cells each)."""
    return [s for s in seeded_states if 5 <= s.maze_size <= 9][:2]


def _conditions():
    gen = torch.Generator().manual_seed(1)
    return [
        [],
        [ZeroAblate(HOOK, channels=[3])],
        [MeanAblate(HOOK, torch.rand(32, 16, 16, generator=gen), channels=[0, 5]),
         ZeroAblate("embedder.relu3_out", channels=[1])],           # and an edit later in the network
        [ResampleAblate(HOOK, torch.randn(5, 32, 16, 16, generator=gen), seed=2)],   # depends on batch position
    ]


def test_prefix_path_equals_the_full_pass_bit_for_bit(model, small_states) -> None:
    conditions = _conditions()
    cached = prefix_outcome_probabilities(model, small_states, HOOK, conditions, mazes_per_cache=2, batch_size=16)
    assert cached.shape == (len(conditions), 2, 4)
    for j, condition in enumerate(conditions):
        full = outcome_probabilities(model, small_states, condition, batch_size=16)
        np.testing.assert_array_equal(cached[j], full)
    # the conditions do change the numbers (else equality would prove little)
    assert not np.array_equal(cached[0], cached[1]) and not np.array_equal(cached[0], cached[3])


def test_one_maze_per_cache_equals_each_maze_on_its_own(model, small_states) -> None:
    conditions = _conditions()[:2]
    cached = prefix_outcome_probabilities(model, small_states, HOOK, conditions, batch_size=16, region_size=None)
    assert cached.shape == (2, 2, 3)
    for i, state in enumerate(small_states):
        for j, condition in enumerate(conditions):
            full = outcome_probabilities(model, [state], condition, batch_size=16, region_size=None)
            np.testing.assert_array_equal(cached[j, i], full[0])


def test_cache_holds_one_activation_per_cell_and_drawing(model, small_states) -> None:
    state = small_states[0]
    cache = build_prefix_cache(model, [state], HOOK)
    cells = int(state.open_cells.sum()) - 1  # every open cell but the cheese's
    assert cache.acts.shape == (2 * cells, 32, 16, 16)
    assert [s.mouse_reflected for s in cache.drawn] == [False, True]
    assert build_prefix_cache(model, [state], HOOK, mirror=False).acts.shape[0] == cells


def test_hooks_after_are_those_forward_from_still_runs(model) -> None:
    later = hooks_after(model, HOOK)
    assert {"embedder.block2.res2.conv1_out", "embedder.relu3_out", "fc_policy_out"} <= later
    # the hook itself, earlier ones and the containers around it are not re-run
    assert not later & {HOOK, "embedder.block2.res1_out", "embedder.block2_out", "embedder.block1.conv_out",
                        "embedder_out"}


def test_bad_conditions_and_hooks_are_refused(model, small_states) -> None:
    with pytest.raises(ValueError, match="can only replay edits at that hook point or after it"):
        prefix_outcome_probabilities(model, small_states, HOOK, [[ZeroAblate("embedder.block1.conv_out")]])
    with pytest.raises(ValueError, match="can only replay"):  # a container around the hook is not re-run
        prefix_outcome_probabilities(model, small_states, HOOK, [[ZeroAblate("embedder.block2_out")]])
    with pytest.raises(ValueError, match="cannot cache a prefix at 'embedder.block2.res1.conv1_out'"):
        build_prefix_cache(model, small_states, "embedder.block2.res1.conv1_out")
    with pytest.raises(ValueError, match="mazes_per_cache must be at least 1"):
        prefix_outcome_probabilities(model, small_states, HOOK, [[]], mazes_per_cache=0)
    with pytest.raises(ValueError, match="channel 40 is out of range"):
        prefix_outcome_probabilities(model, small_states, HOOK, [[ZeroAblate(HOOK, channels=[40])]])
