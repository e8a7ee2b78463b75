"""Rows of mazes and vector fields, checked against hand-made fields and hand-computed means."""

from __future__ import annotations

import numpy as np
import pytest

from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.viz.tables import decision_square_rows, decision_square_summary, maze_rows, vector_field_rows
from mazeinterp.analysis.vfield import VectorField

UP, LEFT = [0, 0, 1, 0, 0], [1, 0, 0, 0, 0]  # Move order: left, down, up, right, noop


def _open_cells(state: MazeState) -> list[tuple[int, int]]:
    return [(int(r), int(c)) for r, c in np.argwhere(state.open_cells)]


def _field(state: MazeState, probs: list[list[float]]) -> VectorField:
    """A hand-made field: ``probs`` on the maze's first open cells (row-major)."""
    return VectorField(state, _open_cells(state)[: len(probs)], np.array(probs, dtype=float))


@pytest.fixture(scope="module")
def with_and_without_square(seeded_states: list[MazeState]) -> tuple[MazeState, MazeState]:
    """Level 0 (decision square (6, 4), cheese-ward move left) and a maze without a decision square."""
    without = next(s for s in seeded_states if grid.decision_square(s.open_cells, s.cheese) is None)
    return seeded_states[0], without


def test_maze_rows(with_and_without_square: tuple[MazeState, MazeState]) -> None:
    level0, without = with_and_without_square
    rows = maze_rows([level0, without])
    assert rows[0] == {"level_seed": 0, "maze_size": 13, "mouse": (12, 0), "cheese": (7, 0),
                       "decision_square": (6, 4)}
    assert rows[1]["level_seed"] == without.level_seed and rows[1]["decision_square"] is None
    assert rows[1]["cheese"] == without.cheese and rows[1]["maze_size"] == without.maze_size


def test_vector_field_rows_put_each_cell_beside_its_edit(with_and_without_square) -> None:
    level0, without = with_and_without_square
    base = [_field(level0, [UP, UP]), _field(without, [LEFT])]
    edited = [_field(level0, [LEFT, [0.2, 0.2, 0.2, 0.2, 0.2]]), _field(without, [UP])]
    rows = vector_field_rows(base, edited)
    assert len(rows) == 3
    first_cell = _open_cells(level0)[0]
    assert rows[0] == {"level_seed": 0, "row": first_cell[0], "col": first_cell[1],
                       "p_left": 0.0, "p_down": 0.0, "p_up": 1.0, "p_right": 0.0, "p_noop": 0.0,
                       "edited_p_left": 1.0, "edited_p_down": 0.0, "edited_p_up": 0.0, "edited_p_right": 0.0,
                       "edited_p_noop": 0.0}
    assert rows[1]["edited_p_noop"] == 0.2 and rows[2]["level_seed"] == without.level_seed
    assert rows[2]["p_left"] == 1.0 and rows[2]["edited_p_up"] == 1.0
    assert "edited_p_up" not in vector_field_rows(base)[0]
    with pytest.raises(ValueError, match="2 fields but 1 edited"):
        vector_field_rows(base, edited[:1])


def test_decision_square_rows_and_summary(with_and_without_square) -> None:
    level0, without = with_and_without_square
    fields = [_field(level0, [UP, UP, UP]), _field(without, [LEFT])]
    base, edited = np.array([0.25, np.nan]), np.array([0.75, np.nan])
    rows = decision_square_rows(fields, base, edited)
    assert rows[0] == {"level_seed": 0, "maze_size": 13, "cells": 3, "cheese_ward_move": "left",
                       "p_cheese_ward_at_decision_square": 0.25, "p_cheese_ward_edited": 0.75}
    assert rows[1]["cheese_ward_move"] is None and np.isnan(rows[1]["p_cheese_ward_at_decision_square"])
    assert "p_cheese_ward_edited" not in decision_square_rows(fields, base)[0]

    # means over the mazes with a decision square only: (0.2 + 0.6) / 2 and ((0.5 - 0.2) + (0.2 - 0.6)) / 2
    p_base, p_edit = np.array([0.2, np.nan, 0.6]), np.array([0.5, 0.9, 0.2])
    summary = decision_square_summary(p_base, p_edit)
    assert summary == pytest.approx({"mean_p_cheese_ward": 0.4, "n_with_decision_square": 2,
                                     "mean_p_cheese_ward_edited": 0.35, "mean_change": -0.05})
    assert decision_square_summary(p_base) == pytest.approx({"mean_p_cheese_ward": 0.4, "n_with_decision_square": 2})
    assert decision_square_summary(np.array([np.nan]), np.array([0.5])) == {"mean_p_cheese_ward": None,
                                                                             "n_with_decision_square": 0}
