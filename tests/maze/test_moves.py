"""The move vocabulary: one delta → move conversion that inverts MOVE_DELTAS, and the action maps."""

from __future__ import annotations

import numpy as np
import pytest

from mazeinterp.maze import moves
from mazeinterp.maze.moves import ACTION_TO_MOVE, MOVE_DELTAS, MOVE_TO_ACTION, NOOP_ACTION, Move, move_from_delta


def test_move_from_delta_inverts_the_deltas() -> None:
    assert [move_from_delta(d) for d in MOVE_DELTAS] == list(Move)
    # by hand, in the cell convention (row 0 at the top)
    assert move_from_delta((-1, 0)) is Move.UP
    assert move_from_delta((1, 0)) is Move.DOWN
    assert move_from_delta((0, -1)) is Move.LEFT
    assert move_from_delta(np.array([0, 1], dtype=np.int64)) is Move.RIGHT
    assert move_from_delta((0, 0)) is Move.NOOP


@pytest.mark.parametrize("delta", [(1, 1), (2, 0), (0, -2), (1,), "up", None, (0, 0, 0)])
def test_move_from_delta_refuses_what_is_not_a_step(delta) -> None:
    with pytest.raises(ValueError, match="delta"):
        move_from_delta(delta)


def test_action_maps_agree() -> None:
    assert [ACTION_TO_MOVE[a] for a in MOVE_TO_ACTION] == list(Move)
    assert NOOP_ACTION == 4 and ACTION_TO_MOVE[NOOP_ACTION] == Move.NOOP
    # LEFT {0,1,2}, DOWN {3}, UP {5}, RIGHT {6,7,8}, NOOP {4, 9-14}
    assert ACTION_TO_MOVE.tolist() == [0, 0, 0, 1, 4, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4]


def test_the_model_re_exports_the_same_objects() -> None:
    from mazeinterp.core import model
    for name in ("Move", "MOVES", "MOVE_DELTAS", "MOVE_TO_ACTION", "ACTION_TO_MOVE", "NUM_ACTIONS"):
        assert getattr(model, name) is getattr(moves, name)


def test_the_vocabulary_is_five_moves_over_fifteen_actions_and_read_only() -> None:
    assert moves.NUM_ACTIONS == 15 == len(ACTION_TO_MOVE)
    assert [(m.name, int(m)) for m in Move] == [("LEFT", 0), ("DOWN", 1), ("UP", 2), ("RIGHT", 3), ("NOOP", 4)]
    assert moves.MOVES == ("left", "down", "up", "right", "noop")
    assert MOVE_TO_ACTION.tolist() == [1, 3, 5, 7, 4]
    assert MOVE_DELTAS.tolist() == [[0, -1], [1, 0], [-1, 0], [0, 1], [0, 0]]
    for table in (ACTION_TO_MOVE, MOVE_TO_ACTION, MOVE_DELTAS):
        assert table.dtype == np.int64
        with pytest.raises(ValueError, match="read-only"):
            table[0] = 2
