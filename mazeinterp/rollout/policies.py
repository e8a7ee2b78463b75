"""What chooses the actions of a rollout: pixel policies and scripted policies.

Anything callable on the network input ``(B, 3, 64, 64)`` float that returns
logits ``(B, 15)`` (or a tuple whose first element is the logits, like
:class:`~mazeinterp.core.model.ImpalaPolicy`) is a :class:`Policy`. A
:class:`ScriptedPolicy` instead decides from the envs' current maze states;
:class:`ShortestPathPolicy` and :class:`NoopPolicy` are two such baselines, and
:func:`move_logits` turns chosen moves into deterministic logits.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from mazeinterp.maze import grid
from mazeinterp.maze.moves import MOVE_TO_ACTION, NUM_ACTIONS, Move, move_from_delta
from mazeinterp.maze.state import MazeState

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["NoopPolicy", "Policy", "ScriptedPolicy", "ShortestPathPolicy", "move_logits"]


@runtime_checkable
class Policy(Protocol):
    """A pixel policy: network input ``(B, 3, 64, 64)`` float in [0, 1] → logits ``(B, 15)``.

    A tuple return value (e.g. ImpalaPolicy's ``(logits, value)``) is allowed;
    its first element must be the logits.
    """

    def __call__(self, obs: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Return action logits for a batch of observations."""
        ...


class ScriptedPolicy(abc.ABC):
    """A policy that decides from the envs' current maze states instead of pixels.

    :func:`~mazeinterp.rollout.run_rollouts` reads the state of every active env before each step
    (about half a millisecond per env) and passes them in batch order. Return
    logits ``(B, 15)``; ``-inf`` marks impossible actions, and
    :func:`move_logits` builds deterministic ones from moves. Sampling and the
    ``greedy`` option apply as for pixel policies.
    """

    @abc.abstractmethod
    def logits(self, states: Sequence[MazeState]) -> np.ndarray:
        """Action logits ``(len(states), 15)`` for the given current states."""


def move_logits(moves: Sequence[int] | np.ndarray) -> np.ndarray:
    """Logits ``(B, 15)`` that choose the canonical action of each :class:`~mazeinterp.maze.moves.Move` surely.

    0 at ``MOVE_TO_ACTION[move]``, ``-inf`` elsewhere.
    """
    moves = np.asarray(moves, dtype=np.int64).reshape(-1)
    logits = np.full((len(moves), NUM_ACTIONS), -np.inf, dtype=np.float32)
    logits[np.arange(len(moves)), MOVE_TO_ACTION[moves]] = 0.0
    return logits


class ShortestPathPolicy(ScriptedPolicy):
    """Walks the shortest path to a goal: the cheese, the top-right cell, or any cell.

    Args:
        goal: ``"cheese"``, ``"top_right"``, or a fixed ``(row, col)`` cell. With
            ``"cheese"`` and no cheese in the maze the mouse stays put.

    The moves towards a goal are computed once per maze (one BFS,
    :func:`~mazeinterp.maze.grid.oracle_moves`) and cached.
    """

    _CACHE_SIZE = 4096

    def __init__(self, goal: str | grid.Cell = "cheese") -> None:
        if isinstance(goal, str) and goal not in ("cheese", "top_right"):
            raise ValueError(f"goal must be 'cheese', 'top_right' or a (row, col) cell, got {goal!r}")
        self.goal = goal
        self._moves: dict[tuple[bytes, grid.Cell], np.ndarray] = {}

    def _goal(self, state: MazeState) -> grid.Cell | None:
        if self.goal == "cheese":
            return state.cheese
        if self.goal == "top_right":
            return grid.top_right_cell(state.maze_size)
        return (int(self.goal[0]), int(self.goal[1]))

    def _oracle(self, state: MazeState, goal: grid.Cell) -> np.ndarray:
        open_cells = state.open_cells
        key = (np.packbits(open_cells).tobytes() + bytes([state.maze_size]), goal)
        moves = self._moves.get(key)
        if moves is None:
            if len(self._moves) >= self._CACHE_SIZE:
                self._moves.clear()
            moves = self._moves[key] = grid.oracle_moves(open_cells, goal)
        return moves

    def logits(self, states: Sequence[MazeState]) -> np.ndarray:
        """Deterministic logits ``(len(states), 15)``: the first move of the shortest path of each state's mouse."""
        moves = []
        for state in states:
            goal = self._goal(state)
            if goal is None:
                moves.append(Move.NOOP)
                continue
            moves.append(move_from_delta(self._oracle(state, goal)[state.mouse]))
        return move_logits(moves)

    def __repr__(self) -> str:
        return f"ShortestPathPolicy(goal={self.goal!r})"


class NoopPolicy(ScriptedPolicy):
    """Never moves (every episode ends ``"neither"``)."""

    def logits(self, states: Sequence[MazeState]) -> np.ndarray:
        """Logits ``(len(states), 15)`` that always choose NOOP."""
        return move_logits([Move.NOOP] * len(states))

    def __repr__(self) -> str:
        return "NoopPolicy()"

