"""Matplotlib figures of mazes. matplotlib is imported only when a plot is made.

Every drawing function takes an ``Axes`` to draw on and returns it, so figures
compose; ``save_figure`` writes a figure and closes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mazeinterp.maze import grid
from mazeinterp.maze.pixels import WORLD_SIZE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mazeinterp.maze.state import MazeState


def new_figure(ncols: int = 1, nrows: int = 1, size: float = 4.0) -> tuple[Figure, np.ndarray]:
    """A figure with a grid of axes (always a 2-D array), using the non-interactive Agg backend."""
    import matplotlib

    if matplotlib.get_backend().lower() not in {"agg", "module://matplotlib_inline.backend_inline"}:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix), close it and return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def cell_centre_xy(cells: Sequence[grid.Cell], maze_size: int, resolution: int = 64) -> np.ndarray:
    """Plot coordinates ``(k, 2)`` (x, y) of cell centres over an ``imshow`` of a ``resolution`` map."""
    margin = (WORLD_SIZE - maze_size) // 2
    rc = np.asarray(cells, dtype=float).reshape(-1, 2)
    scale = resolution / WORLD_SIZE
    return np.stack([(rc[:, 1] + margin + 0.5) * scale - 0.5, (rc[:, 0] + margin + 0.5) * scale - 0.5], axis=1)


def draw_maze(ax: Axes, state: MazeState, obs: np.ndarray | None = None, *, paths: bool = True,
              trajectory: Sequence[grid.Cell] | None = None, title: str | None = None) -> Axes:
    """Draw a maze as the agent sees it, with its paths, decision square and an optional trajectory.

    Args:
        ax: axes to draw on.
        state: the maze.
        obs: the agent's observation ``(64, 64, 3)`` uint8; without it, a plain
            picture of the grid is drawn instead.
        paths: draw the shortest paths from the start to the cheese (yellow) and
            to the top-right cell (cyan), and mark the decision square (red).
        trajectory: cells visited by the mouse, drawn as a white line.
        title: axes title.
    """
    n = state.maze_size
    if obs is None:
        picture = np.where(state.world_grid[..., None] == 51, [0.55, 0.45, 0.3], [0.1, 0.1, 0.1])
        ax.imshow(picture, extent=(-0.5, 63.5, 63.5, -0.5), interpolation="nearest")
    else:
        ax.imshow(obs, interpolation="nearest")
    open_cells = state.open_cells
    cheese = state.cheese
    if paths:
        to_top_right = cell_centre_xy(grid.path_to_top_right(open_cells), n)
        ax.plot(*to_top_right.T, color="cyan", lw=1.5, alpha=0.8, label="path to top-right")
        if cheese is not None:
            to_cheese = cell_centre_xy(grid.path_to_cheese(open_cells, cheese), n)
            ax.plot(*to_cheese.T, color="gold", lw=1.5, alpha=0.8, label="path to cheese")
            square = grid.decision_square(open_cells, cheese)
            if square is not None:
                ax.scatter(*cell_centre_xy([square], n).T, s=60, facecolors="none", edgecolors="red",
                           linewidths=2, label="decision square", zorder=3)
    if trajectory:
        ax.plot(*cell_centre_xy(trajectory, n).T, color="white", lw=1.2, label="trajectory")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax
