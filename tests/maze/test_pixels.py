"""Tests of mazeinterp.maze.pixels: the one cell ↔ pixel mapping, checked against rendered observations."""

from __future__ import annotations

import numpy as np
import pytest

from mazeinterp.core.hooks import render_states
from mazeinterp.maze.pixels import cell_to_pixel, cell_to_pixel_region, pixel_to_cell

RESOLUTIONS = (64, 32, 16, 8)
SIZES = (3, 5, 9, 13, 15, 21, 25)


def region_mask(cell, n, res=64) -> np.ndarray:
    rows, cols = cell_to_pixel_region(cell, n, res)
    mask = np.zeros((res, res), dtype=bool)
    mask[rows, cols] = True
    return mask


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.int16) != b.astype(np.int16)).any(-1)


def test_cheese_pixels_fall_inside_mapped_region(seeded_states):
    """Diff each maze's observation with and without cheese: the changed pixels lie in the cheese cell's region."""
    states = seeded_states
    obs = render_states([s for st in states for s in (st, st.without_cheese())])
    for i, state in enumerate(states):
        diff = changed(obs[2 * i], obs[2 * i + 1])
        assert diff.any(), f"cheese invisible in maze {i}"
        mask = region_mask(state.cheese, state.maze_size)
        assert not (diff & ~mask).any(), f"maze {i}: cheese pixels outside the region of {state.cheese}"
        # and the centre pixel of the cell is where the cheese is drawn, at every resolution
        assert pixel_to_cell(cell_to_pixel(state.cheese, state.maze_size, 64), state.maze_size, 64) == state.cheese
        for res in RESOLUTIONS:
            rows, cols = cell_to_pixel_region(state.cheese, state.maze_size, res)
            r, c = cell_to_pixel(state.cheese, state.maze_size, res)
            assert rows.start <= r < rows.stop and cols.start <= c < cols.stop


def test_mouse_pixels_fall_inside_mapped_region(seeded_states):
    """Moving the mouse between two cells changes only pixels of those two cells."""
    pairs, cells = [], []
    for state in seeded_states[:24]:
        open_cells = [tuple(int(v) for v in c) for c in np.argwhere(state.open_cells) if tuple(c) != state.cheese]
        a, b = open_cells[0], open_cells[len(open_cells) // 2]
        pairs += [state.with_mouse(a), state.with_mouse(b)]
        cells.append((state.maze_size, a, b))
    obs = render_states(pairs)
    for i, (n, a, b) in enumerate(cells):
        diff = changed(obs[2 * i], obs[2 * i + 1])
        assert diff.any()
        assert not (diff & ~(region_mask(a, n) | region_mask(b, n))).any()
        # the mouse's rendering in each picture lies in its own cell
        assert (diff & region_mask(a, n)).any() and (diff & region_mask(b, n)).any()


def test_row_zero_is_the_top(seeded_states):
    """A cheese on a lower row is drawn lower in the picture (one convention: row 0 at the top)."""
    state = next(s for s in seeded_states if s.maze_size >= 9)
    n = state.maze_size
    top = [c for c in map(tuple, np.argwhere(state.open_cells)) if c[0] == 0 and c != state.mouse][0]
    bottom = [c for c in map(tuple, np.argwhere(state.open_cells)) if c[0] == n - 1 and c != state.mouse][-1]
    obs = render_states([state.with_cheese(top), state.with_cheese(bottom), state.without_cheese()])
    top_rows = np.flatnonzero(changed(obs[0], obs[2]).any(1))
    bottom_rows = np.flatnonzero(changed(obs[1], obs[2]).any(1))
    assert top_rows.max() < bottom_rows.min()


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("res", RESOLUTIONS)
def test_mapping_is_consistent(n, res):
    for row in range(n):
        for col in range(n):
            rows, cols = cell_to_pixel_region((row, col), n, res)
            assert 0 <= rows.start < rows.stop <= res and 0 <= cols.start < cols.stop <= res
            r, c = cell_to_pixel((row, col), n, res)
            assert rows.start <= r < rows.stop and cols.start <= c < cols.stop
            if res == 64:  # a cell is 2.56 observation pixels wide: the round trip is exact
                assert pixel_to_cell((r, c), n, res) == (row, col)
    # every pixel over the inner maze maps to a cell whose region contains it; padding maps to None
    for r in range(res):
        for c in range(res):
            cell = pixel_to_cell((r, c), n, res)
            if cell is not None:
                rows, cols = cell_to_pixel_region(cell, n, res)
                assert rows.start <= r < rows.stop and cols.start <= c < cols.stop


def test_published_resolutions_of_corner_cells():
    # 15×15 maze (margin 5): the top-right cell is world (5, 19); at 16×16 its pixel is (3, 12)
    assert cell_to_pixel((0, 14), 15, 16) == (3, 12)
    assert cell_to_pixel((14, 0), 15, 16) == (12, 3)
    assert cell_to_pixel((0, 0), 25, 8) == (0, 0) and cell_to_pixel((24, 24), 25, 8) == (7, 7)
    assert pixel_to_cell((0, 0), 15, 64) is None  # padding wall


def test_bad_arguments():
    with pytest.raises(ValueError, match="outside"):
        cell_to_pixel((15, 0), 15, 16)
    with pytest.raises(ValueError, match="outside"):
        cell_to_pixel_region((-1, 0), 15, 16)
    with pytest.raises(ValueError, match="outside"):
        pixel_to_cell((16, 0), 15, 16)
    with pytest.raises(ValueError, match="does not fit"):
        cell_to_pixel((0, 0), 14, 16)


def test_every_boundary_of_the_mapping():
    # the smallest and the largest maze fit centred; an empty, an oversized or an even one does not
    assert cell_to_pixel((0, 0), 1, 25) == (12, 12)                   # margin 12: the world's centre cell
    assert cell_to_pixel((0, 0), 3) == (29, 29) == cell_to_pixel((0, 0), 3, 64)  # floor(11.5 · 2.56), 64 by default
    assert cell_to_pixel((24, 24), 25, 25) == (24, 24)
    for size in (0, 27, 14, 24):
        with pytest.raises(ValueError, match=f"maze size {size} does not fit centred in a 25×25 world"):
            pixel_to_cell((0, 0), size, 16)
    # columns and rows are checked alike, at both ends
    for cell in ((0, 15), (15, 0), (0, -1), (-1, 0)):
        with pytest.raises(ValueError, match=r"cell \(.*\) is outside the 15×15 maze"):
            cell_to_pixel(cell, 15, 16)
        with pytest.raises(ValueError, match=r"cell \(.*\) is outside the 15×15 maze"):
            cell_to_pixel_region(cell, 15, 16)
    for pixel in ((0, 16), (16, 0), (0, -1), (-1, 0)):
        with pytest.raises(ValueError, match=r"pixel \(.*\) is outside a 16×16 map"):
            pixel_to_cell(pixel, 15, 16)
    assert pixel_to_cell((63, 63), 25) == (24, 24) and pixel_to_cell((15, 15), 15, 16) is None
    # the default resolution is the observation's 64 (at 65 these would be (63, 63) and (14, 14))
    assert cell_to_pixel((24, 24), 25) == (62, 62) and pixel_to_cell((38, 38), 25) == (15, 15)
    assert all(type(v) is int for v in (*cell_to_pixel((2, 1), 21), *pixel_to_cell((40, 30), 21)))
    # regions at the default resolution: world cell 5 covers observation pixels 12.8 … 15.36, so rows 12 … 15
    assert cell_to_pixel_region((0, 0), 15) == (slice(12, 16), slice(12, 16))
