"""The absorbing chain of exact outcomes, solved in torch so that autograd reaches the move probabilities.

:func:`mazeinterp.analysis.vfield.first_arrival_probabilities` solves the walk of the
sampled policy over (cell, drawing) in numpy. Here the same chain is split in
two: :func:`chain_layout` (numpy, no torch tensors) records where each move
from each transient state leads, and :func:`first_arrival_torch` builds the
transition matrix from a tensor of move probabilities and runs the capped
walk, differentiably. In float64 the two agree to rounding (~1e-12). Which
goals decide a rollout's outcome is :func:`mazeinterp.maze.outcomes.outcome_goals`.

>>> from mazeinterp.analysis.vfield import mirror_fields
>>> from mazeinterp.maze.outcomes import outcome_goals
>>> plain, mirrored = mirror_fields(model, state)
>>> layout = chain_layout(state, plain.cells, outcome_goals(state))
>>> probs = torch.tensor(np.concatenate([plain.probs, mirrored.probs]), requires_grad=True)
>>> first_arrival_torch(layout, probs).shape          # (goals,): P(cheese), P(top-right)
torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mazeinterp.maze.grid import Cell, start_cell
from mazeinterp.runtime.defaults import MAX_STEPS
from mazeinterp.core.model import MOVE_DELTAS, Move
from mazeinterp.analysis.vfield import mirrored_after

if TYPE_CHECKING:
    from mazeinterp.maze.state import MazeState

__all__ = ["ChainLayout", "chain_layout", "first_arrival_torch"]


@dataclass(frozen=True, eq=False)
class ChainLayout:
    """Where each move leads in the chain of one maze, its goals and its start.

    Attributes:
        n_transient: transient states, ``drawings × len(cells)`` (row ``f·k + i``: cell i, drawing f).
        n_goals: absorbing goal columns, after the transient ones; one more column takes a non-goal cheese.
        dest: (n_transient, 5) int array: the column each move leads to; -1 on the rows of absorbing cells.
        start: row of the start state, or -1 when the walk never starts (see ``fixed``).
        fixed: (n_goals,) result when the start is a goal or the cheese; None otherwise.
    """

    n_transient: int
    n_goals: int
    dest: np.ndarray
    start: int
    fixed: np.ndarray | None


def chain_layout(state: MazeState, cells: Sequence[Cell], goals: Sequence[Cell], *, mirror: bool = True,
                 start: Cell | None = None, start_reflected: bool = False) -> ChainLayout:
    """The :class:`ChainLayout` of ``state`` over field ``cells`` with absorbing ``goals``.

    Same rules as :func:`mazeinterp.analysis.vfield.first_arrival_probabilities`: a move
    into a wall or off the maze stays put, NOOP stays put, RIGHT sets the
    mirrored drawing and LEFT clears it, every goal and the cheese end the walk.
    ``start`` defaults to the start cell ``(n-1, 0)``.

    Raises:
        ValueError: the field cells are not distinct open cells, or a goal or the start is
            neither a field cell nor the cheese.
    """
    n = state.maze_size
    cheese = state.cheese
    cells = [(int(r), int(c)) for r, c in cells]
    index = {cell: i for i, cell in enumerate(cells)}
    if len(index) < len(cells) or index.keys() - {(int(r), int(c)) for r, c in np.argwhere(state.open_cells)}:
        raise ValueError(f"the field cells must be distinct open cells of this {n}×{n} maze")
    goals = [(int(g[0]), int(g[1])) for g in goals]
    start = start_cell(n) if start is None else (int(start[0]), int(start[1]))
    for cell, what in [*((g, "goal") for g in goals), (start, "start")]:
        if cell not in index and cell != cheese:
            raise ValueError(f"{what} {cell} is not an open cell of this {n}×{n} maze")
    drawings = 2 if mirror else 1
    k = len(cells)
    transient = drawings * k
    fixed = None
    if start in goals:
        fixed = np.zeros(len(goals))
        fixed[goals.index(start)] = 1.0
    elif start == cheese:
        fixed = np.zeros(len(goals))
    absorbing = {goal: transient + j for j, goal in enumerate(goals)}
    if cheese is not None and cheese not in absorbing:
        absorbing[cheese] = transient + len(goals)
    dest = np.full((transient, len(Move)), -1, dtype=np.int64)
    for f in range(drawings):
        for i, cell in enumerate(cells):
            if cell in absorbing:
                continue
            for move in range(len(Move)):
                # a wall or a cell off the maze is no state of the chain: the move stays put (index.get)
                nxt = (cell[0] + int(MOVE_DELTAS[move][0]), cell[1] + int(MOVE_DELTAS[move][1]))
                after = int(mirrored_after(move, bool(f))) if mirror else 0
                dest[f * k + i, move] = absorbing.get(nxt, after * k + index.get(nxt, i))
    first = -1 if fixed is not None else (int(start_reflected) if mirror else 0) * k + index[start]
    return ChainLayout(transient, len(goals), dest, first, fixed)


def first_arrival_torch(layout: ChainLayout, probs: Tensor, max_steps: int = MAX_STEPS) -> Tensor:
    """Probability of reaching each goal first within ``max_steps`` steps, differentiable in ``probs``.

    Args:
        layout: the chain (:func:`chain_layout`).
        probs: (n_transient, 5) move probabilities, the plain drawing's cells then the mirrored
            drawing's (use float64 to match the numpy chain to rounding).
        max_steps: the step cap.

    Returns:
        (n_goals,) tensor of the dtype of ``probs``; it carries ``probs``' gradient.

    Raises:
        ValueError: ``probs`` does not have the layout's shape.
    """
    if tuple(probs.shape) != (layout.n_transient, len(Move)):
        raise ValueError(f"probs must have shape ({layout.n_transient}, {len(Move)}), got {tuple(probs.shape)}")
    if layout.fixed is not None:
        return torch.as_tensor(layout.fixed, dtype=probs.dtype, device=probs.device) + 0.0 * probs.sum()
    # as the numpy chain does: float32 softmax rows sum to 1 only within ~1e-7
    probs = probs.clamp(min=0.0)
    probs = probs / probs.sum(dim=1, keepdim=True)
    dest = torch.as_tensor(layout.dest, device=probs.device)
    live = dest >= 0
    rows = torch.arange(layout.n_transient, device=probs.device).unsqueeze(1).expand_as(dest)
    width = layout.n_transient + layout.n_goals + 1
    transition = torch.zeros(layout.n_transient, width, dtype=probs.dtype, device=probs.device)
    transition = transition.index_put((rows[live], dest[live]), probs[live], accumulate=True)
    mass = torch.zeros(layout.n_transient, dtype=probs.dtype, device=probs.device)
    mass[layout.start] = 1.0
    arrived = torch.zeros(layout.n_goals, dtype=probs.dtype, device=probs.device)
    for _ in range(max_steps):
        step = mass @ transition
        arrived = arrived + step[layout.n_transient : layout.n_transient + layout.n_goals]
        mass = step[: layout.n_transient]
    return arrived.clamp(0.0, 1.0)
