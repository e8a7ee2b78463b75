"""The schema of a stored episode (the plain data of :func:`mazeinterp.rollout.resume.episode_to_dict`).

:func:`check_episode_data` checks one stored episode against the run it is
said to belong to before it is trusted: every key present and no other, each
value of its type, the outcome from :data:`~mazeinterp.maze.outcomes.OUTCOMES`,
steps within the step cap, cells inside the maze, a trajectory that walks from
the start one cell at a time for ``steps`` moves, one row of move probabilities
per step, and the index, level seed and maze size those of the run's own maze list. It raises ``ValueError`` with one
line naming the episode, the key and the value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, TypeGuard

from mazeinterp.maze.outcomes import OUTCOMES
from mazeinterp.maze.state import MazeState
from mazeinterp.runtime.messages import short_repr
from mazeinterp.rollout.results import Episode

__all__ = ["EPISODE_KEYS", "check_episode_data"]

EPISODE_KEYS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(Episode) if f.name != "features")
"""The keys of a stored episode (its maze features are recomputed from the maze, not stored)."""

_MOVES = 5  # columns of Episode.action_probs


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_cell(value: Any, size: int) -> bool:
    return (isinstance(value, list) and len(value) == 2 and all(_is_int(v) and 0 <= v < size for v in value))


def _is_probability(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0.0 <= value <= 1.0)


def check_episode_data(data: Any, states: Sequence[MazeState], max_steps: int) -> int:
    """Check one stored episode against the run's mazes ``states`` and step cap; → its index.

    Raises:
        ValueError: one line naming what is wrong (``episode 3: steps 600 is outside 0…500``).
    """
    if not isinstance(data, dict):
        raise ValueError(f"an episode is {short_repr(data, 40)}, not a JSON object")
    index = data.get("index")
    if not _is_int(index) or not 0 <= index < len(states):
        raise ValueError(f"episode index {short_repr(index, 40)} is not a maze position 0…{len(states) - 1} "
                         "of this run")
    where = f"episode {index}"
    missing = sorted(EPISODE_KEYS - set(data))
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r}")
    unknown = sorted(set(data) - EPISODE_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {short_repr(unknown[0], 40)}")
    state = states[index]
    for key, expected in (("level_seed", state.level_seed), ("maze_size", state.maze_size)):
        if not _is_int(data[key]) or data[key] != expected:
            raise ValueError(f"{where}: {key} {short_repr(data[key], 40)} is not its maze's ({expected})")
    size = state.maze_size

    def bad(key: str, rule: str) -> ValueError:
        return ValueError(f"{where}: {key} {short_repr(data[key], 40)} {rule}")

    if data["outcome"] not in OUTCOMES:
        raise bad("outcome", f"is not one of {', '.join(OUTCOMES)}")
    steps = data["steps"]
    if not _is_int(steps) or not 0 <= steps <= max_steps:
        raise bad("steps", f"is outside 0…{max_steps}")
    if not _is_cell(data["start"], size):
        raise bad("start", f"is not a cell of a {size}×{size} maze")
    for key in ("cheese", "decision_square"):
        if data[key] is not None and not _is_cell(data[key], size):
            raise bad(key, f"is neither null nor a cell of a {size}×{size} maze")
    for key in ("has_decision_square", "top_right_counts"):
        if not isinstance(data[key], bool):
            raise bad(key, "is not true or false")
    if not _is_int(data["region_size"]) or data["region_size"] < 1:
        raise bad("region_size", "is not a positive integer")
    region_step = data["region_step"]
    if region_step is not None and (not _is_int(region_step) or not 0 <= region_step <= steps):
        raise bad("region_step", f"is neither null nor a step 0…{steps}")
    trajectory = data["trajectory"]
    if trajectory is not None and not (
            isinstance(trajectory, list) and len(trajectory) == steps + 1 and all(_is_cell(c, size) for c in trajectory)
            and trajectory[0] == data["start"]
            and all(abs(a - b) + abs(c - d) <= 1 for (a, c), (b, d) in zip(trajectory, trajectory[1:]))):
        raise bad("trajectory", f"is neither null nor a walk of {steps + 1} cells from the start")
    moves = data["moves"]
    if moves is not None and not (isinstance(moves, list) and len(moves) == steps
                                  and all(_is_int(m) and 0 <= m < _MOVES for m in moves)):
        raise bad("moves", f"is neither null nor {steps} moves (0…{_MOVES - 1})")
    if (moves is None) != (trajectory is None):
        raise bad("moves", "and trajectory are recorded together, or neither is")
    if moves is not None and trajectory is not None:  # each recorded move takes its step or meets a wall and stays
        from mazeinterp.maze.moves import MOVE_DELTAS

        for m, (a, c), (b, d) in zip(moves, trajectory, trajectory[1:]):
            if (b, d) != (a, c) and (b - a, d - c) != tuple(int(x) for x in MOVE_DELTAS[m]):
                raise bad("moves", f"has move {m} where the trajectory steps from {[a, c]} to {[b, d]}")
    probs = data["action_probs"]
    if probs is not None and not (isinstance(probs, list) and len(probs) == steps and all(
            isinstance(row, list) and len(row) == _MOVES and all(map(_is_probability, row))
            and abs(sum(row) - 1.0) < 1e-4 for row in probs)):
        raise bad("action_probs", f"is neither null nor {steps} rows of {_MOVES} probabilities summing to 1")
    trap = data["trap"]
    if trap is not None and not (isinstance(trap, dict) and set(trap) == {"cells", "share"}
                                 and isinstance(trap["cells"], list) and len(trap["cells"]) == 2
                                 and all(_is_cell(c, size) for c in trap["cells"]) and _is_probability(trap["share"])):
        raise bad("trap", "is neither null nor {cells: two cells, share: a fraction}")
    return index
