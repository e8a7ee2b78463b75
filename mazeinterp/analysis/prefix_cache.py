"""Prefix caching: the activations up to one hook point, computed once per maze, reused by every edit there.

Exact outcomes (:func:`mazeinterp.analysis.vfield.outcome_probabilities`) need the
policy's move probabilities with the mouse on every open cell of a maze, drawn
plain and mirrored. When every edit of an experiment sits at one hook point H
(an ablation of each channel of a layer, a steering vector), the network up to
H sees the same input under every condition: :func:`build_prefix_cache` runs
that part once, and :func:`prefix_outcome_probabilities` runs only the rest of
the network (:func:`mazeinterp.core.hooks.forward_from`) for each condition.

The cells are batched exactly as :func:`~mazeinterp.analysis.vfield.outcome_probabilities`
batches them for the same mazes, so the numbers equal that full pass bit for bit
(also for edits that depend on a cell's position in its batch, such as
:class:`~mazeinterp.core.interventions.ResampleAblate`).

>>> from mazeinterp.core.interventions import ZeroAblate
>>> hook = "embedder.block2.res1.resadd_out"
>>> p = prefix_outcome_probabilities(model, states[:2], hook, [[], [ZeroAblate(hook, channels=[3])]])
>>> p.shape                                   # (conditions, mazes, 4 outcomes)
(2, 2, 4)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mazeinterp.runtime.defaults import FORWARD_BATCH_SIZE, MAX_STEPS
from mazeinterp.core.hooks import activations, can_forward_from, forward_from, intervene
from mazeinterp.core.interventions import Intervention, ValidatedInterventions, validate_interventions
from mazeinterp.maze.outcomes import DEFAULT_REGION_SIZE
from mazeinterp.core.model import ImpalaPolicy, move_probs
from mazeinterp.runtime.progress import progress_bar
from mazeinterp.analysis.vfield import VectorField, field_cells, outcomes_from_fields

if TYPE_CHECKING:
    from mazeinterp.maze.env import StateRenderer
    from mazeinterp.maze.state import MazeState

__all__ = ["PrefixCache", "build_prefix_cache", "cached_move_probs", "hooks_after", "prefix_outcome_probabilities"]


@dataclass(frozen=True, eq=False)
class PrefixCache:
    """The activations at hook point ``hook`` with the mouse on every field cell of some mazes.

    Attributes:
        hook: the hook point whose activations are held (unedited).
        states: the mazes.
        drawn: maze-major, each maze with the mouse drawn plain, then (``mirror``) mirrored.
        cells: per drawn state, its field cells (:func:`mazeinterp.analysis.vfield.field_cells`).
        acts: (sum of len(cells), C, H, W) activations, drawn states in order, each one's cells in order.
        mirror: whether the mirrored drawing is included.
        batch_size: cells per forward pass, as in the full pass these numbers reproduce.
    """

    hook: str
    states: tuple[MazeState, ...]
    drawn: tuple[MazeState, ...]
    cells: tuple[tuple[tuple[int, int], ...], ...]
    acts: Tensor
    mirror: bool
    batch_size: int

    def batches(self) -> Iterator[Tensor]:
        """The cached activations in the forward passes' batches: (≤ batch_size, C, H, W) each."""
        for start in range(0, self.acts.shape[0], self.batch_size):
            yield self.acts[start : start + self.batch_size]

    def fields(self, probs: np.ndarray) -> list[VectorField]:
        """Vector fields of the drawn states from (len(acts), 5) move probabilities in cache order."""
        out, start = [], 0
        for state, cells in zip(self.drawn, self.cells):
            out.append(VectorField(state, cells, probs[start : start + len(cells)]))
            start += len(cells)
        return out


def build_prefix_cache(model: ImpalaPolicy, states: Sequence[MazeState], hook: str, *, mirror: bool = True,
                       renderer: StateRenderer | None = None,
                       batch_size: int = FORWARD_BATCH_SIZE) -> PrefixCache:
    """Run the network up to ``hook`` once for every field cell of ``states`` (both drawings): → :class:`PrefixCache`.

    The activations stay on the model's device. Memory: one activation per cell
    and drawing, 128 KB for a 128×16×16 map: build one maze (or a few) at a time.

    Raises:
        ValueError: the forward pass cannot resume from ``hook`` (inside a residual branch).
    """
    if not can_forward_from(hook):
        model.module_for_hook(hook)  # an unknown name gets its own error first
        raise ValueError(f"cannot cache a prefix at {hook!r}: the forward pass cannot resume there "
                         "(it lies inside a residual branch)")
    states = tuple(states)
    drawn = tuple(s.with_mouse_reflected(flag) for s in states for flag in ((False, True) if mirror else (False,)))
    cells = tuple(tuple(field_cells(s)) for s in drawn)
    moved = [s.with_mouse(c) for s, cs in zip(drawn, cells) for c in cs]
    device = next(model.parameters()).device
    acts = activations(model, hook, moved, renderer=renderer, batch_size=batch_size, progress=False).to(device)
    return PrefixCache(hook, states, drawn, cells, acts, mirror, batch_size)


