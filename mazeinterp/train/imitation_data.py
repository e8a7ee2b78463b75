"""Labelled training frames for behaviour cloning: chunks of fresh mazes, labelled by the BFS oracle.

A behaviour-cloning chunk holds every open cell of fresh training-distribution mazes
(plus extra copies of the path to the cheese, some frames with the mouse drawn
mirrored); a DAgger chunk holds the cells the current policy visits when it plays
fresh mazes, drawn as it saw them. :class:`ChunkPrefetcher` builds the next
behaviour-cloning chunk in a background thread while the trainer uses this one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mazeinterp.maze.env import MazeEnv, StateRenderer
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import MOVE_TO_ACTION, ImpalaPolicy, Move, obs_to_tensor
from mazeinterp.train.field_head import field_targets
from mazeinterp.train.imitation_config import ImitationConfig
from mazeinterp.train.oracle import cells_with_path_copies, labelled_frames_by_maze


def chunk_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` procgen level seeds drawn from ``rng``."""
    return [int(s) for s in rng.integers(0, 2**31 - 2, size=n)]


def play_first_episodes(policy: ImpalaPolicy, env: MazeEnv, max_steps: int, device: torch.device,
                        generator: torch.Generator) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Play every env's current episode with actions sampled from the policy, for up to ``max_steps`` steps.

    Only envs whose first episode is still running are shown to the policy; the others
    take the no-op action, since what follows their first episode is never used. After
    each step yields ``(playing, reward, ended)``, each of shape (num,): which envs were
    playing their first episode before the step, the step's rewards, and which of those
    envs ended it on this step. Stops once every first episode has ended.
    """
    playing = np.ones(env.num, dtype=bool)
    for _ in range(max_steps):
        with torch.inference_mode():
            logits, _ = policy(obs_to_tensor(env.observe()[1][playing], device=device))
            sampled = torch.multinomial(F.softmax(logits.float(), -1).cpu(), 1, generator=generator)[:, 0]
        actions = np.full(env.num, MOVE_TO_ACTION[Move.NOOP], dtype=np.int64)
        actions[playing] = sampled.numpy()
        reward, _, first = env.step(actions)
        before = playing.copy()
        playing &= ~first
        yield before, reward, before & first
        if not playing.any():
            return


def policy_visits(policy: ImpalaPolicy, env: MazeEnv, steps: int, device: torch.device,
                  generator: torch.Generator) -> tuple[list[list[tuple[int, int]]], list[list[bool]]]:
    """Cells each env's mouse visits while the policy plays (sampled actions), until the episode ends.

    Returns ``(cells, mirrored)``: per env, the visited cells in order and, for each, whether
    procgen drew the mouse mirrored there (so the frames can be redrawn as the policy saw them).
    """
    starts = [env.get_state(i) for i in range(env.num)]
    cells: list[list[tuple[int, int]]] = [[s.mouse] for s in starts]
    mirrored: list[list[bool]] = [[s.mouse_reflected] for s in starts]
    for playing, _, ended in play_first_episodes(policy, env, steps, device, generator):
        for i in np.flatnonzero(playing & ~ended):
            state = env.get_state(int(i))
            cells[i].append(state.mouse)
            mirrored[i].append(state.mouse_reflected)
    return cells, mirrored


class ChunkSource:
    """Builds shuffled chunks of labelled frames from fresh training-distribution mazes.

    Each source owns its env, renderer and random stream, so a producer thread
    and the training loop never share one. Every chunk carries the stream's
    state from before it was drawn: saving that state and resuming rebuilds the
    same chunk.
    """

    def __init__(self, config: ImitationConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.env = MazeEnv(config.mazes_per_chunk, cheese_region=config.cheese_region, seed=config.seed,
                           cheese_rng=rng)
        self.renderer = StateRenderer(batch_size=256)

    def _fresh_states(self) -> list[MazeState]:
        self.env.load_seeds(chunk_seeds(self.rng, self.env.num))
        return self.env.get_states()

    def bc_chunk(self) -> Chunk:
        """Every open cell of ``mazes_per_chunk`` fresh mazes, labelled and shuffled.

        Cells on the path from the mouse's start to the cheese appear ``1 + path_copies`` times;
        a ``mirror_fraction`` of the frames draw the mouse mirrored.
        """
        state_before = dict(self.rng.bit_generator.state)  # numpy types it a Mapping; it is a fresh dict
        states = self._fresh_states()
        copies, fraction = self.config.path_copies, self.config.mirror_fraction
        cells = [cells_with_path_copies(s, copies) for s in states] if copies or fraction else None
        mirrored = [self.rng.random(len(c)) < fraction for c in cells] if fraction and cells is not None else None
        return self._labelled_chunk(states, cells, mirrored, state_before)

    def _labelled_chunk(self, states: list[MazeState], cells: list[list[tuple[int, int]]] | None,
                        mirrored: list[Any] | None, state_before: dict[str, Any]) -> Chunk:
        """Frames of ``cells`` (default every open cell) of ``states``, labelled, shuffled; field targets if the config asks."""
        obs, moves, maze_index = labelled_frames_by_maze(states, self.renderer, cells=cells, mirrored=mirrored)
        order = self.rng.permutation(len(moves))
        fields = None
        if self.config.field_loss_weight > 0:
            fields = np.stack([field_targets(s) for s in states])[maze_index[order]]
        return Chunk(obs[order], moves[order], state_before, fields)

    def dagger_chunk(self, policy: ImpalaPolicy, device: torch.device, generator: torch.Generator) -> Chunk:
        """The cells the policy visits while playing fresh mazes, drawn as it saw them, labelled by the oracle, shuffled."""
        state_before = dict(self.rng.bit_generator.state)  # numpy types it a Mapping; it is a fresh dict
        states = self._fresh_states()
        was_training = policy.training
        policy.eval()
        cells, mirrored = policy_visits(policy, self.env, self.config.dagger_steps, device, generator)
        policy.train(was_training)
        return self._labelled_chunk(states, cells, mirrored, state_before)

    def close(self) -> None:
        """Close the env and the renderer."""
        self.env.close()
        self.renderer.close()


@dataclass(frozen=True)
class Chunk:
    """Shuffled labelled frames: uint8 ``obs`` (N, 64, 64, 3), int64 ``moves`` (N,), and the random
    stream's state from before the chunk was drawn (resuming from it rebuilds the same chunk)."""

    obs: np.ndarray
    moves: np.ndarray
    rng_state: dict[str, Any]
    fields: np.ndarray | None = None
    """Per frame, int8 ``(25, 25)`` oracle moves of its maze (:func:`field_targets`), when the field loss is on."""


class ChunkPrefetcher:
    """Runs ``source.bc_chunk`` in a background thread, one chunk ahead (procgen releases the GIL)."""

    def __init__(self, source: ChunkSource) -> None:
        self._queue: queue.Queue[Chunk | BaseException] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self._thread.start()

    def _run(self, source: ChunkSource) -> None:
        try:
            while not self._stop.is_set():
                self._queue.put(source.bc_chunk())
        except BaseException as exc:  # handed to the training thread
            self._queue.put(exc)

    def get(self) -> Chunk:
        """The next chunk (waits for it); re-raises an error of the background thread."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        """Stop the background thread, draining the queue so it can finish."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
