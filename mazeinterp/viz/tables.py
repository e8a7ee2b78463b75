"""Plain rows (one dict per maze or cell) of mazes and vector fields, for CSV files, JSON and printed tables.

Rollout results, comparisons, channel tables and regressions give their own
rows (``to_rows``, ``rows``, ``as_dict``, ``coefficient_rows``); these
functions do the same for the results that are plain arrays or lists:

* :func:`maze_rows` -- each maze's size, mouse, cheese and decision square;
* :func:`vector_field_rows` -- each cell's move probabilities, optionally beside an edited field's;
* :func:`decision_square_rows` / :func:`decision_square_summary` -- P(cheese-ward move at the
  decision square) per maze and over the mazes, optionally with an edit's change.

>>> rows = maze_rows(states[:2])
>>> rows[0]
{'level_seed': 0, 'maze_size': 13, 'mouse': (12, 0), 'cheese': (7, 0), 'decision_square': (6, 4)}
>>> decision_square_summary(np.array([0.2, np.nan, 0.6]), np.array([0.5, np.nan, 0.3]))
{'mean_p_cheese_ward': 0.4, 'n_with_decision_square': 2, 'mean_p_cheese_ward_edited': 0.4, 'mean_change': 0.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.maze import grid

if TYPE_CHECKING:
    from mazeinterp.maze.state import MazeState
    from mazeinterp.analysis.vfield import VectorField


def maze_rows(states: Sequence[MazeState]) -> list[dict[str, Any]]:
    """Per maze: level seed, inner maze size, mouse and cheese cells, decision square (None without one)."""
    rows = []
    for state in states:
        cheese = state.cheese
        rows.append({"level_seed": state.level_seed, "maze_size": state.maze_size, "mouse": state.mouse,
                     "cheese": cheese,
                     "decision_square": grid.decision_square(state.open_cells, cheese) if cheese else None})
    return rows


def vector_field_rows(fields: Sequence[VectorField],
                      edited: Sequence[VectorField] | None = None) -> list[dict[str, Any]]:
    """One row per cell of each field: ``level_seed, row, col, p_left … p_noop`` and, with ``edited``
    (the same mazes' fields under an edit), ``edited_p_left … edited_p_noop``."""
    from mazeinterp.core.model import MOVES

    if edited is not None and len(edited) != len(fields):
        raise ValueError(f"{len(fields)} fields but {len(edited)} edited fields")
    rows = []
    for i, field in enumerate(fields):
        for j, cell in enumerate(field.cells):
            row: dict[str, Any] = {"level_seed": field.state.level_seed, "row": cell[0], "col": cell[1]}
            row.update({f"p_{m}": field.probs[j, k] for k, m in enumerate(MOVES)})
            if edited is not None:
                row.update({f"edited_p_{m}": edited[i].probs[j, k] for k, m in enumerate(MOVES)})
            rows.append(row)
    return rows


def decision_square_rows(fields: Sequence[VectorField], p_base: np.ndarray, p_edited: np.ndarray | None = None,
                         definition: str = "mazeinterp") -> list[dict[str, Any]]:
    """Per maze: level seed, size, cells in its field, cheese-ward move (None without a decision square),
    ``p_cheese_ward_at_decision_square`` (``p_base``, NaN without one) and, given ``p_edited``, ``p_cheese_ward_edited``.

    ``p_base`` and ``p_edited`` are (N,) arrays from :func:`mazeinterp.analysis.vfield.decision_square_cheese_prob`.
    """
    from mazeinterp.core.model import MOVES
    from mazeinterp.analysis.vfield import cheese_ward_move

    rows = []
    for i, field in enumerate(fields):
        state = field.state
        move = cheese_ward_move(state, definition)
        row = {"level_seed": state.level_seed, "maze_size": state.maze_size, "cells": len(field),
               "cheese_ward_move": MOVES[move] if move is not None else None,
               "p_cheese_ward_at_decision_square": p_base[i]}
        if p_edited is not None:
            row["p_cheese_ward_edited"] = p_edited[i]
        rows.append(row)
    return rows


def decision_square_summary(p_base: np.ndarray, p_edited: np.ndarray | None = None) -> dict[str, Any]:
    """Means over the mazes with a decision square (non-NaN ``p_base``) of P(cheese-ward move) per maze.

    Keys: ``mean_p_cheese_ward`` (None without such a maze), ``n_with_decision_square`` and,
    given ``p_edited`` and at least one such maze, ``mean_p_cheese_ward_edited`` and
    ``mean_change`` (mean of edited − base).
    """
    valid = ~np.isnan(p_base)
    summary: dict[str, Any] = {"mean_p_cheese_ward": float(np.mean(p_base[valid])) if valid.any() else None,
                               "n_with_decision_square": int(valid.sum())}
    if p_edited is not None and valid.any():
        summary["mean_p_cheese_ward_edited"] = float(np.nanmean(p_edited[valid]))
        summary["mean_change"] = float(np.nanmean(p_edited[valid] - p_base[valid]))
    return summary
