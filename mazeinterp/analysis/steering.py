"""Steering recipes: cheese vectors, top-right vectors, retargeting.

* **Cheese vector** (:func:`cheese_vector`): activations at a layer (default
  ``embedder.block2.res1.resadd_out``) of a maze with its cheese minus the same
  maze without it, mouse at the start cell; applied as
  ``AddVector(hook, vector, -1.0)`` at every forward pass it removes, at that
  layer, exactly what the cheese added.
* **Mean cheese vector** (:func:`mean_cheese_vector`): the mean of those
  differences over many mazes (mean difference of contrast pairs), a general
  direction; :func:`probe_cheese_vector` builds the direction from a logistic
  probe instead, so the two can be compared.
* **Top-right vector** (:func:`top_right_vector`): a maze with a path opened
  to the top-right (:func:`open_top_right_path`) minus the original maze.
* **Retargeting** (:func:`retarget`): clamp cheese-tracking channels to a large
  value at the activation pixel of a target cell;
  :func:`path_probability` measures how probable the path to that target is.

>>> from mazeinterp.core.interventions import AddVector
>>> from mazeinterp.analysis.vfield import vector_field
>>> cv = cheese_vector(model, state)
>>> steer = AddVector("embedder.block2.res1.resadd_out", cv, -1.0)
>>> vector_field(model, state, [steer])
VectorField(maze 13×13, 96 cells, ...)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import Tensor

from mazeinterp.runtime.defaults import DEFAULT_STEERING_HOOK, FORWARD_BATCH_SIZE, RETARGET_VALUE
from mazeinterp.core.hooks import activations
from mazeinterp.core.interventions import Clamp, Intervention
from mazeinterp.maze.grid import Cell, shortest_path, start_cell
from mazeinterp.maze.pixels import cell_to_pixel, cell_to_pixel_region
from mazeinterp.maze.state import EMPTY, MazeState
from mazeinterp.maze.moves import move_from_delta
from mazeinterp.core.model import ImpalaPolicy

if TYPE_CHECKING:
    from mazeinterp.maze.env import StateRenderer

__all__ = [
    "DEFAULT_STEERING_HOOK",
    "cheese_vector",
    "cheese_vectors",
    "hook_resolution",
    "mean_cheese_vector",
    "open_top_right_path",
    "path_probability",
    "probe_cheese_vector",
    "retarget",
    "top_right_vector",
    "top_right_vectors",
]



def hook_resolution(hook: str) -> int | None:
    """Side of the activation maps at hook point ``hook`` (64, 32, 16 or 8), from its name alone.

    None for vector hook points (``flatten_out``, ``fc_out``, …).

    >>> hook_resolution("embedder.block2.res1.resadd_out"), hook_resolution("embedder.block3.conv_out")
    (16, 16)
    """
    if hook == "embedder.relu3_out":
        return 8
    match = re.fullmatch(r"embedder\.block([123])(\.(\w+)(\.\w+)?)?_out", hook)
    if not match:
        return None
    block = int(match.group(1))
    before_pool = match.group(3) == "conv" and match.group(4) is None
    return 64 // 2 ** (block - 1) if before_pool else 64 // 2**block


def _with_mouse_at_start(state: MazeState) -> MazeState:
    start = start_cell(state.maze_size)
    return state if state.mouse == start else state.with_mouse(start)


def _contrast_pairs(states: Sequence[MazeState]) -> list[MazeState]:
    """[with cheese, without cheese] for each state, mouse at the start; ValueError without cheese."""
    out = []
    for i, state in enumerate(states):
        if state.cheese is None:
            raise ValueError(f"state {i} has no cheese: a cheese vector needs a maze with its cheese")
        state = _with_mouse_at_start(state)
        out += [state, state.without_cheese()]
    return out


def _pair_activations(model: ImpalaPolicy, states: Sequence[MazeState], hook: str,
                      renderer: StateRenderer | None, batch_size: int,
                      progress: bool | None = None) -> tuple[Tensor, Tensor]:
    pairs = _contrast_pairs(states)
    acts = activations(model, hook, pairs, renderer=renderer, batch_size=batch_size, progress=progress)
    return acts[0::2], acts[1::2]


def cheese_vector(model: ImpalaPolicy, state: MazeState, hook: str = DEFAULT_STEERING_HOOK, *,
                  renderer: StateRenderer | None = None) -> Tensor:
    """Activations at ``hook`` with the cheese minus without it, mouse at the start cell: (C, H, W).

    Applying ``AddVector(hook, cheese_vector(model, state, hook), -1.0)`` to the
    cheese maze reproduces the no-cheese activations at ``hook`` (up to float
    rounding).

    >>> cv = cheese_vector(model, state)
    >>> cv.shape                        # 128 channels at scale 4; the shipped agent has scale 1
    torch.Size([32, 16, 16])
    """
    return cheese_vectors(model, [state], hook, renderer=renderer, batch_size=2, progress=False)[0]  # no bar


def cheese_vectors(model: ImpalaPolicy, states: Sequence[MazeState], hook: str = DEFAULT_STEERING_HOOK, *,
                   renderer: StateRenderer | None = None, batch_size: int = FORWARD_BATCH_SIZE,
                   progress: bool | None = None) -> Tensor:
    """Every state's :func:`cheese_vector`, from batched forward passes: (N, C, H, W).

    Raises ValueError for an empty list or a state without its cheese (naming its index).
    The rows equal per-state :func:`cheese_vector` calls up to float rounding
    (exactly with ``batch_size=2``).

    >>> cheese_vectors(model, states[:8]).shape
    torch.Size([8, 32, 16, 16])
    """
    states = list(states)
    if not states:
        raise ValueError("cheese vectors need at least one state")
    with_cheese, without = _pair_activations(model, states, hook, renderer, batch_size, progress)
    return with_cheese - without


def mean_cheese_vector(model: ImpalaPolicy, states: Sequence[MazeState], hook: str = DEFAULT_STEERING_HOOK, *,
                       renderer: StateRenderer | None = None, batch_size: int = FORWARD_BATCH_SIZE) -> Tensor:
    """Mean over ``states`` of their cheese vectors (mean difference of contrast pairs): (C, H, W).

    >>> general = mean_cheese_vector(model, states[:8])
    """
    return cheese_vectors(model, states, hook, renderer=renderer, batch_size=batch_size).mean(0)


def probe_cheese_vector(model: ImpalaPolicy, states: Sequence[MazeState], hook: str = DEFAULT_STEERING_HOOK, *,
                        renderer: StateRenderer | None = None, batch_size: int = FORWARD_BATCH_SIZE,
                        C: float = 1.0,
                        scale: Literal["norm", "projection", "unit"] = "norm", seed: int = 0) -> Tensor:
    """Cheese direction from a linear probe, for comparison with :func:`mean_cheese_vector`: (C, H, W).

    Fits scikit-learn's ``LogisticRegression`` (L2, inverse strength ``C``) to
    tell the flattened activations of each maze with its cheese (label 1) from
    the same maze without it (label 0), mouse at the start, on features
    standardised to zero mean and unit variance; the weight vector is mapped
    back to raw activation units (``w / std``). The fit runs in the span of
    the 2N activation vectors, which gives the same solution as a fit on all
    C·H·W features, much faster. The probe's weight
    vector ``w`` is the direction; its sign is chosen so that ``w`` points from
    no-cheese to cheese. ``scale`` sets its length so that it can be used like
    the mean difference ``d`` with ``AddVector(hook, v, -1.0)``:

    * ``"norm"`` (default): ``‖v‖ = ‖d‖``;
    * ``"projection"``: ``v`` is the component of ``d`` along ``w``;
    * ``"unit"``: ``‖v‖ = 1``.

    >>> pv = probe_cheese_vector(model, states[:8])
    >>> md = mean_cheese_vector(model, states[:8])
    >>> round(float(torch.nn.functional.cosine_similarity(pv.flatten(), md.flatten(), 0)), 2)
    0.16
    """
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    states = list(states)
    if len(states) < 2:
        raise ValueError("probe_cheese_vector needs at least two states")
    with_cheese, without = _pair_activations(model, states, hook, renderer, batch_size)
    shape = with_cheese.shape[1:]
    x = torch.cat([with_cheese, without]).flatten(1).double()
    y = np.r_[np.ones(len(states)), np.zeros(len(states))]
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-12] = 1.0
    xs = (x - mean) / std
    # The L2-penalised optimum lies in the row span of xs (representer theorem): fit on the
    # coordinates z = xs V (V: orthonormal basis of that span, from the 2N × 2N Gram matrix) and map
    # back with V. Same solution as a fit on all C·H·W features, much faster.
    evals, evecs = torch.linalg.eigh(xs @ xs.T)
    keep = evals > evals.max() * 1e-10
    sing = evals[keep].sqrt()
    basis = (xs.T @ evecs[:, keep]) / sing  # (features, r), orthonormal columns
    z = evecs[:, keep] * sing  # = xs @ basis
    with threadpool_limits(1):
        probe = LogisticRegression(C=C, max_iter=5000, random_state=seed).fit(z.numpy(), y)
    w = (basis @ torch.from_numpy(probe.coef_[0]).double()) / std  # direction in raw activation space
    d = (with_cheese - without).mean(0).flatten().double()
    unit = w / w.norm().clamp_min(1e-12)
    if torch.dot(unit, d) < 0:
        unit = -unit
    if scale == "norm":
        v = unit * d.norm()
    elif scale == "projection":
        v = unit * torch.dot(unit, d)
    elif scale == "unit":
        v = unit
    else:
        raise ValueError(f"scale must be 'norm', 'projection' or 'unit', got {scale!r}")
    return v.float().view(shape)


# --------------------------------------------------------------------------- top-right vector


def open_top_right_path(state: MazeState,
                        route: Literal["auto", "padding", "direct"] = "auto") -> MazeState:
    """A copy of ``state`` with a path opened toward the top-right; walls become empty cells.

    ``route="padding"`` (the published recipe): an L-shaped corridor through the
    padding walls, from the inner top-right cell ``(0, n-1)`` straight up to
    the top row of the 25×25 world, then right along that row to the world's
    top-right corner. The reachable region then extends to the absolute
    top-right of the picture. A 25×25 maze has no padding: returned unchanged.

    ``route="direct"``: inside the inner maze, every cell of the left column
    ``(r, 0)`` and of the top row ``(0, c)`` is opened, giving a straight path
    from the start ``(n-1, 0)`` up to ``(0, 0)`` and right to ``(0, n-1)``. The
    cheese cell, if on that route, is left as it is.

    ``route="auto"`` (the default): ``"padding"`` when the maze has padding,
    ``"direct"`` for a 25×25 maze, so that every maze gets a path.

    The mouse and the cheese are not moved.
    """
    n = state.maze_size
    if route == "auto":
        route = "padding" if state.margin > 0 else "direct"
    if route == "direct":
        for cell in [(r, 0) for r in range(n)] + [(0, c) for c in range(1, n)]:
            if not state.open_cells[cell]:
                state = state.with_open(cell)
        return state
    if route != "padding":
        raise ValueError(f"route must be 'auto', 'padding' or 'direct', got {route!r}")
    margin = state.margin
    if margin == 0:
        return state
    top_first = np.array(state.world_grid)  # row 0 at the top
    col = margin + n - 1
    top_first[0:margin, col] = EMPTY  # up from the inner top-right cell to the world's top row
    top_first[0, col:] = EMPTY  # then right to the world's top-right corner
    world = np.ascontiguousarray(top_first[::-1]).astype(np.int32)
    world.flags.writeable = False
    return replace(state, world=world)


def top_right_vector(model: ImpalaPolicy, state: MazeState, hook: str = DEFAULT_STEERING_HOOK, *,
                     route: Literal["auto", "padding", "direct"] = "auto",
                     renderer: StateRenderer | None = None) -> Tensor:
    """Activations at ``hook`` of the maze with a path opened to the top-right minus the original: (C, H, W).

    The path is opened by :func:`open_top_right_path` (``route`` documented
    there); the mouse is put on the start cell in both mazes; the cheese stays.

    >>> tr = top_right_vector(model, state)
    >>> from mazeinterp.core.interventions import AddVector
    >>> from mazeinterp.analysis.vfield import vector_field
    >>> vector_field(model, state, [AddVector(DEFAULT_STEERING_HOOK, tr, 1.0)])
    VectorField(maze 13×13, 96 cells, ...)
    """
    return top_right_vectors(model, [state], hook, route=route, renderer=renderer, batch_size=2, progress=False)[0]


def top_right_vectors(model: ImpalaPolicy, states: Sequence[MazeState], hook: str = DEFAULT_STEERING_HOOK, *,
                      route: Literal["auto", "padding", "direct"] = "auto", renderer: StateRenderer | None = None,
                      batch_size: int = FORWARD_BATCH_SIZE, progress: bool | None = None) -> Tensor:
    """Every state's :func:`top_right_vector`, from batched forward passes: (N, C, H, W).

    Raises ValueError for an empty list. The rows equal per-state
    :func:`top_right_vector` calls up to float rounding (exactly with ``batch_size=2``).
    """
    states = list(states)
    if not states:
        raise ValueError("top-right vectors need at least one state")
    pairs = []
    for state in states:
        base = _with_mouse_at_start(state)
        pairs += [open_top_right_path(base, route), base]
    acts = activations(model, hook, pairs, renderer=renderer, batch_size=batch_size, progress=progress)
    return acts[0::2] - acts[1::2]


# --------------------------------------------------------------------------- retargeting


def retarget(channels: int | Sequence[int], target_cell: Cell, maze_size: int, value: float = RETARGET_VALUE,
             hook: str = DEFAULT_STEERING_HOOK, *, region: bool = False) -> Clamp:
    """Clamp ``channels`` at the activation pixel of ``target_cell`` to ``value`` (retargeting).

    The pixel is :func:`mazeinterp.maze.pixels.cell_to_pixel` at the hook
    point's resolution (16 for the default layer); with ``region=True`` every
    pixel overlapping the cell (:func:`cell_to_pixel_region`) is clamped.

    >>> retarget([55], (2, 3), maze_size=15)
    Clamp(embedder.block2.res1.resadd_out, value=5.5, channels=[55], pixels=[(4, 5)])
    """
    resolution = hook_resolution(hook)
    if resolution is None:
        raise ValueError(f"retarget needs a (C, H, W) hook point of the embedder blocks, got {hook!r}")
    if region:
        rows, cols = cell_to_pixel_region(target_cell, maze_size, resolution)
        pixels: list[tuple[int, int]] = [(r, c) for r in range(rows.start, rows.stop)
                                         for c in range(cols.start, cols.stop)]
    else:
        pixels = [cell_to_pixel(target_cell, maze_size, resolution)]
    chans = (channels,) if isinstance(channels, int) else tuple(channels)
    return Clamp(hook, value, channels=chans, pixels=tuple(pixels))


def path_probability(model: ImpalaPolicy, state: MazeState, target: Cell,
                     interventions: Sequence[Intervention] = (), *, start: Cell | None = None,
                     renderer: StateRenderer | None = None, log: bool = False) -> float:
    """Probability that the sampled policy walks the shortest path from the start to ``target``.

    The product, over the cells of the path before ``target``, of the
    probability of the on-path move with the mouse on that cell (and the
    ``interventions`` applied), drawn as procgen would draw it on that walk:
    mirrored after the last rightward move, plain after the last leftward one
    (from the state's own drawing at the start; see
    :attr:`MazeState.mouse_reflected`). ``start`` defaults to the start cell
    ``(n-1, 0)``. With ``log=True`` the sum of log-probabilities is returned.
    Compare with and without :func:`retarget` to measure retargeting::

        >>> target = (4, 4)
        >>> clamp = retarget([15], target, state.maze_size)
        >>> before = path_probability(model, state, target, log=True)
        >>> after = path_probability(model, state, target, [clamp], log=True)
        >>> round(before, 1), round(after, 1)      # the shipped agent, level seed 0, channel 15
        (-25.1, -18.3)

    Raises:
        ValueError: the path passes through the cheese (the episode would end there).
    """
    from mazeinterp.analysis.vfield import mirrored_after, move_probs_for_states

    n = state.maze_size
    start = start_cell(n) if start is None else (int(start[0]), int(start[1]))
    path = shortest_path(state.open_cells, start, target)
    if len(path) == 1:
        return 0.0 if log else 1.0
    cheese = state.cheese
    if cheese is not None and cheese in path[:-1]:
        raise ValueError(f"the path from {start} to {tuple(target)} passes through the cheese at {cheese}")
    moves = [move_from_delta((b[0] - a[0], b[1] - a[1])) for a, b in zip(path[:-1], path[1:])]
    mirrored = [state.mouse_reflected]
    for move in moves[:-1]:
        mirrored.append(mirrored_after(move, mirrored[-1]))
    moved = [state.with_mouse(cell).with_mouse_reflected(flag) for cell, flag in zip(path[:-1], mirrored)]
    probs = move_probs_for_states(model, moved, interventions, renderer=renderer)
    on_path = probs[np.arange(len(moves)), moves]
    logp = float(np.log(np.clip(on_path, 1e-300, None)).sum())
    return logp if log else float(np.exp(logp))
