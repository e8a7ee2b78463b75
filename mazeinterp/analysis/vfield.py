"""Vector fields: the policy's move probabilities with the mouse on every open cell.

A vector field of a maze puts the mouse on each open cell (except the cheese's)
with :meth:`MazeState.with_mouse`, keeping the state's own drawing of the mouse
(plain at an episode's start; see :attr:`MazeState.mouse_reflected` for the
mirrored one), renders those states, and records the five
move probabilities (:class:`mazeinterp.core.model.Move` order: left, down, up,
right, noop). Its arrows are the expected displacement per cell, in the cell
convention of :mod:`mazeinterp.maze` (``(drow, dcol)``, row 0 at the top, so
"up" is ``(-1, 0)``). Interventions apply to every forward pass, so the
same objects steer rollouts, single forward passes and vector fields.

>>> from mazeinterp.core.interventions import AddVector
>>> from mazeinterp.analysis.steering import cheese_vector
>>> cv = cheese_vector(model, state, hook)
>>> vf = vector_field(model, state)
>>> steered = vector_field(model, state, [AddVector(hook, cv, -1.0)])
>>> field_difference(vf, steered).arrows.shape     # (cells, 2): the change of the mean move at each cell
(96, 2)

Also here: :func:`cheese_ward_move` and :func:`decision_square_cheese_prob`, the
per-maze behavioural metric of the research (probability of stepping toward
the cheese at the decision square).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mazeinterp.runtime.defaults import FORWARD_BATCH_SIZE, MAX_STEPS
from mazeinterp.core.finite import check_logits
from mazeinterp.runtime.limits import check_forward_batch
from mazeinterp.core.hooks import intervene, render_states, to_model_input
from mazeinterp.core.interventions import Intervention, validate_interventions
from mazeinterp.maze.grid import Cell, decision_square, path_to_cheese, start_cell
from mazeinterp.core.model import MOVE_DELTAS, MOVES, ImpalaPolicy, Move, move_probs
from mazeinterp.runtime.progress import progress_bar
from mazeinterp.maze.outcomes import (
    DEFAULT_REGION_SIZE,
    EXACT_OUTCOMES,
    OUTCOMES,
    outcome_goals,
    outcome_probabilities_from_arrivals,
    region_goals,
)
from mazeinterp.maze.moves import move_from_delta

if TYPE_CHECKING:
    from mazeinterp.maze.env import StateRenderer
    from mazeinterp.maze.state import MazeState

__all__ = [
    "EXACT_OUTCOMES",
    "VectorField",
    "cheese_ward_move",
    "decision_square_cheese_prob",
    "field_difference",
    "first_arrival_probabilities",
    "mirror_fields",
    "mirrored_after",
    "outcome_goals",
    "outcome_probabilities",
    "outcomes_from_fields",
    "move_probs_for_states",
    "vector_field",
    "field_cells",
    "vector_fields",
]




@dataclass(frozen=True, eq=False)
class VectorField:
    """Move probabilities of the policy with the mouse on each cell of one maze.

    Attributes:
        state: the maze (the mouse's own position in it is irrelevant).
        cells: every open cell except the cheese cell, row-major.
        probs: (k, 5) float array, row i = probabilities of the moves in
            :class:`~mazeinterp.core.model.Move` order with the mouse on ``cells[i]``.
            For a difference of fields (:func:`field_difference`) these are
            differences of probabilities.
    """

    state: MazeState
    cells: tuple[Cell, ...]
    probs: np.ndarray

    def __post_init__(self) -> None:
        probs = np.array(self.probs, dtype=np.float64)
        if probs.shape != (len(self.cells), len(Move)):
            raise ValueError(f"probs must have shape ({len(self.cells)}, {len(Move)}), got {probs.shape}")
        probs.setflags(write=False)
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "cells", tuple((int(r), int(c)) for r, c in self.cells))
        object.__setattr__(self, "_index", {cell: i for i, cell in enumerate(self.cells)})

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def maze_size(self) -> int:
        """Side n of the inner maze."""
        return self.state.maze_size

    @property
    def arrows(self) -> np.ndarray:
        """(k, 2) expected displacement ``(drow, dcol)`` per cell: ``probs @ MOVE_DELTAS``.

        Row 0 is the top, so a field that always goes up has arrows ``(-1, 0)``.
        """
        return self.probs @ MOVE_DELTAS.astype(np.float64)

    def xy_arrows(self) -> np.ndarray:
        """(k, 2) arrows as plot vectors ``(dx, dy)`` = ``(dcol, -drow)`` (y pointing up)."""
        arrows = self.arrows
        return np.stack([arrows[:, 1], -arrows[:, 0]], axis=1)

    def prob_at(self, cell: Cell) -> np.ndarray:
        """(5,) move probabilities with the mouse on ``cell``; KeyError if the cell is not in the field."""
        try:
            return self.probs[self._index[(int(cell[0]), int(cell[1]))]]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"cell {tuple(cell)} is not in this vector field (walls and the cheese cell are "
                           "left out)") from None

    def most_likely_moves(self) -> np.ndarray:
        """(k,) int array: the :class:`Move` with the highest probability at each cell."""
        return self.probs.argmax(axis=1)

    def grid(self) -> np.ndarray:
        """(n, n, 5) array of probs placed on the maze grid; NaN at cells not in the field."""
        n = self.maze_size
        out = np.full((n, n, len(Move)), np.nan)
        for cell, p in zip(self.cells, self.probs):
            out[cell] = p
        return out

    def __repr__(self) -> str:
        return f"VectorField(maze {self.maze_size}×{self.maze_size}, {len(self.cells)} cells, moves={list(MOVES)})"


def field_cells(state: MazeState) -> list[Cell]:
    """The cells of ``state``'s vector field: every open cell except the cheese's, row-major.

    >>> field_cells(state)[:3]
    [(0, 0), (0, 1), (0, 2)]
    """
    cheese = state.cheese
    return [(int(r), int(c)) for r, c in np.argwhere(state.open_cells) if (r, c) != cheese]


def move_probs_for_states(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    interventions: Sequence[Intervention] = (),
    *,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """(N, 5) move probabilities of the policy on each of ``states`` (with ``interventions``).

    ``device``: where to run; None = the model's device (the model is not moved).

    >>> from mazeinterp.core.model import MOVES
    >>> probs = move_probs_for_states(model, [state.with_mouse((0, 0))])   # (1, 5)
    >>> MOVES[int(probs[0].argmax())]
    'right'
    """
    check_forward_batch(batch_size, model.hook_points(), "move_probs_for_states")
    ivs = validate_interventions(model, interventions)  # once: intervene below skips the check
    states = list(states)
    out = np.empty((len(states), len(Move)), dtype=np.float64)
    starts = range(0, len(states), batch_size)
    with intervene(model, ivs), torch.inference_mode():
        for start in progress_bar(starts, total=len(starts), desc="move probs", enabled=progress):
            obs = render_states(states[start : start + batch_size], renderer)
            x = to_model_input(model, obs)
            if device is not None:
                x = x.to(device)
            logits, _ = model(x)
            out[start : start + len(obs)] = move_probs(check_logits(logits, model, ivs)).double().cpu().numpy()
    return out


def vector_fields(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    interventions: Sequence[Intervention] = (),
    *,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> list[VectorField]:
    """Vector fields of several mazes, their cells batched together.

    >>> from mazeinterp.core.interventions import ZeroAblate
    >>> fields = vector_fields(model, states, [ZeroAblate("embedder.relu3_out", channels=[7])])
    >>> len(fields)
    8
    """
    states = list(states)
    cells = [field_cells(s) for s in states]
    moved = [s.with_mouse(c) for s, cs in zip(states, cells) for c in cs]
    probs = move_probs_for_states(model, moved, interventions, renderer=renderer, batch_size=batch_size,
                                  device=device, progress=progress)
    fields, start = [], 0
    for state, cs in zip(states, cells):
        fields.append(VectorField(state, tuple(cs), probs[start : start + len(cs)]))
        start += len(cs)
    return fields


def vector_field(
    model: ImpalaPolicy,
    state: MazeState,
    interventions: Sequence[Intervention] = (),
    *,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    device: str | torch.device | None = None,
) -> VectorField:
    """Vector field of one maze: move probabilities with the mouse on every open non-cheese cell.

    Args:
        model: the policy (run under ``torch.inference_mode``).
        state: the maze.
        interventions: applied at every forward pass (see :func:`mazeinterp.core.hooks.intervene`).
        renderer: a :class:`~mazeinterp.maze.env.StateRenderer` to reuse; default a shared one.
        batch_size: cells per forward pass.
        device: where to run the model; None = the model's device.

    >>> vf = vector_field(model, state)
    >>> vf.prob_at((state.maze_size - 1, 0)).round(3)     # (5,) P(left, down, up, right, noop) at the start
    array([0., 0., 0., 1., 0.])
    """
    return vector_fields(model, [state], interventions, renderer=renderer, batch_size=batch_size,
                         device=device)[0]


def mirror_fields(
    model: ImpalaPolicy,
    state: MazeState,
    interventions: Sequence[Intervention] = (),
    *,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    device: str | torch.device | None = None,
) -> tuple[VectorField, VectorField]:
    """The maze's vector fields with the mouse drawn plain and mirrored, in one batch.

    The pair that :func:`first_arrival_probabilities` needs for exact outcomes
    (``first_arrival_probabilities(plain, goals, reflected_field=mirrored)``).
    """
    plain, mirrored = vector_fields(model, [state.with_mouse_reflected(flag) for flag in (False, True)],
                                    interventions, renderer=renderer, batch_size=batch_size, device=device,
                                    progress=False)
    return plain, mirrored


def field_difference(a: VectorField, b: VectorField) -> VectorField:
    """The field of ``b.probs - a.probs`` (e.g. steered minus original), on the same maze and cells.

    Raises:
        ValueError: the fields are of different mazes or cover different cells.
    """
    if a.state.maze_size != b.state.maze_size or not np.array_equal(a.state.inner_grid, b.state.inner_grid):
        raise ValueError("field_difference needs two vector fields of the same maze (same walls and cheese)")
    if a.cells != b.cells:
        raise ValueError(f"field_difference needs the same cells in both fields ({len(a.cells)} vs {len(b.cells)})")
    return VectorField(a.state, a.cells, b.probs - a.probs)


# --------------------------------------------------------------------------- exact outcome probabilities


def first_arrival_probabilities(field: VectorField, goals: Sequence[Cell], *, start: Cell | None = None,
                                max_steps: int = MAX_STEPS, reflected_field: VectorField | None = None,
                                start_reflected: bool = False) -> np.ndarray:
    """Exact probability that the sampled policy reaches each goal first, within ``max_steps`` steps.

    The policy has no memory, and its observation is fixed by the mouse's cell
    and whether procgen draws the mouse mirrored (:attr:`MazeState.mouse_reflected`:
    set by a rightward move, cleared by a leftward one, kept by the others). A
    walk of the sampled policy is therefore a Markov chain over (cell, mirrored)
    whose transition probabilities are the two vector fields, with the mouse
    drawn plain and mirrored (with whatever interventions made them). Each move
    goes to the neighbouring cell, or stays put against a wall or the maze's
    edge; NOOP stays put. Every goal ends the walk, and so does the cheese
    (procgen ends the episode there), whether or not it is a goal. Cells
    outside the inner maze count as walls (unedited padding).

    Without ``reflected_field`` the chain is over cells only and uses ``field``
    for both drawings: exact for a policy that ignores the mirroring, close for
    one that barely notices it, and half the forward passes.

    Args:
        field: a vector field of real probabilities (not a difference), with the mouse
            drawn plain unless it is the only field.
        goals: cells, each open or the cheese cell.
        start: where the walk begins; default the start cell ``(n-1, 0)``.
        max_steps: step cap (500 is procgen's episode length).
        reflected_field: the same maze's field with the mouse drawn mirrored.
        start_reflected: whether the mouse starts mirrored (episodes start plain).

    Returns:
        (len(goals),) float array; ``1 - sum`` is the probability of reaching
        none of them (timing out, or ending on a cheese that is not a goal).
        For the expected outcome proportions of
        :func:`mazeinterp.rollout.run_rollouts` use :func:`outcome_probabilities`,
        which leaves the top-right cell out of the goals when it lies on the
        way to the cheese, as the rollouts do.

    >>> plain, mirrored = mirror_fields(model, state)
    >>> first_arrival_probabilities(plain, [state.cheese, (0, state.maze_size - 1)],
    ...                             reflected_field=mirrored).round(4)
    array([0.    , 0.0001])
    """
    fields = [field] if reflected_field is None else [field, reflected_field]
    _check_chain_fields(fields)
    state = field.state
    n = state.maze_size
    cheese = state.cheese
    start = start_cell(n) if start is None else (int(start[0]), int(start[1]))
    goals = [(int(g[0]), int(g[1])) for g in goals]
    index: dict[Cell, int] = {cell: i for i, cell in enumerate(field.cells)}
    for goal in goals:
        if goal not in index and goal != cheese:
            raise ValueError(f"goal {goal} is not an open cell of this {n}×{n} maze")
    if start not in index and start != cheese:
        raise ValueError(f"start {start} is not an open cell of this {n}×{n} maze")
    if start in goals:
        out = np.zeros(len(goals))
        out[goals.index(start)] = 1.0
        return out
    if start == cheese:
        return np.zeros(len(goals))  # the episode is over before the first step
    k = len(field.cells)
    transient = k * len(fields)  # row f·k + i: the mouse on cell i, drawn plain (f = 0) or mirrored (f = 1)
    # Columns: the transient states, then one absorbing column per goal, then one for a non-goal cheese.
    absorbing = {goal: transient + j for j, goal in enumerate(goals)}
    if cheese is not None and cheese not in absorbing:
        absorbing[cheese] = transient + len(goals)
    transition = np.zeros((transient, transient + len(goals) + 1))
    for f, drawn in enumerate(fields):
        # float32 softmax rows sum to 1 only within ~1e-7; renormalise so that no probability exceeds 1
        probs = np.clip(drawn.probs, 0.0, None)
        probs = probs / probs.sum(axis=1, keepdims=True)
        for i, cell in enumerate(field.cells):
            if cell in absorbing:
                continue  # never left: mass arriving here went to its absorbing column
            for move, p in enumerate(probs[i]):
                r, c = cell[0] + int(MOVE_DELTAS[move][0]), cell[1] + int(MOVE_DELTAS[move][1])
                nxt = (r, c) if 0 <= r < n and 0 <= c < n and state.open_cells[r, c] else cell
                after = int(mirrored_after(move, bool(f))) if len(fields) == 2 else 0
                transition[f * k + i, absorbing.get(nxt, after * k + index.get(nxt, i))] += p
    mass = np.zeros(transient)
    mass[(int(start_reflected) if len(fields) == 2 else 0) * k + index[start]] = 1.0
    arrived = np.zeros(len(goals))
    for _ in range(max_steps):
        step = mass @ transition
        arrived += step[transient : transient + len(goals)]
        mass = step[:transient]
    return np.clip(arrived, 0.0, 1.0)


def mirrored_after(move: Move | int, mirrored: bool) -> bool:
    """Whether procgen draws the mouse mirrored after ``move``: RIGHT sets it, LEFT clears it, the rest keep it.

    This holds whether or not a wall stops the move (see :attr:`MazeState.mouse_reflected`).
    """
    return True if move == Move.RIGHT else False if move == Move.LEFT else bool(mirrored)


def _check_chain_fields(fields: Sequence[VectorField]) -> None:
    if any((f.probs < -1e-9).any() for f in fields):
        raise ValueError("first_arrival_probabilities needs move probabilities, not a difference of fields")
    if len(fields) == 2:
        plain, mirrored = fields
        if plain.cells != mirrored.cells or not np.array_equal(plain.state.inner_grid, mirrored.state.inner_grid):
            raise ValueError("reflected_field must be a field of the same maze (same walls, cheese and cells)")
        if plain.state.mouse_reflected or not mirrored.state.mouse_reflected:
            raise ValueError("field must draw the mouse plain and reflected_field mirrored "
                             "(the pair that mirror_fields returns)")


def outcome_probabilities(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    interventions: Sequence[Intervention] | Callable[[int], Sequence[Intervention]] = (),
    *,
    max_steps: int = MAX_STEPS,
    mirror: bool = True,
    region_size: int | None = DEFAULT_REGION_SIZE,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Exact P(cheese), P(top_right), P(neither) and P(region first) of a sampled rollout from each maze's mouse cell.

    The expected outcome proportions of :func:`mazeinterp.rollout.run_rollouts`
    (same rules, from :mod:`mazeinterp.maze.outcomes`: the top-right cell ends
    the walk unless it lies on the path from the mouse to the cheese),
    computed with :func:`first_arrival_probabilities` from each maze's vector
    fields instead of sampled: no Monte Carlo noise, and two forward passes
    per open cell (the mouse drawn plain and mirrored).

    **P(region first)** is the probability that, within ``max_steps`` steps,
    the mouse stands on an open cell of the top-right ``region_size``²
    corner other than the cheese cell before it reaches the cheese (a mouse
    that starts there counts): the expected fraction of rollouts with
    :attr:`Episode.region_first <mazeinterp.rollout.Episode.region_first>`
    (``RolloutConfig(region_size=...)``). The top-right cell belongs to the
    region, so it is at least P(top_right); it is not exclusive with the
    three outcomes.

    Args:
        interventions: applied to every maze, or a function ``i -> interventions``
            for maze ``i`` (per-maze steering vectors).
        mirror: follow the mouse's mirrored drawing exactly (default). False
            uses the plain drawing throughout: half the forward passes, and
            exact only for a policy that ignores the mirroring.
        region_size: side k of the top-right region; None leaves the fourth column out.

    Returns:
        (N, 4) float array, columns in :data:`EXACT_OUTCOMES` order (N, 3 with
        ``region_size=None``); the first three columns of a row sum to 1.

    >>> p = outcome_probabilities(model, states[:2])
    >>> p.shape, bool(np.allclose(p[:, :3].sum(1), 1)), bool((p[:, 3] >= p[:, 1] - 1e-9).all())
    ((2, 4), True, True)
    """
    states = list(states)
    drawings = [False, True] if mirror else [False]
    drawn = [s.with_mouse_reflected(flag) for s in states for flag in drawings]  # maze-major
    if callable(interventions):
        per_maze = interventions
        bar = progress_bar(drawn, total=len(drawn), desc="outcome probabilities", enabled=progress)
        fields = [vector_field(model, s, per_maze(i // len(drawings)), renderer=renderer, batch_size=batch_size,
                               device=device)
                  for i, s in enumerate(bar)]
    else:
        fields = vector_fields(model, drawn, interventions, renderer=renderer, batch_size=batch_size,
                               device=device, progress=progress)
    return outcomes_from_fields(states, fields, mirror=mirror, max_steps=max_steps, region_size=region_size)


def outcomes_from_fields(states: Sequence[MazeState], fields: Sequence[VectorField], *, mirror: bool = True,
                         max_steps: int = MAX_STEPS, region_size: int | None = DEFAULT_REGION_SIZE) -> np.ndarray:
    """The (N, 4) (or (N, 3)) exact outcomes of :func:`outcome_probabilities` from fields already computed.

    ``fields``: maze-major, each maze's field with the mouse drawn plain, then (``mirror``)
    mirrored, as :func:`vector_fields` returns them for
    ``[s.with_mouse_reflected(f) for s in states for f in (False, True)]``.
    """
    drawings = 2 if mirror else 1
    if len(fields) != drawings * len(states):
        raise ValueError(f"expected {drawings} field(s) per maze for {len(states)} mazes, got {len(fields)}")
    out = np.zeros((len(states), len(OUTCOMES) + (region_size is not None)))
    for i, state in enumerate(states):
        own = fields[i * drawings : (i + 1) * drawings]
        cheese = state.cheese
        chain: dict[str, Any] = {"start": state.mouse, "max_steps": max_steps, "reflected_field": own[1] if mirror else None,
                 "start_reflected": state.mouse_reflected and mirror}
        goals = outcome_goals(state)
        arrived = first_arrival_probabilities(own[0], goals, **chain)
        out[i, :3] = outcome_probabilities_from_arrivals(arrived, goals, cheese)
        if region_size is not None:
            # the cheese ends the walk whether or not it is a goal, so region cells reached first are the sum
            region = region_goals(state.open_cells, cheese, region_size)
            out[i, 3] = min(1.0, float(first_arrival_probabilities(own[0], region, **chain).sum()))
    return out




# --------------------------------------------------------------------------- decision-square metric


def cheese_ward_move(state: MazeState, definition: str = "mazeinterp") -> Move | None:
    """The move from the decision square one step along the path to the cheese; None without one.

    None when the maze has no cheese or no decision square (under
    ``definition``, see :func:`mazeinterp.maze.grid.decision_square`: with the
    default, when the cheese lies on the path to the top-right cell, or the
    top-right cell on the cheese path).

    >>> cheese_ward_move(state)          # level seed 0: from the decision square (6, 4), left
    <Move.LEFT: 0>
    """
    cheese = state.cheese
    if cheese is None:
        return None
    grid = state.open_cells
    ds = decision_square(grid, cheese, definition)
    if ds is None:
        return None
    path = path_to_cheese(grid, cheese)
    nxt = path[path.index(ds) + 1]
    return move_from_delta((nxt[0] - ds[0], nxt[1] - ds[1]))


def decision_square_cheese_prob(
    model: ImpalaPolicy,
    states: Sequence[MazeState],
    interventions: Sequence[Intervention] = (),
    *,
    renderer: StateRenderer | None = None,
    batch_size: int = FORWARD_BATCH_SIZE,
    device: str | torch.device | None = None,
    definition: str = "mazeinterp",
) -> np.ndarray:
    """Per maze: P(cheese-ward move) with the mouse on the decision square; NaN where there is none.

    ``definition``: which decision square (:func:`mazeinterp.maze.grid.decision_square`).

    Returns an (N,) float array. The research's per-maze measure of cheese
    seeking; compare it with and without an intervention::

        >>> from mazeinterp.core.interventions import AddVector
        >>> from mazeinterp.analysis.steering import mean_cheese_vector
        >>> cv = mean_cheese_vector(model, states, hook)
        >>> base = decision_square_cheese_prob(model, states)
        >>> steer = decision_square_cheese_prob(model, states, [AddVector(hook, cv, -1)])
        >>> round(float(np.nanmean(steer - base)), 3)
        -0.008
    """
    states = list(states)
    out = np.full(len(states), np.nan)
    rows, moved, moves = [], [], []
    for i, state in enumerate(states):
        move = cheese_ward_move(state, definition)
        if move is None:
            continue
        assert state.cheese is not None  # a cheese-ward move needs a cheese and a decision square
        ds = decision_square(state.open_cells, state.cheese, definition)
        assert ds is not None
        rows.append(i)
        moved.append(state.with_mouse(ds))
        moves.append(int(move))
    if rows:
        probs = move_probs_for_states(model, moved, interventions, renderer=renderer, batch_size=batch_size,
                                      device=device)
        out[rows] = probs[np.arange(len(rows)), moves]
    return out
