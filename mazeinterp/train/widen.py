"""Widen a trained IMPALA policy to a larger channel scale without changing what it computes.

Net2WiderNet (Chen, Goodfellow and Shlens, 2016) for :class:`~mazeinterp.core.model.ImpalaPolicy`:
every hidden channel of the scale-``s`` network is copied ``k`` times in the
scale-``k·s`` one. A layer writing to copied channels repeats its old filters; a
layer reading them splits each old input weight among the copies with random
positive shares that sum to one. The copies therefore hold equal activations, every
sum over them equals the old one, and the wider network's logits and value are the
old ones (up to float rounding). Because the shares differ, the copies get
different gradients, so training can make them diverge.

The residual stream of a block (its first convolution and each residual block's
second convolution write it) is one group of channels, so all its writers use one
copy map; each reader draws its own shares.
"""

from __future__ import annotations

import torch
from torch import nn

from mazeinterp.core.model import ImpalaPolicy

__all__ = ["widen_policy"]


def _shares(copies: int, old_width: int, generator: torch.Generator) -> torch.Tensor:
    """(copies · old_width,) random positive shares; the copies of each old channel sum to one."""
    raw = 0.5 + torch.rand(copies, old_width, generator=generator, dtype=torch.float64)
    return (raw / raw.sum(0, keepdim=True)).reshape(-1)


def _copy_layer(old: nn.Conv2d | nn.Linear, new: nn.Conv2d | nn.Linear, *, out_copies: int, in_copies: int,
                in_block: int, generator: torch.Generator) -> None:
    """Fill ``new`` from ``old``: outputs repeated ``out_copies`` times, inputs split ``in_copies`` ways.

    ``in_block`` is how many consecutive input features belong to one input channel
    (1 for a convolution, the 8×8 positions for the linear layer after flatten).
    """
    weight = old.weight.detach().double()
    if in_copies > 1:
        old_channels = weight.shape[1] // in_block
        shares = _shares(in_copies, old_channels, generator).to(weight.device).repeat_interleave(in_block)
        shape = (-1, weight.shape[1] * in_copies) + (1,) * (weight.ndim - 2)
        weight = weight.repeat(1, in_copies, *(1,) * (weight.ndim - 2)) * shares.reshape(shape)
    weight = weight.repeat(out_copies, *(1,) * (weight.ndim - 1))
    assert old.bias is not None and new.bias is not None  # every layer of the network has a bias
    with torch.no_grad():
        new.weight.copy_(weight.to(new.weight.dtype))
        new.bias.copy_(old.bias.detach().repeat(out_copies))


def widen_policy(policy: ImpalaPolicy, scale: int, *, seed: int = 0) -> ImpalaPolicy:
    """A new :class:`ImpalaPolicy` of ``scale`` that computes ``policy``'s logits and value.

    Takes a policy of scale ``s`` and a ``scale`` that is a multiple of ``s``; ``seed``
    draws the input shares. Returns a fresh network on the policy's device and dtype
    (no metadata). ValueError when ``scale`` is not a multiple of the policy's scale.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < policy.scale or scale % policy.scale:
        raise ValueError(f"can only widen a scale-{policy.scale} policy to a multiple of {policy.scale}, "
                         f"got scale {scale!r}")
    k = scale // policy.scale
    parameter = next(policy.parameters())
    wide = ImpalaPolicy(scale=scale, num_actions=policy.num_actions).to(device=parameter.device,
                                                                        dtype=parameter.dtype)
    generator = torch.Generator().manual_seed(seed)
    old_blocks = (policy.embedder.block1, policy.embedder.block2, policy.embedder.block3)
    new_blocks = (wide.embedder.block1, wide.embedder.block2, wide.embedder.block3)
    in_copies = 1  # the RGB input is not widened
    for old_block, new_block in zip(old_blocks, new_blocks):
        _copy_layer(old_block.conv, new_block.conv, out_copies=k, in_copies=in_copies, in_block=1,
                    generator=generator)
        for name in ("res1", "res2"):
            old_res, new_res = getattr(old_block, name), getattr(new_block, name)
            _copy_layer(old_res.conv1, new_res.conv1, out_copies=k, in_copies=k, in_block=1, generator=generator)
            _copy_layer(old_res.conv2, new_res.conv2, out_copies=k, in_copies=k, in_block=1, generator=generator)
        in_copies = k
    _copy_layer(policy.embedder.fc, wide.embedder.fc, out_copies=1, in_copies=k, in_block=8 * 8,
                generator=generator)
    with torch.no_grad():
        for head in ("fc_policy", "fc_value"):
            getattr(wide, head).load_state_dict(getattr(policy, head).state_dict())
    return wide
