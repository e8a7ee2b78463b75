"""Interrupted rollouts: keep the finished episodes, and finish the run later to the same result.

Every episode of :func:`mazeinterp.rollout.run_rollouts` draws its random
numbers from its maze's own stream, so an episode's result does not depend on
which other mazes ran with it. An interrupted run (Ctrl-C, or SIGTERM under
:func:`sigterm_as_interrupt`) therefore loses nothing: its finished episodes
are written with :func:`save_partial`, and a later run over the remaining
mazes (``run_rollouts(..., indices=remaining(...))``) merged with them by
:func:`merge` is the uninterrupted run's result, episode for episode.

The partial state lives in ``RESUME_FILE`` inside the output folder, as plain
JSON: the run's :class:`ResumeKey` (the settings, the sha256 of the
checkpoint's weights, the rollout config, the level seeds and a sha256 of the
start states), every finished episode, and a sha256 checksum over all of it.
:func:`load_partial` trusts none of it before checking: the checksum, the key
against this run's (the first difference is named), and every episode
against its schema (:mod:`mazeinterp.rollout.episode_schema`), before any
maze runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.runtime.digests import data_sha256, model_sha256
from mazeinterp.maze import grid
from mazeinterp.maze.outcomes import Trap
from mazeinterp.maze.state import MazeState
from mazeinterp.runtime.messages import short_repr
from mazeinterp.runtime.outputs import to_json
from mazeinterp.rollout.config import RolloutConfig
from mazeinterp.rollout.episode_schema import check_episode_data
from mazeinterp.rollout.results import Episode, RolloutResult

if TYPE_CHECKING:
    from mazeinterp.core.model import ImpalaPolicy

__all__ = [
    "RESUME_FILE",
    "RESUME_FORMAT",
    "ResumeError",
    "ResumeKey",
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
RESUME_FORMAT = 2
"""Version of the resume file's layout (1, without checksum, is refused: run again)."""


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


def _plain(data: Any) -> Any:
    """``data`` in the plain-data form a JSON file gives back (tuples → lists, numpy → Python)."""
    return json.loads(to_json(data))


def _states_sha256(states: Sequence[MazeState]) -> str:
    digest = hashlib.sha256()
    for state in states:
        digest.update(hashlib.sha256(state.to_bytes()).digest())
    return digest.hexdigest()


_NOT_DECIDING = ("progress", "threads")  # RolloutConfig fields that never change an episode


@dataclass(frozen=True)
class ResumeKey:
    """What a resumed run must share with the interrupted one, as plain data (see :meth:`of`)."""

    settings: dict[str, Any]
    """The caller's settings that decide the episodes (the CLI: its arguments)."""
    checkpoint_sha256: str
    """sha256 of the network's weights (:func:`mazeinterp.runtime.digests.model_sha256`)."""
    config: dict[str, Any]
    """The :class:`~mazeinterp.rollout.RolloutConfig`, less ``progress`` and ``threads``."""
    mazes: list[int]
    """Level seed of every maze, in order."""
    mazes_sha256: str
    """sha256 over the start states' bytes (cheese placement and edits included)."""

    @classmethod
    def of(cls, settings: Mapping[str, Any], model: ImpalaPolicy, config: RolloutConfig,
           states: Sequence[MazeState]) -> ResumeKey:
        """The key of a run of ``model`` under ``config`` on the start states ``states`` (any length)."""
        rollout = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in _NOT_DECIDING}
        return cls(settings=_plain(dict(settings)), checkpoint_sha256=model_sha256(model), config=_plain(rollout),
                   mazes=[int(s.level_seed) for s in states], mazes_sha256=_states_sha256(states))


def save_partial(folder: str | Path, result: RolloutResult, key: ResumeKey) -> Path:
    """Write ``RESUME_FILE`` into ``folder``: the run's key, its seconds, the finished episodes and a checksum."""
    path = Path(folder) / RESUME_FILE
    data = _plain({"format": RESUME_FORMAT, **dataclasses.asdict(key), "seconds": result.seconds,
                   "episodes": [episode_to_dict(ep) for ep in result.episodes]})
    data["checksum"] = data_sha256(data)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(to_json(data) + "\n")
    tmp.replace(path)
    return path


def _difference(name: str, was: Any, now: Any) -> str | None:
    """The first difference between a stored and a given value, named (``seed was 4, now 5``); None if equal."""
    if was == now:
        return None
    if isinstance(was, dict) and isinstance(now, dict):
        for key in sorted(set(was) | set(now), key=str):
            if was.get(key) != now.get(key):
                label = key if key in now else short_repr(key)  # a stored key may be anything
                return f"{name}{label} was {short_repr(was.get(key))}, now {short_repr(now.get(key))}"
    return f"{name.rstrip('.') or 'the settings'} differ"