def hooks_after(model: ImpalaPolicy, hook: str) -> set[str]:
    """Hook points that :func:`~mazeinterp.core.hooks.forward_from` ``(model, hook, …)`` still runs (their edits apply).

    The modules after ``hook`` on the main path, their submodules, and the two heads.
    """
    from mazeinterp.core.hooks import modules_after

    if not can_forward_from(hook):
        return set()
    names = {"fc_policy_out", "fc_value_out"}
    for path, module in modules_after(model, hook):
        names.add(f"{path}_out")
        names.update(f"{path}.{sub}_out" for sub, _ in module.named_modules() if sub)
    return names & set(model.hook_points())


def _split(model: ImpalaPolicy, hook: str, condition: Sequence[Intervention]) -> tuple[ValidatedInterventions,
                                                                                       ValidatedInterventions]:
    """(edits at ``hook``, edits later in the network) of one condition, validated; ValueError for any other edit.

    A condition already validated for ``model`` is not checked again.
    """
    ivs = validate_interventions(model, condition)
    later = hooks_after(model, hook)
    for iv in ivs:
        if iv.hook != hook and iv.hook not in later:
            raise ValueError(f"{iv}: a prefix cached at {hook!r} can only replay edits at that hook point "
                             "or after it on the main path")
    return ivs.select(lambda iv: iv.hook == hook), ivs.select(lambda iv: iv.hook != hook)


def cached_move_probs(model: ImpalaPolicy, cache: PrefixCache,
                      condition: Sequence[Intervention] = ()) -> np.ndarray:
    """(len(cache.acts), 5) move probabilities under ``condition``, running only the network after the hook."""
    at_hook, later = _split(model, cache.hook, condition)
    out = np.empty((cache.acts.shape[0], 5), dtype=np.float64)
    start = 0
    with intervene(model, later), torch.inference_mode():
        for act in cache.batches():
            for iv in at_hook:
                act = iv(act)
            logits, _ = forward_from(model, cache.hook, act)
            out[start : start + len(act)] = move_probs(logits).double().cpu().numpy()
            start += len(act)
    return out


def prefix_outcome_probabilities(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    hook: str,
    conditions: Sequence[Sequence[Intervention]],
    *,
    max_steps: int = MAX_STEPS,
    mirror: bool = True,
    region_size: int | None = DEFAULT_REGION_SIZE,
    mazes_per_cache: int = 1,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    progress: bool | None = None,
) -> np.ndarray:
    """Exact outcomes of each maze under each condition, the network up to ``hook`` run once per maze.

    Args:
        model: the policy.
        states: the mazes.
        hook: where every condition's first edit sits (it may add edits after it on the main path).
        conditions: each a list of interventions (``[]`` is the unedited policy).
        max_steps, mirror, region_size: as in :func:`mazeinterp.analysis.vfield.outcome_probabilities`.
        mazes_per_cache: mazes whose prefix is held at once (memory against batch filling).
        batch_size: cells per forward pass.

    Returns:
        (len(conditions), N, 4) float array (…, 3 with ``region_size=None``), columns in
        :data:`mazeinterp.analysis.vfield.EXACT_OUTCOMES` order. Row ``[j, i]`` equals
        ``outcome_probabilities(model, group, conditions[j])`` for the group of
        ``mazes_per_cache`` mazes that holds maze ``i``, bit for bit.

    Raises:
        ValueError: an edit before ``hook``, a hook the pass cannot resume from, ``mazes_per_cache < 1``.
    """
    if mazes_per_cache < 1:
        raise ValueError(f"mazes_per_cache must be at least 1, got {mazes_per_cache}")
    states = list(states)
    conditions = [validate_interventions(model, c) for c in conditions]  # once, before any forward pass
    for condition in conditions:
        _split(model, hook, condition)  # refuse an edit the prefix cannot replay, before any forward pass
    width = 4 if region_size is not None else 3
    out = np.zeros((len(conditions), len(states), width))
    groups = range(0, len(states), mazes_per_cache)
    for start in progress_bar(groups, total=len(groups), desc="prefix outcomes", enabled=progress):
        group = states[start : start + mazes_per_cache]
        cache = build_prefix_cache(model, group, hook, mirror=mirror, renderer=renderer, batch_size=batch_size)
        for j, condition in enumerate(conditions):
            fields = cache.fields(cached_move_probs(model, cache, condition))
            out[j, start : start + len(group)] = outcomes_from_fields(group, fields, mirror=mirror,
                                                                      max_steps=max_steps, region_size=region_size)
    return out
