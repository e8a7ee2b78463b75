"""Resuming an interrupted rollout: which mazes remain, merging, an episode's round trip, SIGTERM.

The resume file itself (what it records and each refusal) is tested in test_resume_file.py."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mazeinterp.maze import grid
from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.outcomes import Trap
from mazeinterp.maze.state import MazeState
from mazeinterp.rollout import RolloutConfig
from mazeinterp.rollout.resume import (
    episode_from_dict,
    episode_to_dict,
    merge,
    remaining,
    sigterm_as_interrupt,
)
from mazeinterp.rollout.results import Episode, RolloutResult

@pytest.fixture(scope="module")
def states() -> list[MazeState]:
    """Start states of level seeds 0 and 1."""
    with MazeEnv.from_seeds([0, 1]) as env:
        return env.get_states()


def episode(index: int, steps: int = 10, state: MazeState | None = None, **kwargs) -> Episode:
    """A hand-made episode of maze ``index`` (its maze's features when ``state`` is given)."""
    cheese = state.cheese if state is not None else (0, 0)
    features = grid.maze_features(state.open_cells, cheese) if state is not None else None
    n = state.maze_size if state is not None else 5
    return Episode(index=index, level_seed=index, maze_size=n, cheese=cheese, has_decision_square=False,
                   decision_square=None, outcome="cheese", steps=steps, start=(n - 1, 0),
                   features=features, **kwargs)


def same(a: Episode, b: Episode) -> bool:
    """Equal episodes, features included (their NaN distances compare equal through repr)."""
    return dataclasses.replace(a, features=None) == dataclasses.replace(b, features=None) and (
        repr(a.features) == repr(b.features))


def result(*episodes: Episode, seconds: float = 4.0) -> RolloutResult:
    return RolloutResult(episodes=tuple(episodes), config=RolloutConfig(progress=False),
                         frames=sum(ep.steps for ep in episodes), seconds=seconds)


def test_remaining_lists_the_mazes_without_an_episode_in_order() -> None:
    assert remaining(5, [episode(3), episode(1)]) == [0, 2, 4]
    assert remaining(2, [episode(0), episode(1)]) == []
    assert remaining(3, []) == [0, 1, 2]


def test_merge_orders_the_episodes_and_adds_frames_and_seconds() -> None:
    merged = merge([episode(2, steps=7), episode(0, steps=3)], result(episode(1, steps=20), seconds=4.0),
                   seconds_before=2.5)
    assert [ep.index for ep in merged.episodes] == [0, 1, 2]
    assert merged.frames == 30 and merged.seconds == 6.5
    assert merge([], result(episode(0), seconds=1.5)).seconds == 1.5
    with pytest.raises(ValueError, match="an episode was run twice"):
        merge([episode(1)], result(episode(1), episode(2)))


def test_an_episode_survives_the_round_trip_through_plain_data(states: list[MazeState]) -> None:
    probs = np.full((2, 5), 0.2)
    ep = episode(1, steps=2, state=states[1], trap=Trap(((1, 2), (1, 3)), 0.75), action_probs=probs,
                 trajectory=((4, 0), (3, 0), (3, 1)))
    data = json.loads(json.dumps(episode_to_dict(ep)))
    assert "features" not in data and data["trap"] == {"cells": [[1, 2], [1, 3]], "share": 0.75}
    back = episode_from_dict(data, states[1])
    assert same(back, ep)  # cells are tuples again, the features recomputed from the maze
    assert back.trap == Trap(((1, 2), (1, 3)), 0.75) and back.trajectory == ((4, 0), (3, 0), (3, 1))
    assert back.action_probs.tolist() == probs.tolist() and not back.action_probs.flags.writeable
    # keys an Episode does not have (a newer file's, or the features) are left out
    assert same(episode_from_dict({**data, "added_later": 1, "features": None}, states[1]), ep)
    no_cheese = episode_from_dict({**data, "cheese": None, "trap": None, "action_probs": None}, states[1])
    assert no_cheese.features is None and no_cheese.trap is None and no_cheese.action_probs is None


def test_sigterm_interrupts_the_block_like_ctrl_c_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match=f"signal {int(signal.SIGTERM)}"):
        with sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not before
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this at once
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_the_block_changes_nothing() -> None:
    seen: list[object] = []

    def worker() -> None:
        with sigterm_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before]