def _read(path: Path) -> dict[str, Any]:
    """The resume file's data once its format and checksum hold (else :class:`ResumeError`, one line)."""
    rerun = "run the command again without --resume (with --overwrite)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResumeError(f"{path} is not a resume file of an interrupted rollout "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); {rerun}") from None
    if not isinstance(data, dict):
        raise ResumeError(f"{path} is not a resume file of an interrupted rollout (a JSON {type(data).__name__}, "
                          f"not an object); {rerun}")
    if "format" not in data and "episodes" in data:
        raise ResumeError(f"{path} was written by an earlier version of mazeinterp that kept no checksum; {rerun}")
    if data.get("format") != RESUME_FORMAT:
        raise ResumeError(f"{path}: unknown format {short_repr(data.get('format'))} (this version writes "
                          f"{RESUME_FORMAT}); {rerun}")
    stored = data.pop("checksum", None)
    if stored != data_sha256(data):
        raise ResumeError(f"{path}: its checksum does not match its contents (edited or corrupted); {rerun}")
    expected = {"format", "seconds", "episodes", *(f.name for f in dataclasses.fields(ResumeKey))}
    if set(data) != expected:
        odd = sorted(set(data) ^ expected)[0]
        raise ResumeError(f"{path}: {'missing' if odd in expected else 'unknown'} key {odd!r}; {rerun}")
    return data


def load_partial(folder: str | Path, key: ResumeKey, states: Sequence[MazeState]) -> tuple[list[Episode], float]:
    """The finished episodes and seconds of the interrupted run in ``folder``, checked before anything runs.

    ``key`` is this run's :class:`ResumeKey` and ``states`` its start states (as given to
    :meth:`ResumeKey.of`). The file must be intact (its checksum), of the same checkpoint
    weights, settings, config and mazes, and every episode must pass
    :func:`~mazeinterp.rollout.episode_schema.check_episode_data`, each maze at most once.

    Raises:
        ResumeError: one line: no ``RESUME_FILE`` there, a damaged or foreign file, or the
            first thing that differs from this run (named).
    """
    path = Path(folder) / RESUME_FILE
    if not path.exists():
        raise ResumeError(f"nothing to resume in {folder}: no {RESUME_FILE} (it is left by an interrupted run)")
    data = _read(path)
    if data["checkpoint_sha256"] != key.checkpoint_sha256:
        raise ResumeError(f"cannot resume {folder}: the checkpoint's weights differ (sha256 "
                          f"{str(data['checkpoint_sha256'])[:12]}…, now {key.checkpoint_sha256[:12]}…)")
    for name in ("settings", "config"):
        differs = _difference("" if name == "settings" else "config.", data[name], getattr(key, name))
        if differs:
            raise ResumeError(f"cannot resume {folder}: {differs}")
    mazes = data["mazes"]
    if not isinstance(mazes, list) or len(mazes) != len(key.mazes):
        count = len(mazes) if isinstance(mazes, list) else "?"
        raise ResumeError(f"cannot resume {folder}: it was a run of {count} mazes, now {len(key.mazes)}")
    for position, (was, now) in enumerate(zip(mazes, key.mazes)):
        if was != now:
            raise ResumeError(f"cannot resume {folder}: maze {position} was level seed {short_repr(was)}, now {now}")
    if data["mazes_sha256"] != key.mazes_sha256:
        raise ResumeError(f"cannot resume {folder}: the mazes' start states differ (same level seeds)")
    seconds = data["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise ResumeError(f"{path}: seconds {short_repr(seconds)} is not a duration")
    if not isinstance(data["episodes"], list):
        raise ResumeError(f"{path}: episodes is not a list")
    seen: set[int] = set()
    for item in data["episodes"]:
        try:
            index = check_episode_data(item, states, int(key.config["max_steps"]))
        except ValueError as exc:
            raise ResumeError(f"{path}: {exc}") from None
        if index in seen:
            raise ResumeError(f"{path}: episode {index} is stored twice")
        seen.add(index)
    episodes = [episode_from_dict(item, states[item["index"]]) for item in data["episodes"]]
    return episodes, float(seconds)


def finish(folder: str | Path) -> None:
    """Remove ``RESUME_FILE`` from ``folder`` once the run is complete."""
    (Path(folder) / RESUME_FILE).unlink(missing_ok=True)
