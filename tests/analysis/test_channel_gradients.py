"""Gradients of exact P(cheese) with respect to a hook's activations, and the per-channel ablation estimates."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor

from mazeinterp.analysis.channel_gradients import channel_estimates, cheese_probability
from mazeinterp.core.interventions import Intervention
from mazeinterp.analysis.prefix_cache import build_prefix_cache, prefix_outcome_probabilities
from mazeinterp.analysis.vfield import outcome_probabilities

HOOK = "embedder.relu3_out"


@dataclass(frozen=True, eq=False, repr=False)
class Toward(Intervention):
    """Move the selected entries a fraction ``t`` of the way to ``target`` (C, H, W)."""

    target: Tensor = None  # type: ignore[assignment]
    t: float = 0.0

    def edit(self, act: Tensor) -> Tensor:
        return act + self.t * (self.target.to(act) - act)


@pytest.fixture(scope="module")
def maze(seeded_states):
    """A 7×7 maze whose exact P(cheese) under the random model is neither 0 nor 1."""
    return next(s for s in seeded_states if s.maze_size == 7)


def test_p_cheese_of_the_cache_is_the_exact_outcome(model, maze) -> None:
    cache = build_prefix_cache(model, [maze], HOOK)
    with torch.no_grad():
        p = float(cheese_probability(model, cache, cache.acts))
    assert p == pytest.approx(outcome_probabilities(model, [maze])[0, 0], abs=1e-9)
    assert 0.01 < p < 0.99


def test_gradient_matches_finite_differences_in_float64(model, maze) -> None:
    model64 = copy.deepcopy(model).double()
    cache = build_prefix_cache(model, [maze], HOOK)
    acts = cache.acts.double().requires_grad_(True)
    (grad,) = torch.autograd.grad(cheese_probability(model64, cache, acts), acts)
    gen = torch.Generator().manual_seed(0)
    eps = 1e-5
    for _ in range(3):
        direction = torch.randn(acts.shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            up = cheese_probability(model64, cache, acts + eps * direction)
            down = cheese_probability(model64, cache, acts - eps * direction)
        numeric = float((up - down) / (2 * eps))
        assert numeric == pytest.approx(float((grad * direction).sum()), rel=1e-5, abs=1e-10)
        assert abs(numeric) > 1e-6


def test_batched_estimates_equal_one_full_backward_pass(model, maze) -> None:
    cache = build_prefix_cache(model, [maze], HOOK, batch_size=16)   # several batches
    acts = cache.acts.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(cheese_probability(model, cache, acts), acts)
    mean = torch.rand(32, 8, 8, generator=torch.Generator().manual_seed(3))
    for ablated in (None, mean):
        target = torch.zeros_like(acts) if ablated is None else ablated.expand_as(acts)
        expected = (grad * (target - acts)).double().sum(dim=(0, 2, 3)).detach().numpy()
        got = channel_estimates(model, cache, ablated)
        assert got.shape == (32,)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_estimate_is_the_slope_of_the_exact_effect(model, maze) -> None:
    """Moving channel c a small fraction t toward its ablated value changes exact P(cheese) by t · estimate."""
    cache = build_prefix_cache(model, [maze], HOOK)
    mean = cache.acts.mean(0)
    estimates = channel_estimates(model, cache, mean)
    channel = int(np.abs(estimates).argmax())
    t = 0.01
    edit = Toward(HOOK, channels=[channel], target=mean, t=t)
    base, moved = prefix_outcome_probabilities(model, [maze], HOOK, [[], [edit]])[:, 0, 0]
    assert (moved - base) / t == pytest.approx(estimates[channel], rel=0.05)


def test_more_than_one_maze_is_refused(model, seeded_states) -> None:
    cache = build_prefix_cache(model, seeded_states[:2], HOOK)
    with pytest.raises(ValueError, match="one maze at a time; this cache holds 2 mazes"):
        channel_estimates(model, cache, None)
