"""Resuming an interrupted rollout: which mazes remain, merging, and the resume file's round trip and checks."""

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
    RESUME_FILE,
    ResumeError,
    episode_from_dict,
    episode_to_dict,
    finish,
    load_partial,
    merge,
    remaining,
    save_partial,
    sigterm_as_interrupt,
)
from mazeinterp.rollout.results import Episode, RolloutResult

SETTINGS = {"seed": 0, "max_steps": 50, "checkpoint": "tiny"}


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


def test_a_saved_partial_run_loads_back_and_finish_removes_it(tmp_path: Path, states: list[MazeState]) -> None:
    saved = result(episode(0, steps=4, state=states[0]), episode(1, steps=9, state=states[1]), seconds=3.25)
    path = save_partial(tmp_path, saved, SETTINGS, n_mazes=2)
    assert path == tmp_path / RESUME_FILE and not list(tmp_path.glob(".*tmp"))
    episodes, seconds = load_partial(tmp_path, dict(SETTINGS), states)
    assert len(episodes) == 2 and all(map(same, episodes, saved.episodes)) and seconds == 3.25
    finish(tmp_path)
    assert not path.exists()
    finish(tmp_path)  # nothing left to remove is fine
    with pytest.raises(ResumeError, match=f"nothing to resume in {tmp_path}: no {RESUME_FILE}"):
        load_partial(tmp_path, SETTINGS, states)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({**SETTINGS, "seed": 1}, "seed was 0, now 1"), ({**SETTINGS, "extra": 2}, "extra was None, now 2"),
     ({"seed": 0, "max_steps": 50}, "checkpoint was 'tiny', now None")],
    ids=["changed", "added", "dropped"],
)  # fmt: skip
def test_a_resume_with_other_settings_is_refused(tmp_path: Path, states: list[MazeState], settings,
                                                 message: str) -> None:
    save_partial(tmp_path, result(episode(0, state=states[0])), SETTINGS, n_mazes=2)
    with pytest.raises(ResumeError, match=f"cannot resume {tmp_path}: {message}"):
        load_partial(tmp_path, settings, states)
    with pytest.raises(ResumeError, match="it was a run of 2 mazes, now 1"):
        load_partial(tmp_path, SETTINGS, states[:1])


@pytest.mark.parametrize("index", [2, -1])
def test_an_episode_outside_the_mazes_is_refused(tmp_path: Path, states: list[MazeState], index: int) -> None:
    path = save_partial(tmp_path, result(episode(0, state=states[0])), SETTINGS, n_mazes=2)
    data = json.loads(path.read_text())
    data["episodes"][0]["index"] = index
    path.write_text(json.dumps(data))
    with pytest.raises(ResumeError, match=f"episode index {index} is outside the 2 mazes"):
        load_partial(tmp_path, SETTINGS, states)


def test_a_file_that_is_no_resume_file_is_refused(tmp_path: Path, states: list[MazeState]) -> None:
    (tmp_path / RESUME_FILE).write_text('{"settings": {}}')
    with pytest.raises(ResumeError, match="is not a resume file of an interrupted rollout"):
        load_partial(tmp_path, {}, states)
    (tmp_path / RESUME_FILE).write_text("{not json")
    with pytest.raises(ResumeError, match="is not a resume file"):
        load_partial(tmp_path, {}, states)
    # a file without "seconds" (or with null) counts zero seconds
    (tmp_path / RESUME_FILE).write_text('{"settings": {}, "n_mazes": 2, "episodes": [], "seconds": null}')
    assert load_partial(tmp_path, {}, states) == ([], 0.0)


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
