"""The BFS oracle that walks to the cheese, and labelled frames built from it.

The oracle's label at a cell is the first move of the shortest path from that
cell to the cheese (:func:`mazeinterp.maze.grid.oracle_moves`). Behaviour
cloning shows the network the maze with the mouse placed on every open cell
and asks for that move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mazeinterp.maze import grid
from mazeinterp.maze.env import StateRenderer
from mazeinterp.maze.state import MazeState
from mazeinterp.maze.moves import Move, move_from_delta


def oracle_labels(state: MazeState) -> list[tuple[grid.Cell, Move]]:
    """``(cell, move)`` for every open cell except the cheese's: the first move towards the cheese.

    Raises ValueError if the maze has no cheese.
    """
    if state.cheese is None:
        raise ValueError("the oracle needs a cheese to walk to; this maze has none")
    deltas = grid.oracle_moves(state.open_cells, state.cheese)
    labels = []
    for row, col in np.argwhere(state.open_cells):
        cell = (int(row), int(col))
        if cell != state.cheese:
            labels.append((cell, move_from_delta(deltas[row, col])))
    return labels


def cells_with_path_copies(state: MazeState, copies: int) -> list[grid.Cell]:
    """Every open cell once, then each cell of the shortest path from the mouse to the cheese ``copies`` more times.

    The mouse's path is where a rollout is won or lost, so behaviour cloning can
    weight it above the dead ends (``copies=0``: every open cell once).
    Raises ValueError if the maze has no cheese.
    """
    if state.cheese is None:
        raise ValueError("the path to the cheese needs a cheese; this maze has none")
    cells = [(int(row), int(col)) for row, col in np.argwhere(state.open_cells)]
    return cells + grid.shortest_path(state.open_cells, state.mouse, state.cheese) * copies


def labelled_frames(states: Sequence[MazeState], renderer: StateRenderer,
                    cells: Sequence[Sequence[grid.Cell]] | None = None,
                    mirrored: Sequence[Sequence[bool]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Observations and oracle moves for the mouse on cells of the given mazes.

    Args:
        states: mazes with a cheese (the mouse position in them is ignored).
        renderer: turns states into observations.
        cells: per maze, the cells to place the mouse on (a cell listed twice
            gives two frames; the cheese's cell is skipped); default every open
            cell except the cheese's.
        mirrored: per maze, one flag per entry of ``cells`` (which it needs):
            draw the mouse mirrored there, as procgen does after a rightward
            move. Default: drawn as in the state.

    Returns:
        ``(obs, moves)``: uint8 ``(N, 64, 64, 3)`` and int64 ``(N,)`` move indices
        (:class:`~mazeinterp.maze.moves.Move`).
    """
    obs, moves, _ = labelled_frames_by_maze(states, renderer, cells, mirrored)
    return obs, moves


def labelled_frames_by_maze(states: Sequence[MazeState], renderer: StateRenderer,
                            cells: Sequence[Sequence[grid.Cell]] | None = None,
                            mirrored: Sequence[Sequence[bool]] | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`labelled_frames` plus, per frame, the index into ``states`` of its maze: int64 ``(N,)``."""
    if mirrored is not None and cells is None:
        raise ValueError("labelled_frames: mirrored flags need the cells they belong to")
    placed: list[MazeState] = []
    moves: list[int] = []
    maze_index: list[int] = []
    for k, state in enumerate(states):
        table = dict(oracle_labels(state))
        wanted = list(table) if cells is None else [(int(c[0]), int(c[1])) for c in cells[k]]
        flags = None if mirrored is None else list(mirrored[k])
        if flags is not None and len(flags) != len(wanted):
            raise ValueError(f"labelled_frames: maze {k} has {len(wanted)} cells but {len(flags)} mirrored flags")
        for j, cell in enumerate(wanted):
            if cell in table:
                moved = state.with_mouse(cell)
                placed.append(moved if flags is None else moved.with_mouse_reflected(bool(flags[j])))
                moves.append(int(table[cell]))
                maze_index.append(k)
    return renderer(placed), np.asarray(moves, dtype=np.int64), np.asarray(maze_index, dtype=np.int64)
