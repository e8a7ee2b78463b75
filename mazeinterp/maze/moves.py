"""The move vocabulary: five maze moves, their cell displacements and procgen's 15 actions (pure numpy).

procgen's maze takes 15 discrete actions; they collapse to five moves
(:class:`Move`): LEFT {0, 1, 2}, DOWN {3}, UP {5}, RIGHT {6, 7, 8} and NOOP
{4, 9–14} (the diagonal actions move left or right). Displacements use the
package's cell convention, ``(row, col)`` with row 0 the top row (see
:mod:`mazeinterp.maze`), so UP is ``(-1, 0)``.

>>> move_from_delta((0, 1))
<Move.RIGHT: 3>
>>> int(MOVE_TO_ACTION[Move.UP]), MOVES[ACTION_TO_MOVE[7]]
(5, 'right')
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

__all__ = [
    "ACTION_TO_MOVE",
    "MOVES",
    "MOVE_DELTAS",
    "MOVE_TO_ACTION",
    "NOOP_ACTION",
    "NUM_ACTIONS",
    "Move",
    "move_from_delta",
]

NUM_ACTIONS = 15
"""Number of procgen actions (policy logits)."""


class Move(enum.IntEnum):
    """The five maze moves; the value indexes :data:`MOVES`, :data:`MOVE_DELTAS` and move probabilities."""

    LEFT = 0
    DOWN = 1
    UP = 2
    RIGHT = 3
    NOOP = 4


def _frozen(values: Any, dtype: Any = np.int64) -> np.ndarray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


MOVES: tuple[str, ...] = tuple(m.name.lower() for m in Move)
"""Move names in :class:`Move` order: ("left", "down", "up", "right", "noop")."""

ACTION_TO_MOVE: np.ndarray = _frozen(
    [Move.LEFT] * 3 + [Move.DOWN, Move.NOOP, Move.UP] + [Move.RIGHT] * 3 + [Move.NOOP] * 6
)
"""(15,) int64, read-only: the :class:`Move` of each procgen action."""

MOVE_TO_ACTION: np.ndarray = _frozen([1, 3, 5, 7, 4])
"""(5,) int64, read-only: the canonical procgen action of each :class:`Move`."""

NOOP_ACTION = int(MOVE_TO_ACTION[Move.NOOP])
"""The canonical procgen action that does not move the mouse (4)."""

MOVE_DELTAS: np.ndarray = _frozen([(0, -1), (1, 0), (-1, 0), (0, 1), (0, 0)])
"""(5, 2) int64, read-only: (d_row, d_col) of each :class:`Move`, row 0 at the top."""

_DELTA_TO_MOVE: dict[tuple[int, int], Move] = {(int(d[0]), int(d[1])): Move(i) for i, d in enumerate(MOVE_DELTAS)}


def move_from_delta(delta: Any) -> Move:
    """The :class:`Move` whose displacement is ``delta`` = ``(d_row, d_col)``; ``(0, 0)`` is NOOP.

    For the move from cell ``a`` to an adjacent cell ``b``, pass
    ``(b[0] - a[0], b[1] - a[1])``.

    Raises:
        ValueError: ``delta`` is not one of :data:`MOVE_DELTAS` (not a step to an adjacent cell).
    """
    try:
        key = (int(delta[0]), int(delta[1]))
        if len(delta) != 2:
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"a move delta is a (d_row, d_col) pair, got {delta!r}") from None
    move = _DELTA_TO_MOVE.get(key)
    if move is None:
        raise ValueError(f"no move has delta {key}: a move goes to a 4-adjacent cell or stays")
    return move
