"""Rollout animations: episodes step by step, written as a GIF (Pillow) or an MP4 (PyAV).

Each frame shows the maze as the agent saw it at that step (cropped to the
inner maze, the mouse drawn as procgen draws it: mirrored after a rightward
move, plain after a leftward one), the path walked so far (red) with a ring
around the mouse, and beside it the policy's move probabilities at that step;
an episode's last frame names its outcome and is held for a second. Frames are
drawn with Pillow, a few milliseconds each. An episode longer than
``max_frames`` frames is shown with a stride (every k-th step, and always its
last), which the frame's title says, so that a 500-step walk stays short.

The episodes need their trajectories, moves and move probabilities, recorded by
``RolloutConfig(record_trajectories=True, record_action_probs=True)``.

>>> config = RolloutConfig(record_trajectories=True, record_action_probs=True)   # doctest: +SKIP
>>> result = run_rollouts(policy, states, config=config)                         # doctest: +SKIP
>>> animate_rollouts(result.episodes[:3], states[:3], "rollout.gif")             # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mazeinterp.maze.moves import MOVES
from mazeinterp.maze.pixels import WORLD_SIZE

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from mazeinterp.maze.state import MazeState
    from mazeinterp.rollout import Episode

__all__ = ["DEFAULT_MAX_FRAMES", "FORMATS", "FRAME_SIZE", "MAZE_BOX", "PATH_COLOUR", "animate_rollouts",
           "cell_frame_xy", "episode_frames", "episode_pictures", "frame_title", "mouse_reflections", "render_frame",
           "shown_steps"]

PATH_COLOUR = (228, 26, 28)
"""RGB of the path walked so far and of the ring around the mouse (red shows on every maze texture)."""

FORMATS = ("gif", "mp4")
"""File formats :func:`animate_rollouts` writes, chosen by the file's suffix."""

DEFAULT_MAX_FRAMES = 120
"""Most frames of one episode; longer episodes are shown with a stride (:func:`shown_steps`)."""

_HEADER = 32   # pixels of title strip across the top
_MAZE = 256    # side of the square maze picture
_PANEL = 144   # width of the probability panel on the right
FRAME_SIZE = (_MAZE + _PANEL, _HEADER + _MAZE)
"""(width, height) of every frame in pixels: both multiples of 16, as video encoders prefer."""
MAZE_BOX = (0, _HEADER, _MAZE, _HEADER + _MAZE)
"""(left, top, right, bottom) of the maze picture inside a frame."""

_OUTCOME_WORDS = {"cheese": "reached the cheese", "top_right": "reached the top-right cell",
                  "neither": "reached neither in time"}
_HOLD_SECONDS = 1.0  # how long an episode's last frame stays


def _check_recorded(episode: Episode) -> None:
    if episode.trajectory is None or episode.action_probs is None or episode.moves is None:
        raise ValueError(f"episode {episode.index} has no recorded trajectory, moves or move probabilities; run "
                         "the rollout with RolloutConfig(record_trajectories=True, record_action_probs=True)")
    if (len(episode.trajectory) != episode.steps + 1 or len(episode.moves) != episode.steps
            or len(episode.action_probs) != episode.steps):
        raise ValueError(f"episode {episode.index}: {len(episode.trajectory)} cells, {len(episode.moves)} moves "
                         f"and {len(episode.action_probs)} probability rows do not fit its {episode.steps} steps")


def shown_steps(episode: Episode, max_frames: int = DEFAULT_MAX_FRAMES) -> list[int]:
    """The steps (0 … ``episode.steps``) drawn as frames: all of them, or every k-th and the last.

    k is the smallest stride that keeps the episode within ``max_frames`` (≥ 2) frames.
    """
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2 (the start and the end), got {max_frames}")
    steps = episode.steps
    if steps + 1 <= max_frames:
        return list(range(steps + 1))
    stride = math.ceil(steps / (max_frames - 1))
    return [*range(0, steps, stride), steps]


def episode_frames(episode: Episode, max_frames: int = DEFAULT_MAX_FRAMES) -> int:
    """Frames of ``episode`` in an animation: ``steps + 1`` up to ``max_frames`` (see :func:`shown_steps`)."""
    return len(shown_steps(episode, max_frames))


def mouse_reflections(episode: Episode, start_reflected: bool = False) -> list[bool]:
    """Whether procgen draws the mouse mirrored at each step 0 … ``steps`` of ``episode``.

    A rightward move mirrors the sprite and a leftward one turns it back, even
    when a wall stops the move (so the recorded moves decide, not the cells).
    """
    from mazeinterp.analysis.vfield import mirrored_after

    _check_recorded(episode)
    flags = [bool(start_reflected)]
    for move in episode.moves or ():
        flags.append(mirrored_after(move, flags[-1]))
    return flags


