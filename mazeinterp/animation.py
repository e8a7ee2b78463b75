"""Rollout animations: episodes step by step, written as a GIF (matplotlib's Pillow writer).

Each frame shows the maze as the agent sees it with the mouse on its cell of
that step, the path walked so far (red), and beside it the policy's move
probabilities at that step; an episode's last frame names its outcome. The
episodes need their trajectories and move probabilities, recorded by
``RolloutConfig(record_trajectories=True, record_action_probs=True)``.

>>> config = RolloutConfig(record_trajectories=True, record_action_probs=True)   # doctest: +SKIP
>>> result = run_rollouts(policy, states, config=config)                         # doctest: +SKIP
>>> animate_rollouts(result.episodes[:3], states[:3], "rollout.gif")             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mazeinterp.model import MOVES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mazeinterp.maze.state import MazeState
    from mazeinterp.rollout import Episode

__all__ = ["PATH_COLOUR", "RolloutFrame", "animate_rollouts", "episode_frames", "rollout_figure"]

PATH_COLOUR = "#e41a1c"
"""Colour of the path walked so far and of the ring around the mouse (red shows on every maze texture)."""

_OUTCOME_WORDS = {"cheese": "reached the cheese", "top_right": "reached the top-right cell",
                  "neither": "reached neither in time"}


def _check_recorded(episode: Episode) -> None:
    if episode.trajectory is None or episode.action_probs is None:
        raise ValueError(f"episode {episode.index} has no recorded trajectory or move probabilities; run the "
                         "rollout with RolloutConfig(record_trajectories=True, record_action_probs=True)")
    if len(episode.trajectory) != episode.steps + 1 or len(episode.action_probs) != episode.steps:
        raise ValueError(f"episode {episode.index}: {len(episode.trajectory)} cells and "
                         f"{len(episode.action_probs)} probability rows do not fit its {episode.steps} steps")


def episode_frames(episode: Episode) -> int:
    """Frames of ``episode`` in an animation: one per step and one for the start (``steps + 1``)."""
    return episode.steps + 1


def _frame_states(episode: Episode, state: MazeState) -> list[MazeState]:
    """The maze with the mouse on each trajectory cell; on the cheese cell, the cheese is eaten."""
    eaten = state.without_cheese()
    return [(eaten if cell == state.cheese else state).with_mouse(cell) for cell in episode.trajectory or ()]


class RolloutFrame:
    """The artists of an animation frame on two axes; :meth:`show` moves them to any step of any episode.

    ``maze_ax`` holds the observation, cropped to the inner maze, the path walked so far and a ring
    around the mouse (:data:`PATH_COLOUR`);
    ``probs_ax`` the move probabilities at the step. Updating artists in place
    (instead of redrawing the axes) keeps a frame to a few milliseconds.
    """

    def __init__(self, maze_ax: Axes, probs_ax: Axes) -> None:
        self.maze_ax, self.probs_ax = maze_ax, probs_ax
        self.image = maze_ax.imshow(np.zeros((64, 64, 3), dtype=np.uint8), interpolation="nearest")
        (self.path,) = maze_ax.plot([], [], color=PATH_COLOUR, lw=2, solid_capstyle="round")
        (self.mouse,) = maze_ax.plot([], [], "o", ms=9, mfc="none", mec=PATH_COLOUR, mew=1.5)
        maze_ax.set_xticks([])
        maze_ax.set_yticks([])
        self.bars = probs_ax.bar(range(len(MOVES)), np.zeros(len(MOVES)), color="slateblue")
        probs_ax.set_xticks(range(len(MOVES)))
        probs_ax.set_xticklabels(MOVES, fontsize=7)
        probs_ax.set_ylim(0, 1)
        probs_ax.set_yticks([0, 0.5, 1])
        probs_ax.tick_params(axis="y", labelsize=7)

    def show(self, episode: Episode, state: MazeState, step: int, obs: np.ndarray) -> None:
        """Frame ``step`` (0 … steps) of ``episode`` (start state ``state``), over observation ``obs`` (64, 64, 3)
        with the mouse on ``trajectory[step]``; the last frame names the outcome and has no probabilities."""
        from mazeinterp.plots import cell_centre_xy, crop_to_maze

        _check_recorded(episode)
        if not 0 <= step <= episode.steps:
            raise ValueError(f"step {step} is outside episode {episode.index}'s 0…{episode.steps}")
        last = step == episode.steps
        self.image.set_data(obs)
        n = state.maze_size
        crop_to_maze(self.maze_ax, n, pad_cells=0.5)
        xy = cell_centre_xy(episode.trajectory[: step + 1], n)  # type: ignore[index]
        self.path.set_data(xy[:, 0], xy[:, 1])
        self.mouse.set_data(xy[-1:, 0], xy[-1:, 1])
        probs = np.zeros(len(MOVES)) if last else episode.action_probs[step]  # type: ignore[index]
        for bar, p in zip(self.bars, probs):
            bar.set_height(p)
        title = f"maze {episode.index} (level {episode.level_seed}), step {step}/{episode.steps}"
        if last:
            title += f"\n{_OUTCOME_WORDS.get(episode.outcome, episode.outcome)}"
        self.maze_ax.set_title(title, fontsize=8)
        self.probs_ax.set_title("episode over" if last else "move probabilities", fontsize=8)


def rollout_figure(size: float = 3.2) -> tuple[Figure, RolloutFrame]:
    """A figure ``1.6 · size`` × ``size`` inches with the maze (left) and probability (right) axes of a frame."""
    from mazeinterp.plots import new_figure

    fig, _ = new_figure(ncols=2, size=size)
    fig.clear()
    fig.set_size_inches(1.6 * size, size)
    return fig, RolloutFrame(fig.add_axes((0.02, 0.02, 0.58, 0.86)), fig.add_axes((0.68, 0.15, 0.3, 0.7)))


def animate_rollouts(episodes: Sequence[Episode], states: Sequence[MazeState], path: str | Path, *,
                     fps: int = 6, size: float = 3.2, dpi: int = 80) -> Path:
    """Write a GIF of ``episodes`` one after another, a frame per step (:class:`RolloutFrame`).

    Args:
        episodes: episodes with recorded trajectories and move probabilities.
        states: each episode's start state (as given to the rollout, cheese placed).
        path: the GIF file to write.
        fps: frames per second.
        size: height of the figure in inches (the maze panel is square).
        dpi: pixels per inch; a frame is ``1.6 · size · dpi`` × ``size · dpi`` pixels (rounded down).

    Returns:
        ``path``; the GIF has ``sum(episode_frames(e) for e in episodes)`` frames.
    """
    from matplotlib.animation import PillowWriter

    from mazeinterp.hooks import render_states

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
    frames = [(i, step) for i, episode in enumerate(episodes) for step in range(episode_frames(episode))]
    observations = [render_states(_frame_states(e, s)) for e, s in zip(episodes, states)]
    fig, artists = rollout_figure(size)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = PillowWriter(fps=fps)
    try:
        with writer.saving(fig, path, dpi):  # one draw per frame (FuncAnimation would draw each twice)
            for i, step in frames:
                artists.show(episodes[i], states[i], step, observations[i][step])
                writer.grab_frame()
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
