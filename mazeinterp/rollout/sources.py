"""Where a rollout's mazes come from: level seeds or start states, and the cheese placement of each maze.

:class:`MazeSource` hands out start states in maze order (level seeds are
turned into states in chunks, in a helper env); :func:`load_mazes` does it all
at once. :func:`place_cheese` moves each maze's cheese into the top-right
corner exactly as ``RolloutConfig(cheese_region=k)`` does inside a rollout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.runtime.defaults import ROLLOUT_BATCH_SIZE

if TYPE_CHECKING:
    from mazeinterp.maze.env import MazeEnv

__all__ = ["MazeSource", "is_standard_test_maze", "load_mazes", "place_cheese", "place_stream_cheese",
           "standard_test_mazes"]

_MAX_LEVEL_SEED = 2**31 - 1


def _is_seed_list(mazes: Sequence[Any]) -> bool:
    return all(isinstance(m, (int, np.integer)) and not isinstance(m, bool) for m in mazes)


def _check_seed(seed: int) -> int:
    seed = int(seed)
    if not 0 <= seed < _MAX_LEVEL_SEED:
        raise ValueError(f"level seed {seed} is outside procgen's range [0, 2**31 - 1)")
    return seed


class MazeSource:
    """Start states of a rollout's mazes, in maze order; level seeds are turned into states in chunks in a helper env.

    Args:
        mazes: level seeds (ints; an int ``n`` means seeds ``0 … n-1``) or
            start states (:class:`MazeState` or procgen bytes).
        chunk: how many level seeds one helper-env load turns into states.
        indices: hand out only these positions of ``mazes``, in this order (all when None).

    Raises:
        ValueError: no mazes, a level seed outside procgen's range, bad ``indices``.
        TypeError: a maze that is neither a level seed nor a state.

    Call :meth:`close` (or use ``try/finally``) to free the helper env.
    """

    def __init__(self, mazes: int | Sequence[int] | Sequence[MazeState | bytes] | range, chunk: int,
                 indices: Sequence[int] | None = None) -> None:
        if isinstance(mazes, bool):
            raise TypeError(f"mazes must be a number of mazes, level seeds or start states, got {mazes!r}")
        if isinstance(mazes, (int, np.integer)):
            if mazes < 1:
                raise ValueError(f"number of mazes must be positive, got {mazes}")
            mazes = range(int(mazes))
        if isinstance(mazes, np.ndarray):
            mazes = mazes.tolist()
        given: list[Any] = list(mazes)
        if not given:
            raise ValueError("no mazes given")
        self.is_seeds = _is_seed_list(given)
        if self.is_seeds:
            self.items: list[Any] = [_check_seed(s) for s in given]
        else:
            states = []
            for i, m in enumerate(given):
                if isinstance(m, MazeState):
                    states.append(m)
                elif isinstance(m, (bytes, bytearray)):
                    states.append(MazeState.from_bytes(bytes(m)))
                else:
                    raise TypeError(f"maze {i} is a {type(m).__name__}; give level seeds (ints) or MazeStates")
            self.items = states
        self.chunk = chunk
        self.order = _check_indices(indices, len(self.items))
        """Positions in ``items`` to run, in order (all of them unless ``indices`` was given)."""
        self._next = 0
        self._loaded: list[MazeState] = []
        self._env: MazeEnv | None = None

    def __len__(self) -> int:
        return len(self.order)

    def next(self) -> tuple[int, MazeState] | None:
        """The next ``(position in mazes, start state)``, or None when all were handed out."""
        if self._next >= len(self.order):
            return None
        position = self._next
        index = self.order[position]
        self._next += 1
        if not self.is_seeds:
            return index, self.items[index]
        if not self._loaded:
            self._load(position)
        return index, self._loaded.pop(0)

    def _load(self, start: int) -> None:
        from mazeinterp.maze.env import MazeEnv

        seeds = [self.items[i] for i in self.order[start : start + self.chunk]]
        if self._env is None:
            self._env = MazeEnv(min(self.chunk, len(self.order)))
        self._env.load_seeds(seeds, indices=range(len(seeds)))
        self._loaded = [self._env.get_state(i) for i in range(len(seeds))]

    def close(self) -> None:
        """Close the helper env (if one was built)."""
        if self._env is not None:
            self._env.close()
            self._env = None


def _check_indices(indices: Sequence[int] | None, count: int) -> list[int]:
    """``indices`` as a list of distinct positions in ``[0, count)`` (all positions when None)."""
    if indices is None:
        return list(range(count))
    order = [int(i) for i in indices]
    bad = [i for i in order if not 0 <= i < count]
    if bad:
        raise ValueError(f"maze index {bad[0]} is outside the {count} mazes given")
    if len(set(order)) != len(order):
        raise ValueError("maze indices must be distinct")
    return order


def load_mazes(seeds: Sequence[int] | range, batch_size: int = ROLLOUT_BATCH_SIZE) -> list[MazeState]:
    """Start states of the given level seeds (same mazes as ``MazeEnv.from_seeds``), in one helper env."""
    source = MazeSource(list(seeds), batch_size)
    try:
        out = []
        while (item := source.next()) is not None:
            out.append(item[1])
        return out
    finally:
        source.close()



def place_stream_cheese(stream: int, state: MazeState, region: int, seed: int) -> MazeState:
    """``state`` with its cheese on a uniformly chosen open cell (not the mouse's) of its top-right ``region``² corner.

    The cell is drawn from the random stream ``(seed, stream, 1)``: a rollout
    gives maze ``i`` the stream ``i`` (or ``streams[i]``), so this is the
    cheese that maze gets with ``RolloutConfig(cheese_region=region, seed=seed)``.

    Raises:
        ValueError: the corner has no open cell for the cheese.
    """
    rng = np.random.default_rng([seed, stream, 1])
    cells = [c for c in grid.top_right_region(state.maze_size, region) if state.open_cells[c] and c != state.mouse]
    if not cells:
        raise ValueError(f"maze {stream}: no open cell for the cheese in the top-right {region}×{region} corner")
    return state.with_cheese(cells[int(rng.integers(len(cells)))])


def place_cheese(states: Sequence[MazeState], region: int, seed: int = 0) -> list[MazeState]:
    """The states with their cheese moved as ``RolloutConfig(cheese_region=region, seed=seed)`` moves it.

    Maze ``i`` gets a uniformly chosen open cell of its top-right ``region``²
    corner, drawn from the stream ``(seed, i, 1)``: use this to build
    per-maze steering vectors for exactly the mazes a rollout will show.
    """
    return [place_stream_cheese(i, s, region, seed) for i, s in enumerate(states)]


def is_standard_test_maze(state: MazeState, region: int = grid.TOP_RIGHT_REGION_SIZE,
                          definition: str = "mazeinterp") -> bool:
    """Whether ``state`` counts in the standard test: a decision square (``definition``) and the cheese
    outside the top-right ``region``² corner (the mazes where cheese and corner pull apart)."""
    cheese = state.cheese
    return (cheese is not None and not grid.in_top_right_region(cheese, state.maze_size, region)
            and grid.decision_square(state.open_cells, cheese, definition) is not None)


def standard_test_mazes(n_mazes: int, start: int | None = None, *, region: int = grid.TOP_RIGHT_REGION_SIZE,
                        definition: str = "mazeinterp") -> tuple[list[int], list[MazeState]]:
    """The first ``n_mazes`` standard test mazes (:func:`is_standard_test_maze`) from level seed ``start`` on.

    ``start`` defaults to :data:`~mazeinterp.rollout.config.TEST_SEED_START` (1,000,000). Returns their
    level seeds and start states (procgen's own cheese), in seed order; about half of all seeds count.

    Raises:
        ValueError: ``n_mazes < 1``, or the level seeds would leave procgen's range.
    """
    from mazeinterp.rollout.config import TEST_SEED_START

    if n_mazes < 1:
        raise ValueError(f"n_mazes must be at least 1, got {n_mazes}")
    seed = TEST_SEED_START if start is None else _check_seed(start)
    seeds: list[int] = []
    states: list[MazeState] = []
    while len(seeds) < n_mazes:
        chunk = range(seed, min(seed + max(64, 2 * (n_mazes - len(seeds))), _MAX_LEVEL_SEED))
        if not chunk:
            raise ValueError(f"only {len(seeds)} standard test mazes below level seed 2**31 - 1")
        for level, state in zip(chunk, load_mazes(chunk)):
            if len(seeds) < n_mazes and is_standard_test_maze(state, region, definition):
                seeds.append(level)
                states.append(state)
        seed = chunk.stop
    return seeds, states
