"""Tests of mazeinterp.train.widen: a widened policy computes the same logits and value, and can diverge."""

from __future__ import annotations

import pytest
import torch

from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.train.widen import widen_policy


def _trained_looking_policy(scale: int) -> ImpalaPolicy:
    """A policy with non-zero biases and heads, so every weight kind takes part in the check."""
    torch.manual_seed(0)
    policy = ImpalaPolicy(scale=scale)
    with torch.no_grad():
        for module in policy.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.bias.normal_(0.0, 0.1)
        policy.fc_policy.weight.normal_(0.0, 0.3)
    return policy.eval()


@pytest.mark.parametrize(("old", "new"), [(1, 2), (1, 3), (2, 4)])
def test_widened_policy_computes_the_same_logits_and_value(old: int, new: int) -> None:
    policy = _trained_looking_policy(old)
    wide = widen_policy(policy, new, seed=1).eval()
    x = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits, value = policy(x)
        wide_logits, wide_value = wide(x)
        hidden, wide_hidden = policy.embedder(x), wide.embedder(x)
    assert wide.scale == new and wide.embedder.block3.res2.conv2.out_channels == 32 * new
    assert hidden.abs().max() > 0.1, "the check needs live hidden units"
    torch.testing.assert_close(wide_hidden, hidden, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(wide_logits, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(wide_value, value, rtol=1e-4, atol=1e-5)


def test_copies_hold_equal_activations_and_get_different_gradients() -> None:
    policy = _trained_looking_policy(1)
    wide = widen_policy(policy, 2, seed=0)
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    inner = {}
    wide.embedder.block2.res1.conv1.register_forward_hook(lambda m, i, o: inner.setdefault("out", o))
    logits, _ = wide(x)
    copies = inner["out"].detach()
    torch.testing.assert_close(copies[:, :32], copies[:, 32:], rtol=0, atol=1e-5)
    logits.logsumexp(-1).sum().backward()
    grad = wide.embedder.block2.res1.conv1.weight.grad
    assert not torch.allclose(grad[:32], grad[32:]), "equal gradients would keep the copies identical forever"


def test_the_seed_draws_the_shares_and_repeats_them() -> None:
    policy = _trained_looking_policy(1)
    a, b = widen_policy(policy, 2, seed=0), widen_policy(policy, 2, seed=1)
    assert not torch.equal(a.embedder.fc.weight, b.embedder.fc.weight)
    torch.testing.assert_close(a.embedder.fc.weight, widen_policy(policy, 2, seed=0).embedder.fc.weight)


@pytest.mark.parametrize("scale", [1, 3, 0, 2.0, True])
def test_widening_to_a_scale_that_is_not_a_larger_multiple_is_refused(scale) -> None:
    with pytest.raises(ValueError, match="can only widen a scale-2 policy to a multiple of 2"):
        widen_policy(ImpalaPolicy(scale=2), scale)
