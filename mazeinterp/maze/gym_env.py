"""The procgen maze as a Gymnasium environment, ``mazeinterp/Maze-v0``, with the package's cheese control and outcomes.

Importing this module imports Gymnasium (the ``gym`` extra) and registers
``mazeinterp/Maze-v0``; ``import mazeinterp`` does neither. Without importing
it first, Gymnasium finds the env through its ``module:id`` form::

    import gymnasium as gym
    env = gym.make("mazeinterp.maze.gym_env:mazeinterp/Maze-v0", cheese_region=5)
    envs = gym.make_vec("mazeinterp.maze.gym_env:mazeinterp/Maze-v0", num_envs=8, vectorization_mode="sync")

:class:`MazeGymEnv` is one procgen maze (stock procgen 0.10.7, ``hard``),
built on :class:`mazeinterp.maze.env.MazeEnv` with one env:

* **observation** ``(64, 64, 3)`` uint8 as procgen draws it, **actions** its
  15 (see :mod:`mazeinterp.maze.moves`), **reward** procgen's: 10 on the cheese;
* **episodes** end on the cheese (``terminated``), or after procgen's 500 steps
  (``truncated``); with ``top_right_ends=True`` also when the mouse stands on
  the top-right cell while that counts (``terminated``), as rollouts end;
* **which maze** each :meth:`~MazeGymEnv.reset` starts is drawn with the
  env's seeded generator: a level seed from ``level_seeds`` or a state from
  ``states``, else any level seed; ``reset(options={"level_seed": s})`` or
  ``{"state": MazeState}`` chooses one;
* **cheese region**: with ``cheese_region=n`` the cheese is moved to an open
  cell of the top-right ``n × n`` corner, drawn with the same generator (the
  published training distribution is ``n = 5``);
* **info** at every step: ``cell`` (the mouse's ``(row, col)``, row 0 at the
  top), ``level_seed``, ``maze_size``; at an episode's end also ``outcome``
  (``"cheese"``, ``"top_right"`` or ``"neither"``: the first of them that
  the mouse's path reached, by the rules of :mod:`mazeinterp.maze.outcomes`),
  ``steps``, ``region_first_step`` (first arrival in the top-right
  ``region_size`` corner before the cheese, -1 if none) and ``trap`` (the
  trap's cells as ``"r c;r c"`` when a timed-out mouse was trapped, else ``""``).

procgen starts the next episode inside the step that ends one, so the
observation returned with ``terminated`` or ``truncated`` already shows the
next maze, as procgen's own gym interface does; call :meth:`reset` next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from mazeinterp.runtime.values import check_positive_int
from mazeinterp.maze import outcomes
from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.grid import top_right_cell
from mazeinterp.maze.moves import ACTION_TO_MOVE, MOVE_DELTAS, NUM_ACTIONS
from mazeinterp.maze.state import MazeState

__all__ = ["ENV_ID", "MazeGymEnv"]

ENV_ID = "mazeinterp/Maze-v0"
"""The id this module registers with Gymnasium."""

_MAX_LEVEL_SEED = 2**31 - 1


class MazeGymEnv(gymnasium.Env):
    """One procgen maze as a Gymnasium ``Env``: observations ``(64, 64, 3)`` uint8, 15 actions, procgen's reward.

    Args:
        cheese_region: if ``n``, every episode's cheese is moved to an open cell of the top-right
            ``n × n`` corner of the inner maze; None keeps procgen's cheese.
        level_seeds: the level seeds episodes are drawn from (None: any seed in ``[0, 2**31 - 1)``).
        states: start states episodes are drawn from instead (``MazeState`` or their bytes);
            not together with ``level_seeds``.
        top_right_ends: also end an episode (``terminated``) when the mouse stands on the
            top-right cell and that counts as the ``"top_right"`` outcome.
        region_size: side of the top-right region whose first arrival ``info`` reports (5).
        render_mode: None, or ``"rgb_array"`` to return the observation from :meth:`render`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, *, cheese_region: int | None = None, level_seeds: Sequence[int] | None = None,
                 states: Sequence[MazeState | bytes] | None = None, top_right_ends: bool = False,
                 region_size: int = outcomes.DEFAULT_REGION_SIZE, render_mode: str | None = None) -> None:
        check_positive_int(cheese_region, "cheese_region", or_none=True)
        if level_seeds is not None and states is not None:
            raise ValueError("give level_seeds or states, not both")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        check_positive_int(region_size, "region_size")
        self.level_seeds = None if level_seeds is None else [_level_seed(s) for s in level_seeds]
        self.states = None if states is None else [_as_state(s, i) for i, s in enumerate(states)]
        if self.level_seeds == [] or self.states == []:
            raise ValueError("level_seeds and states need at least one entry")
        self.cheese_region = cheese_region
        self.top_right_ends = top_right_ends
        self.region_size = region_size
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._env = MazeEnv(1)
        self._obs = np.zeros((64, 64, 3), np.uint8)
        self._start: MazeState | None = None
        self._path: list[tuple[int, int]] = []
        self._outcome: str | None = None

    # ----- Gymnasium API -------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; returns ``(obs (64, 64, 3) uint8, info)``.

        ``options``: ``{"level_seed": s}`` or ``{"state": MazeState | bytes}`` picks the maze
        (the cheese region, if set, still moves its cheese).
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"level_seed", "state"}
        if unknown or len(options) > 1:
            raise ValueError(f"reset options take one of 'level_seed' or 'state', got {sorted(options)}")
        if "state" in options:
            start = _as_state(options["state"], 0)
        else:
            start = self._load_level(options.get("level_seed"))
        if self.cheese_region is not None:
            start = self._region_cheese(start)
        self._env.set_state(0, start)
        self._obs = self._env.observe()[1][0]
        self._start = start
        self._path = [start.mouse]
        self._outcome = None
        return self._obs.copy(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one action (0…14); returns ``(obs, reward, terminated, truncated, info)`` (see the module doc)."""
        if self._start is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in 0…{NUM_ACTIONS - 1}, got {action!r}")
        start = self._start
        reward, obs, first = self._env.step(np.array([int(action)]))
        self._obs = obs[0]
        cell = self._move(int(action))
        self._path.append(cell)
        got_cheese = bool(reward[0] > 0)
        if self._outcome is None:
            on_top_right = cell == top_right_cell(start.maze_size) and outcomes.top_right_counts(start)
            code = int(outcomes.step_outcomes(got_cheese, on_top_right, False))
            if code != outcomes.RUNNING:
                self._outcome = outcomes.OUTCOMES[code]
        terminated = got_cheese or (self.top_right_ends and self._outcome == "top_right")
        truncated = bool(first[0]) and not got_cheese
        info = self._info()
        if terminated or truncated:
            info.update(self._episode_info())
            self._start = None
        return self._obs.copy(), float(reward[0]), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The current observation ``(64, 64, 3)`` uint8 with ``render_mode="rgb_array"``; None otherwise."""
        return self._obs.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        """Free procgen's resources."""
        if self._env is not None:
            self._env.close()
            self._env = None  # type: ignore[assignment]

    # ----- internals -----------------------------------------------------------------------

    def _load_level(self, level_seed: Any) -> MazeState:
        if level_seed is None and self.states is not None:
            return self.states[int(self.np_random.integers(len(self.states)))]
        if level_seed is None:
            pool = self.level_seeds
            level_seed = pool[int(self.np_random.integers(len(pool)))] if pool else \
                int(self.np_random.integers(_MAX_LEVEL_SEED))
        self._env.load_seeds([_level_seed(level_seed)])
        return self._env.get_state(0)

    def _region_cheese(self, state: MazeState) -> MazeState:
        cells = [c for c in outcomes.region_goals(state.open_cells, None, self.cheese_region or 1) if c != state.mouse]
        if not cells:
            raise ValueError(f"level seed {state.level_seed}: no open cell for the cheese in the top-right "
                             f"{self.cheese_region}×{self.cheese_region} corner")
        return state.with_cheese(cells[int(self.np_random.integers(len(cells)))])

    def _move(self, action: int) -> tuple[int, int]:
        """The mouse's cell after ``action`` (tracked on the start state's grid: procgen may have reset)."""
        assert self._start is not None
        row, col = self._path[-1]
        dr, dc = MOVE_DELTAS[ACTION_TO_MOVE[action]]
        target = (row + int(dr), col + int(dc))
        n = self._start.maze_size
        inside = 0 <= target[0] < n and 0 <= target[1] < n
        return target if inside and self._start.open_cells[target] else (row, col)

    def _info(self) -> dict[str, Any]:
        assert self._start is not None
        return {"cell": self._path[-1], "level_seed": self._start.level_seed, "maze_size": self._start.maze_size}

    def _episode_info(self) -> dict[str, Any]:
        assert self._start is not None
        start, path = self._start, self._path
        outcome = self._outcome or "neither"
        region = outcomes.first_region_step(path, start.maze_size, start.cheese, self.region_size)
        trap = outcomes.find_trap(path[1:][-outcomes.TRAP_WINDOW:]) if outcome == "neither" else None
        return {"outcome": outcome, "steps": len(path) - 1, "region_first_step": -1 if region is None else region,
                "trap": "" if trap is None else trap.label()}


def _level_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"level seed {value!r} is not an int")
    if not 0 <= int(value) < _MAX_LEVEL_SEED:
        raise ValueError(f"level seed {value} is outside procgen's range [0, 2**31 - 1)")
    return int(value)


def _as_state(value: Any, index: int) -> MazeState:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return MazeState.from_bytes(bytes(value))
    if not isinstance(value, MazeState):
        raise TypeError(f"state {index} is a {type(value).__name__}, expected a MazeState or its bytes")
    return value


# gymnasium's EnvCreator protocol reads as ``(**kwargs) -> Env``; an env class, the usual entry point, has named options
gymnasium.register(id=ENV_ID, entry_point=MazeGymEnv, disable_env_checker=False)  # type: ignore[arg-type]