def _crop_box(maze_size: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in observation pixels of the inner maze and half a cell around it."""
    cell = 64 / WORLD_SIZE
    first = (WORLD_SIZE - maze_size) // 2 - 0.5
    low, high = first * cell, (first + maze_size + 1) * cell
    return (low, low, high, high)


def cell_frame_xy(cells: Sequence[tuple[int, int]], maze_size: int) -> np.ndarray:
    """(k, 2) frame pixel coordinates (x right, y down) of the centres of ``cells`` in a frame's maze picture."""
    left, top, right, _ = _crop_box(maze_size)
    cell = 64 / WORLD_SIZE
    margin = (WORLD_SIZE - maze_size) // 2
    rc = np.asarray(cells, dtype=float).reshape(-1, 2)
    scale = _MAZE / (right - left)
    x = ((rc[:, 1] + margin + 0.5) * cell - left) * scale + MAZE_BOX[0]
    y = ((rc[:, 0] + margin + 0.5) * cell - top) * scale + MAZE_BOX[1]
    return np.stack([x, y], axis=1)


def frame_title(episode: Episode, step: int, stride: int = 1) -> str:
    """The title of frame ``step``: the maze, its level and the step, and the stride when it is above 1."""
    title = f"maze {episode.index} (level {episode.level_seed})   step {step}/{episode.steps}"
    return title + (f"  (1 in {stride} shown)" if stride > 1 else "")


def _font(size: int):  # noqa: ANN202 - a Pillow font of either kind
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def render_frame(episode: Episode, state: MazeState, step: int, obs: np.ndarray, *,
                 stride: int = 1) -> np.ndarray:
    """Frame ``step`` (0 … steps) of ``episode`` (start state ``state``) over observation ``obs`` (64, 64, 3).

    Returns a (H, W, 3) uint8 picture of :data:`FRAME_SIZE`: the maze with the
    path up to ``step`` and a ring on the mouse, the move probabilities of that
    step, and a title; the last frame names the outcome instead of probabilities.
    ``stride`` > 1 is noted in the title (the animation shows every k-th step).
    """
    from PIL import Image, ImageDraw

    _check_recorded(episode)
    if not 0 <= step <= episode.steps:
        raise ValueError(f"step {step} is outside episode {episode.index}'s 0…{episode.steps}")
    obs = np.asarray(obs)
    if obs.shape != (64, 64, 3) or obs.dtype != np.uint8:
        raise ValueError(f"obs must be a (64, 64, 3) uint8 observation, got {obs.shape} {obs.dtype}")
    n = state.maze_size
    frame = Image.new("RGB", FRAME_SIZE, "white")
    maze = Image.fromarray(obs).resize((_MAZE, _MAZE), Image.Resampling.NEAREST, box=_crop_box(n))
    frame.paste(maze, MAZE_BOX[:2])
    draw = ImageDraw.Draw(frame)
    xy = cell_frame_xy(episode.trajectory[: step + 1], n)  # type: ignore[index]
    cell = _MAZE / (n + 1)
    width = max(2, round(cell / 8))
    if len(xy) > 1:
        draw.line([tuple(p) for p in xy], fill=PATH_COLOUR, width=width, joint="curve")
    radius = 0.35 * cell  # the ring stays inside the mouse's cell
    x, y = xy[-1]
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=PATH_COLOUR, width=max(2, width - 1))

    last = step == episode.steps
    draw.text((6, 8), frame_title(episode, step, stride), fill="black", font=_font(14))
    left = _MAZE + 10
    if last:
        draw.text((left, _HEADER + 10), "episode over:", fill="black", font=_font(13))
        words = _OUTCOME_WORDS.get(episode.outcome, episode.outcome).split(" ")
        lines = [" ".join(words[:2]), " ".join(words[2:])]
        for i, line in enumerate(lines):
            draw.text((left, _HEADER + 30 + 18 * i), line, fill="black", font=_font(13))
        return np.asarray(frame)
    draw.text((left, _HEADER + 10), "move probabilities", fill="black", font=_font(12))
    probs = episode.action_probs[step]  # type: ignore[index]
    bar_left, bar_len = left + 44, _PANEL - 62
    for i, (name, p) in enumerate(zip(MOVES, probs)):
        top = _HEADER + 36 + 30 * i
        draw.text((left, top + 2), name, fill="black", font=_font(12))
        draw.rectangle((bar_left, top, bar_left + bar_len, top + 16), outline=(160, 160, 160))
        if p > 0:
            draw.rectangle((bar_left, top, bar_left + round(bar_len * float(p)), top + 16), fill=(106, 90, 205))
        draw.text((bar_left, top + 17), f"{float(p):.2f}", fill=(90, 90, 90), font=_font(10))
    return np.asarray(frame)


