"""Maze cells ↔ pixels of the observation and of every activation map.

The 64×64 observation shows the whole 25×25 world (inner maze plus padding
walls), so world cell ``(R, C)`` (row 0 at the top) covers observation rows
``[R·64/25, (R+1)·64/25)`` and the same columns. An activation map of side
``res`` (64, 32, 16 or 8 for the IMPALA layers) covers the same picture with
``res`` pixels, so the same formula holds with ``res`` in place of 64. Cells are
inner-maze cells in the one convention of :mod:`mazeinterp.maze`.

>>> cell_to_pixel((0, 14), maze_size=15, resolution=16)   # top-right cell
(3, 12)
"""

from __future__ import annotations

import math

from mazeinterp.maze.grid import Cell
from mazeinterp.maze.state import WORLD_SIZE


def _margin(maze_size: int, world_size: int) -> int:
    if maze_size < 1 or maze_size > world_size or (world_size - maze_size) % 2:
        raise ValueError(f"maze size {maze_size} does not fit centred in a {world_size}×{world_size} world")
    return (world_size - maze_size) // 2


def _check_cell(cell: Cell, maze_size: int) -> None:
    row, col = cell
    if not (0 <= row < maze_size and 0 <= col < maze_size):
        raise ValueError(f"cell {tuple(cell)} is outside the {maze_size}×{maze_size} maze")


def cell_to_pixel_region(cell: Cell, maze_size: int, resolution: int = 64,
                         world_size: int = WORLD_SIZE) -> tuple[slice, slice]:
    """Row and column slices of every pixel at ``resolution`` that overlaps ``cell``.

    Index an activation ``(C, res, res)`` as ``act[:, rows, cols]``.
    """
    _check_cell(cell, maze_size)
    margin = _margin(maze_size, world_size)
    scale = resolution / world_size

    def span(i: int) -> slice:
        world = i + margin
        return slice(math.floor(world * scale), math.ceil((world + 1) * scale))

    return span(cell[0]), span(cell[1])


def cell_to_pixel(cell: Cell, maze_size: int, resolution: int = 64, world_size: int = WORLD_SIZE) -> tuple[int, int]:
    """The single pixel ``(row, col)`` at ``resolution`` that contains the centre of ``cell``."""
    _check_cell(cell, maze_size)
    margin = _margin(maze_size, world_size)
    scale = resolution / world_size
    return (math.floor((cell[0] + margin + 0.5) * scale), math.floor((cell[1] + margin + 0.5) * scale))


def pixel_to_cell(pixel: tuple[int, int], maze_size: int, resolution: int = 64,
                  world_size: int = WORLD_SIZE) -> Cell | None:
    """The inner-maze cell under the centre of ``pixel`` at ``resolution``; None on the padding."""
    row, col = pixel
    if not (0 <= row < resolution and 0 <= col < resolution):
        raise ValueError(f"pixel {tuple(pixel)} is outside a {resolution}×{resolution} map")
    margin = _margin(maze_size, world_size)
    scale = world_size / resolution
    cell = (math.floor((row + 0.5) * scale) - margin, math.floor((col + 0.5) * scale) - margin)
    inside = 0 <= cell[0] < maze_size and 0 <= cell[1] < maze_size
    return cell if inside else None
