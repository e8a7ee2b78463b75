"""Interrupted rollouts: keep the finished episodes, and finish the run later to the same result.

Every episode of :func:`mazeinterp.rollout.run_rollouts` draws its random
numbers from its maze's own stream, so an episode's result does not depend on
which other mazes ran with it. An interrupted run (Ctrl-C, or SIGTERM under
:func:`sigterm_as_interrupt`) therefore loses nothing: its finished episodes
are written with :func:`save_partial`, and a later run over the remaining
mazes (``run_rollouts(..., indices=remaining(...))``) merged with them by
:func:`merge` is the uninterrupted run's result, episode for episode.

The partial state lives in ``RESUME_FILE`` inside the output folder: the
settings that decide the result (checked on resume) and every finished
episode as plain JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mazeinterp.maze import grid
from mazeinterp.maze.outcomes import Trap
from mazeinterp.maze.state import MazeState
from mazeinterp.outputs import to_json
from mazeinterp.rollout.results import Episode, RolloutResult

__all__ = [
    "RESUME_FILE",
    "ResumeError",
    "episode_from_dict",
    "episode_to_dict",
    "finish",
    "load_partial",
    "merge",
    "remaining",
    "save_partial",
    "sigterm_as_interrupt",
]

RESUME_FILE = "rollout_resume.json"
"""Name, inside the output folder, of the file an interrupted rollout leaves for ``--resume``."""


class ResumeError(ValueError):
    """There is nothing to resume, or the partial run was made with other settings (the message says which)."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt (as Ctrl-C does), so a killed run can save its work.

    Only in the main thread (elsewhere signals cannot be handled; the block then changes nothing).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the dataclasses hold (cells, trajectories)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def episode_to_dict(episode: Episode) -> dict[str, Any]:
    """The episode as plain data; its maze features are left out (they are recomputed from the maze)."""
    data = {f.name: getattr(episode, f.name) for f in dataclasses.fields(episode) if f.name != "features"}
    if episode.trap is not None:
        data["trap"] = {"cells": episode.trap.cells, "share": episode.trap.share}
    if episode.action_probs is not None:
        data["action_probs"] = episode.action_probs.tolist()
    return data


def episode_from_dict(data: Mapping[str, Any], state: MazeState) -> Episode:
    """The :class:`Episode` of :func:`episode_to_dict` output; ``state`` is its maze's start state (for features)."""
    known = {f.name for f in dataclasses.fields(Episode)}
    values = {k: _tuples(v) for k, v in data.items() if k in known and k != "features"}
    if values.get("trap") is not None:
        values["trap"] = Trap(cells=_tuples(data["trap"]["cells"]), share=float(data["trap"]["share"]))
    if values.get("action_probs") is not None:
        probs = np.asarray(data["action_probs"], dtype=np.float64)
        probs.setflags(write=False)
        values["action_probs"] = probs
    cheese = values.get("cheese")
    features = grid.maze_features(state.open_cells, cheese) if cheese is not None else None
    return Episode(**values, features=features)


def remaining(count: int, finished: Sequence[Episode]) -> list[int]:
    """Maze positions ``0 … count-1`` without a finished episode, in order."""
    done = {ep.index for ep in finished}
    return [i for i in range(count) if i not in done]


def merge(finished: Sequence[Episode], result: RolloutResult, seconds_before: float = 0.0) -> RolloutResult:
    """``result`` with the earlier ``finished`` episodes added, in maze order.

    Frames are the sum of the episodes' steps (one forward pass per step of
    each episode, as an uninterrupted run counts them); seconds add up.
    """
    episodes = tuple(sorted((*finished, *result.episodes), key=lambda ep: ep.index))
    indices = [ep.index for ep in episodes]
    if len(set(indices)) != len(indices):
        raise ValueError("an episode was run twice: the finished episodes overlap the new ones")
    return dataclasses.replace(result, episodes=episodes, frames=sum(ep.steps for ep in episodes),
                               seconds=seconds_before + result.seconds)


def save_partial(folder: str | Path, result: RolloutResult, settings: Mapping[str, Any], n_mazes: int) -> Path:
    """Write ``RESUME_FILE`` into ``folder``: the settings, the run's size and the finished episodes."""
    path = Path(folder) / RESUME_FILE
    data = {"settings": dict(settings), "n_mazes": n_mazes, "seconds": result.seconds,
            "episodes": [episode_to_dict(ep) for ep in result.episodes]}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(to_json(data) + "\n")
    tmp.replace(path)
    return path


def load_partial(folder: str | Path, settings: Mapping[str, Any],
                 states: Sequence[MazeState]) -> tuple[list[Episode], float]:
    """The finished episodes and seconds of the interrupted run in ``folder``.

    Raises:
        ResumeError: no ``RESUME_FILE`` there, or it was written with other
            settings or another number of mazes (the first difference is named).
    """
    path = Path(folder) / RESUME_FILE
    if not path.is_file():
        raise ResumeError(f"nothing to resume in {folder}: no {RESUME_FILE} (it is left by an interrupted run)")
    try:
        data = json.loads(path.read_text())
        stored, n_mazes = data["settings"], int(data["n_mazes"])
        episodes_data = list(data["episodes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResumeError(f"{path} is not a resume file of an interrupted rollout ({exc})") from None
    given = json.loads(to_json(dict(settings)))  # the same plain-data form as stored
    for key in sorted(set(stored) | set(given)):
        if stored.get(key) != given.get(key):
            raise ResumeError(f"cannot resume {folder}: {key} was {stored.get(key)!r}, now {given.get(key)!r}")
    if n_mazes != len(states):
        raise ResumeError(f"cannot resume {folder}: it was a run of {n_mazes} mazes, now {len(states)}")
    episodes = []
    for item in episodes_data:
        index = int(item["index"])
        if not 0 <= index < len(states):
            raise ResumeError(f"{path}: episode index {index} is outside the {len(states)} mazes")
        episodes.append(episode_from_dict(item, states[index]))
    return episodes, float(data.get("seconds") or 0.0)


def finish(folder: str | Path) -> None:
    """Remove ``RESUME_FILE`` from ``folder`` once the run is complete."""
    (Path(folder) / RESUME_FILE).unlink(missing_ok=True)