def episode_pictures(episode: Episode, state: MazeState,
                     max_frames: int = DEFAULT_MAX_FRAMES) -> Iterator[tuple[np.ndarray, bool]]:
    """(frame, is last) for each shown step of ``episode`` from start state ``state``.

    Each frame is :func:`render_frame` over the observation of that step, the
    mouse on its cell and drawn mirrored as :func:`mouse_reflections` says, the
    cheese eaten once the mouse stands on it; the observations render in one batch.
    """
    from mazeinterp.core.hooks import render_states

    steps = shown_steps(episode, max_frames)
    stride = steps[1] - steps[0] if len(steps) > 1 else 1
    reflected = mouse_reflections(episode, state.mouse_reflected)
    eaten = state.without_cheese()
    states = []
    for step in steps:
        cell = episode.trajectory[step]  # type: ignore[index]
        shown = (eaten if cell == state.cheese else state).with_mouse(cell)
        states.append(shown.with_mouse_reflected(reflected[step]))
    observations = render_states(states)
    for step, obs in zip(steps, observations):
        yield render_frame(episode, state, step, obs, stride=stride), step == episode.steps


def _write_gif(frames: Iterator[tuple[np.ndarray, bool]], path: Path, fps: int) -> None:
    from PIL import Image

    pictures: list[PILImage.Image] = []
    durations: list[int] = []
    for frame, last in frames:
        # one adaptive palette per frame keeps each maze's texture; "P" frames keep memory small
        pictures.append(Image.fromarray(frame).quantize(colors=255, method=Image.Quantize.MEDIANCUT))
        durations.append(round(1000 * (_HOLD_SECONDS if last else 1 / fps)))
    pictures[0].save(path, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0)


def _write_mp4(frames: Iterator[tuple[np.ndarray, bool]], path: Path, fps: int) -> None:
    try:
        import av
    except ImportError:
        raise ValueError("an MP4 animation needs the PyAV package: pip install 'mazeinterp[video]' "
                         "(or write a .gif)") from None
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = FRAME_SIZE
        stream.pix_fmt = "yuv420p"
        for frame, last in frames:
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for _ in range(max(1, round(_HOLD_SECONDS * fps)) if last else 1):
                container.mux(stream.encode(picture))
        container.mux(stream.encode())


def animate_rollouts(episodes: Sequence[Episode], states: Sequence[MazeState], path: str | Path, *,
                     fps: int = 8, max_frames: int = DEFAULT_MAX_FRAMES) -> Path:
    """Write an animation of ``episodes`` one after another, a frame per shown step (:func:`render_frame`).

    Args:
        episodes: episodes with recorded trajectories, moves and move probabilities.
        states: each episode's start state (as given to the rollout, cheese placed).
        path: the file to write, ``.gif`` or ``.mp4`` (MP4 needs the ``video`` extra, PyAV).
            It is written whole or not at all.
        fps: frames per second; each episode's last frame stays for a second.
        max_frames: most frames per episode (:func:`shown_steps`).

    Returns:
        ``path``; it holds ``sum(episode_frames(e, max_frames) for e in episodes)`` pictures of
        :data:`FRAME_SIZE` (an MP4 repeats each last frame to hold it).
    """
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise ValueError(f"an animation is written as {' or '.join('.' + f for f in FORMATS)}, not {path.name!r}")
    if not 1 <= fps <= 60:
        raise ValueError(f"fps must be between 1 and 60, got {fps}")
    episodes, states = list(episodes), list(states)
    if not episodes:
        raise ValueError("animate_rollouts needs at least one episode")
    if len(episodes) != len(states):
        raise ValueError(f"{len(episodes)} episodes but {len(states)} start states")
    for episode, state in zip(episodes, states):
        _check_recorded(episode)
        if episode.trajectory[0] != state.mouse or episode.cheese != state.cheese:  # type: ignore[index]
            raise ValueError(f"episode {episode.index} did not start from the given state (mouse "
                             f"{state.mouse}, cheese {state.cheese})")
    shown_steps(episodes[0], max_frames)  # checks max_frames before any work

    def frames() -> Iterator[tuple[np.ndarray, bool]]:
        for episode, state in zip(episodes, states):
            yield from episode_pictures(episode, state, max_frames)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        (_write_gif if kind == "gif" else _write_mp4)(frames(), partial, fps)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
