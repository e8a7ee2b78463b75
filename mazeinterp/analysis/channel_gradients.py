"""First-order estimates of every channel's ablation effect on the exact P(cheese), from one backward pass.

Exact P(cheese) of a maze is a function of the activations at a hook point H
with the mouse on every open cell, drawn plain and mirrored (the network after
H, then the absorbing chain of :mod:`mazeinterp.analysis.exact_chain`, all in torch).
Ablating channel c replaces those activations ``a[:, c]`` by ``ablated[c]``
(the mean activation, or zero); to first order the effect is

    Σ over cells, drawings and pixels of  ∂P(cheese)/∂a[:, c] · (ablated[c] − a[:, c])

so one forward and one backward pass over a maze's cells estimate every
channel at once. :func:`channel_estimates` computes it from a
:class:`~mazeinterp.analysis.prefix_cache.PrefixCache` of one maze.

>>> from mazeinterp.analysis.prefix_cache import build_prefix_cache
>>> cache = build_prefix_cache(model, [state], "embedder.relu3_out")
>>> channel_estimates(model, cache, None).shape        # zero ablation of each of 32 channels
(32,)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mazeinterp.analysis.exact_chain import chain_layout, first_arrival_torch
from mazeinterp.runtime.defaults import MAX_STEPS
from mazeinterp.core.hooks import forward_from
from mazeinterp.core.model import move_probs
from mazeinterp.analysis.prefix_cache import PrefixCache, cached_move_probs
from mazeinterp.maze.outcomes import outcome_goals

if TYPE_CHECKING:
    from mazeinterp.core.model import ImpalaPolicy

__all__ = ["cheese_probability", "cheese_probability_from_probs", "channel_estimates"]


def _one_maze(cache: PrefixCache) -> None:
    if len(cache.states) != 1:
        raise ValueError(f"the gradient of P(cheese) is taken one maze at a time; this cache holds "
                         f"{len(cache.states)} mazes")
    if cache.states[0].cheese is None:
        raise ValueError("this maze has no cheese: P(cheese) is 0 whatever the activations")


def cheese_probability_from_probs(cache: PrefixCache, probs: Tensor, max_steps: int = MAX_STEPS) -> Tensor:
    """Exact P(cheese) (a 0-d tensor) of the cache's maze from (len(cache.acts), 5) move probabilities in cache order.

    Differentiable in ``probs``; float64 ``probs`` give the numpy chain's value to rounding.
    """
    _one_maze(cache)
    state = cache.states[0]
    layout = chain_layout(state, cache.cells[0], outcome_goals(state), mirror=cache.mirror, start=state.mouse,
                          start_reflected=state.mouse_reflected and cache.mirror)
    return first_arrival_torch(layout, probs, max_steps)[0]


def cheese_probability(model: ImpalaPolicy, cache: PrefixCache, acts: Tensor, max_steps: int = MAX_STEPS) -> Tensor:
    """Exact P(cheese) (0-d, float64) of the cache's maze with activations ``acts`` at its hook point.

    ``acts``: (len(cache.acts), C, H, W), e.g. ``cache.acts`` edited or with ``requires_grad``;
    run in one batch, differentiably (for small mazes and tests; :func:`channel_estimates` batches).
    """
    logits, _ = forward_from(model, cache.hook, acts)
    return cheese_probability_from_probs(cache, move_probs(logits).double(), max_steps)


def channel_estimates(model: ImpalaPolicy, cache: PrefixCache, ablated: Tensor | None, *,
                      max_steps: int = MAX_STEPS, baseline_probs: np.ndarray | None = None) -> np.ndarray:
    """(C,) first-order effect on P(cheese) of replacing each channel c at the hook by ``ablated[c]``.

    Args:
        model: the policy (its parameters get no gradient).
        cache: the prefix of one maze (:func:`mazeinterp.analysis.prefix_cache.build_prefix_cache`).
        ablated: (C, H, W) values an ablation puts in (the mean activation); None = zero ablation.
        baseline_probs: the cache's move probabilities, if already computed (saves one pass).

    Returns:
        float64 (C,) array: Σ over cells, drawings and pixels of ∂P(cheese)/∂a · (ablated − a), per channel.

    The gradient reaches the activations through the cached batches one at a
    time: the chain's gradient with respect to the move probabilities first,
    then one vector-Jacobian product per batch, so memory stays that of one batch.
    """
    _one_maze(cache)
    probs = cached_move_probs(model, cache) if baseline_probs is None else baseline_probs
    leaf = torch.tensor(probs, dtype=torch.float64, requires_grad=True)
    p_cheese = cheese_probability_from_probs(cache, leaf, max_steps)
    (grad_probs,) = torch.autograd.grad(p_cheese, leaf)
    grad_probs = grad_probs.to(cache.acts.device)
    total = torch.zeros(cache.acts.shape[1], dtype=torch.float64, device=cache.acts.device)
    start = 0
    for act in cache.batches():
        with torch.enable_grad():
            leaf_act = act.detach().requires_grad_(True)
            logits, _ = forward_from(model, cache.hook, leaf_act)
            weighted = (move_probs(logits).double() * grad_probs[start : start + len(act)]).sum()
            (grad_act,) = torch.autograd.grad(weighted, leaf_act)
        target = torch.zeros_like(act) if ablated is None else ablated.to(act).expand_as(act)
        total += (grad_act.double() * (target - act).double()).sum(dim=(0, *range(2, act.ndim)))
        start += len(act)
    return total.cpu().numpy()
