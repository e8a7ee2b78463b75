"""Batched maze environment over procgen's gym3 interface.

:class:`MazeEnv` holds ``num`` procgen maze envs in one ``ProcgenGym3Env``. It
builds them from level seeds (the same maze as ``start_level=seed,
num_levels=1``), from :class:`~mazeinterp.maze.state.MazeState` values, or
from procgen's own level stream; reads and writes one env's state by index
without touching the others; and optionally re-draws the cheese inside the
top-right ``n × n`` corner at every episode start (``cheese_region=n``), the
training distribution of the published agent.

Observations come back as uint8 arrays ``(num, 64, 64, 3)``; use
:func:`mazeinterp.maze.observations.obs_to_tensor` (or :meth:`MazeEnv.obs_tensor`) for the
network's input. procgen is imported only when an env is built.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.maze.grid import top_right_region
from mazeinterp.maze.moves import NOOP_ACTION
from mazeinterp.maze.state import MazeState

if TYPE_CHECKING:
    import torch

_MAX_STATE_BYTES = 2**20


def without_notice(text: str, notice: str | None) -> str:
    """``text`` with every line of ``notice`` (a block of lines) removed once, the rest kept in order."""
    if not notice:
        return text
    lines = text.splitlines(keepends=True)
    drop = [line.rstrip("\n") for line in notice.strip("\n").splitlines()]
    for i in range(len(lines) - len(drop) + 1):
        if [line.rstrip("\n") for line in lines[i : i + len(drop)]] == drop:
            return "".join(lines[:i] + lines[i + len(drop):])
    return text


def _import_gym_quietly() -> None:
    """Import gym without the deprecation banner it prints to stderr; any other output passes through.

    gym 0.26 prints a notice from the ``gym_notices`` package on import (procgen needs gym < 1).
    """
    if "gym" in sys.modules:
        return
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        import gym
    try:
        from gym_notices.notices import notices

        notice = notices.get(gym.__version__)
    except Exception:  # no notices package, or another layout: keep everything
        notice = None
    sys.stderr.write(without_notice(captured.getvalue(), notice))


def _make_procgen(num: int, distribution_mode: str, rand_seed: int, num_threads: int,
                  start_level: int = 0, num_levels: int = 0, render_mode: str | None = None) -> Any:
    _import_gym_quietly()
    from procgen import ProcgenGym3Env  # heavy: imported only when an env is built

    return ProcgenGym3Env(
        num=num, env_name="maze", distribution_mode=distribution_mode, start_level=start_level,
        num_levels=num_levels, rand_seed=rand_seed, num_threads=num_threads, render_mode=render_mode,
    )


class MazeEnv:
    """``num`` procgen maze envs stepped together.

    Args:
        num: number of envs.
        cheese_region: if set to ``n``, every episode start (including procgen's
            automatic resets) moves the cheese to a uniformly chosen open cell of
            the top-right ``n × n`` corner of the inner maze; only envs that just
            reset are edited.
        seed: seeds procgen's level stream and the cheese-region draws.
        distribution_mode: procgen distribution mode, ``"hard"`` by default.
        start_level, num_levels: procgen's level range (``num_levels=0``: unlimited).
        num_threads: procgen worker threads.
        render_mode: ``"rgb_array"`` to also produce high-resolution frames (slow).
        cheese_rng: the random stream for cheese-region draws (default: one
            seeded by ``seed``); pass your own to make the draws part of a
            stream you save and restore.
    """

    def __init__(self, num: int, *, cheese_region: int | None = None, seed: int = 0,
                 distribution_mode: str = "hard", start_level: int = 0, num_levels: int = 0,
                 num_threads: int = 1, render_mode: str | None = None,
                 cheese_rng: np.random.Generator | None = None) -> None:
        if num < 1:
            raise ValueError(f"num must be at least 1, got {num}")
        if cheese_region is not None and cheese_region < 1:
            raise ValueError(f"cheese_region must be a positive int, got {cheese_region}")
        self.num = num
        self.cheese_region = cheese_region
        self._rng = cheese_rng if cheese_rng is not None else np.random.default_rng(seed)
        self._env = _make_procgen(num, distribution_mode, seed, num_threads, start_level,
                                  num_levels, render_mode)
        self._buf = self._env._ffi.new(f"char[{_MAX_STATE_BYTES}]")
        self._level_range = self._level_seed_range(self.get_state(0))
        if cheese_region is not None:
            self._apply_cheese_region(range(num))

    # ----- construction -----------------------------------------------------------------

    @classmethod
    def from_seeds(cls, seeds: Sequence[int], **kwargs: Any) -> MazeEnv:
        """One env per level seed; env ``i`` shows the maze of ``seeds[i]`` at its start.

        Later automatic resets draw fresh levels from procgen's stream (or the
        cheese region, if set). Keyword arguments go to :class:`MazeEnv`.
        """
        seeds = [int(s) for s in seeds]
        for s in seeds:
            if not 0 <= s < 2**31 - 1:
                raise ValueError(f"level seed {s} is outside procgen's range [0, 2**31 - 1)")
        env = cls(len(seeds), **kwargs)
        env.load_seeds(seeds)
        return env

    @classmethod
    def from_states(cls, states: Sequence[MazeState | bytes], **kwargs: Any) -> MazeEnv:
        """One env per given state (``MazeState`` or raw bytes); keyword arguments go to :class:`MazeEnv`."""
        env = cls(len(states), **kwargs)
        env.set_states(states)
        return env

    def load_seeds(self, seeds: Sequence[int], indices: Iterable[int] | None = None) -> None:
        """Regenerate envs ``indices`` (default: all) as the mazes of ``seeds``.

        procgen generates a level from its seed alone, so each env is pointed at
        a one-seed level range and its episode is ended; the reset that follows
        builds exactly the maze of ``start_level=seed, num_levels=1``. Other envs
        are stepped with a no-op that is then undone by restoring their states.
        With ``cheese_region`` set, the new episodes get their cheese moved too.
        """
        indices = list(range(self.num)) if indices is None else list(indices)
        if len(indices) != len(seeds):
            raise ValueError(f"{len(seeds)} seeds for {len(indices)} envs")
        before = self.get_states()
        targets = set(indices)
        for i, s in zip(indices, seeds):
            state = before[i].with_game_fields(
                level_seed_low=s, level_seed_high=s + 1, episodes_remaining=0,
                cur_time=before[i].game_field("timeout") - 1,
            )
            self.set_state(i, state)
        self._env.act(np.full(self.num, NOOP_ACTION, dtype=np.int32))
        low, high = self._level_range
        for i in range(self.num):
            if i in targets:
                self.set_state(i, self.get_state(i).with_game_fields(level_seed_low=low, level_seed_high=high))
            else:
                self.set_state(i, before[i])
        if self.cheese_region is not None:
            self._apply_cheese_region(indices)

    # ----- state -------------------------------------------------------------------------

    def get_state_bytes(self, index: int) -> bytes:
        """Raw procgen state of env ``index``."""
        self._check_index(index)
        n = self._env.call_c_func("get_state", index, self._buf, _MAX_STATE_BYTES)
        return bytes(self._env._ffi.buffer(self._buf, n))

    def get_state(self, index: int) -> MazeState:
        """Parsed state of env ``index``."""
        return MazeState.from_bytes(self.get_state_bytes(index))

    def get_states(self) -> list[MazeState]:
        """Parsed states of all envs."""
        return [self.get_state(i) for i in range(self.num)]

    def set_state(self, index: int, state: MazeState | bytes) -> None:
        """Write one env's state (others untouched); its observation is refreshed.

        Only a valid state reaches procgen (which would otherwise die on a bad
        one): bytes are parsed and checked first, and every :class:`MazeState`
        is valid by construction.

        Raises:
            InvalidStateError: bytes that are not a state procgen can hold (the
                message names the field, its value and what was expected).
            TypeError: ``state`` is neither a MazeState nor bytes.
        """
        self._check_index(index)
        if isinstance(state, (bytes, bytearray, memoryview)):
            state = MazeState.from_bytes(bytes(state))
        if not isinstance(state, MazeState):
            raise TypeError(f"set_state takes a MazeState or its bytes, not a {type(state).__name__}")
        data = state.to_bytes()
        self._env.call_c_func("set_state", index, data, len(data))

    def set_states(self, states: Sequence[MazeState | bytes]) -> None:
        """Write the states of all envs (one per env)."""
        if len(states) != self.num:
            raise ValueError(f"{len(states)} states for {self.num} envs")
        for i, state in enumerate(states):
            self.set_state(i, state)

    # ----- stepping ----------------------------------------------------------------------

    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Current ``(reward (num,) float32, obs (num, 64, 64, 3) uint8, first (num,) bool)``."""
        reward, obs, first = self._env.observe()
        return reward, obs["rgb"], first.astype(bool)

    def obs_tensor(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """Current observations as the network's float input ``(num, 3, 64, 64)`` in [0, 1]."""
        from mazeinterp.maze.observations import obs_to_tensor

        return obs_to_tensor(self.observe()[1], device=device)

    def step(self, actions: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action (0…14) per env; returns :meth:`observe` after the step.

        ``first[i]`` is True when env ``i``'s episode ended on this step and a new
        one began (procgen resets automatically); with ``cheese_region`` set, the
        new episode's cheese has already been moved.
        """
        actions = np.asarray(actions)
        if actions.shape != (self.num,):
            raise ValueError(f"expected {self.num} actions, got shape {actions.shape}")
        if not np.issubdtype(actions.dtype, np.integer) and not (
                np.issubdtype(actions.dtype, np.number) and np.isfinite(actions).all()
                and (actions == np.round(actions)).all()):
            raise ValueError(f"actions must be whole numbers 0…14, got {actions.tolist()}")
        if actions.min(initial=0) < 0 or actions.max(initial=0) > 14:
            raise ValueError(f"actions must lie in 0…14, got {actions.min()}…{actions.max()}")
        self._env.act(actions.astype(np.int32))
        reward, obs, first = self.observe()
        if self.cheese_region is not None and first.any():
            self._apply_cheese_region(np.flatnonzero(first))
            obs = self.observe()[1]
        return reward, obs, first

    def render_frames(self) -> np.ndarray:
        """High-resolution frames ``(num, 512, 512, 3)``; needs ``render_mode="rgb_array"``."""
        info = self._env.get_info()
        if "rgb" not in info[0]:
            raise RuntimeError("render_frames needs MazeEnv(..., render_mode='rgb_array')")
        return np.stack([i["rgb"] for i in info])

    def close(self) -> None:
        """Free procgen's resources."""
        self._env.close()

    def __enter__(self) -> MazeEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- internals ---------------------------------------------------------------------

    def _apply_cheese_region(self, indices: Iterable[int]) -> None:
        assert self.cheese_region is not None
        for i in indices:
            state = self.get_state(int(i))
            n = state.maze_size
            region = [c for c in top_right_region(n, self.cheese_region)
                      if state.open_cells[c] and c != state.mouse]
            cell = region[self._rng.integers(len(region))]
            self.set_state(int(i), state.with_cheese(cell))

    @staticmethod
    def _level_seed_range(state: MazeState) -> tuple[int, int]:
        return int(state.game_field("level_seed_low")), int(state.game_field("level_seed_high"))

    def _check_index(self, index: int) -> None:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"env index must be an int, not {type(index).__name__}")
        if not 0 <= index < self.num:
            raise IndexError(f"env index {index} out of range for {self.num} envs")


class StateRenderer:
    """Renders the agent's observation of arbitrary maze states, in batches.

    Keeps one procgen env of ``batch_size`` envs alive and, per batch, writes the
    states in and reads the refreshed observations back (about 2–3k frames/s).
    Use it wherever many edited states must be shown to the network (vector
    fields, imitation data, steering contrasts).

    >>> renderer = StateRenderer(batch_size=64)
    >>> frames = renderer(states)     # (len(states), 64, 64, 3) uint8
    """

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = batch_size
        self._env: MazeEnv | None = None

    def __call__(self, states: Sequence[MazeState | bytes]) -> np.ndarray:
        """Observations ``(len(states), 64, 64, 3)`` uint8 of the given states, in order."""
        if self._env is None:
            self._env = MazeEnv(self.batch_size)
        frames = np.empty((len(states), 64, 64, 3), dtype=np.uint8)
        for start in range(0, len(states), self.batch_size):
            chunk = states[start : start + self.batch_size]
            for i, state in enumerate(chunk):
                self._env.set_state(i, state)
            frames[start : start + len(chunk)] = self._env.observe()[1][: len(chunk)]
        return frames

    def close(self) -> None:
        """Free the env."""
        if self._env is not None:
            self._env.close()
            self._env = None
