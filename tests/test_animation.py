"""Rollout animations: recorded move probabilities, and GIFs whose frames show the recorded path step by step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mazeinterp import cli
from mazeinterp.animation import animate_rollouts, episode_frames, rollout_figure
from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.model import MOVE_DELTAS, ImpalaPolicy
from mazeinterp.plots import cell_centre_xy
from mazeinterp.rollout import RolloutConfig, ShortestPathPolicy, run_rollouts
from mazeinterp.vfield import move_probs_for_states

# cheese off the top-right path: to the cheese in 6 steps, to the top-right cell in 8
MAZE = """
.....
.####
....C
.####
.....
"""
RECORD = RolloutConfig(progress=False, record_trajectories=True, record_action_probs=True)
SIZE, DPI = 2.5, 80  # frames of 320 × 200 pixels


@pytest.fixture(scope="module")
def hand_made(seeded_states: list[MazeState]) -> MazeState:
    base = next(s for s in seeded_states if s.maze_size == 5)
    open_cells, cheese = grid.parse_ascii(MAZE)
    return base.without_cheese().with_mouse(grid.start_cell(5)).with_layout(open_cells, cheese)


def test_action_probs_are_recorded_only_when_asked(model, hand_made):
    plain = run_rollouts(model, [hand_made], config=RolloutConfig(progress=False, max_steps=4))
    assert plain.episodes[0].action_probs is None
    recorded = run_rollouts(model, [hand_made], config=RolloutConfig(progress=False, max_steps=4,
                                                                     record_action_probs=True))
    ep = recorded.episodes[0]
    assert ep.outcome == plain.episodes[0].outcome and ep.steps == plain.episodes[0].steps
    assert ep.action_probs.shape == (ep.steps, 5) and not ep.action_probs.flags.writeable
    assert np.allclose(ep.action_probs.sum(axis=1), 1.0)
    # step 0 is the start observation: the policy's probabilities there, computed directly
    assert np.allclose(ep.action_probs[0], move_probs_for_states(model, [hand_made])[0], atol=1e-5)


def test_scripted_policy_probs_pick_each_recorded_move(hand_made):
    ep = run_rollouts(ShortestPathPolicy("top_right"), [hand_made], config=RECORD).episodes[0]
    moves = [tuple(np.subtract(b, a)) for a, b in zip(ep.trajectory[:-1], ep.trajectory[1:])]
    assert [tuple(MOVE_DELTAS[m]) for m in ep.action_probs.argmax(axis=1)] == moves
    assert np.allclose(ep.action_probs.max(axis=1), 1.0)


def _is_red(pixels: np.ndarray, xy: np.ndarray, radius: int) -> bool:
    """Whether any pixel within ``radius`` of display point ``xy`` (x right, y up) is the path's red."""
    h = pixels.shape[0]
    col, row = int(round(xy[0])), int(round(h - xy[1]))
    patch = pixels[row - radius : row + radius + 1, col - radius : col + radius + 1].astype(int)
    return bool(((patch[..., 0] > 170) & (patch[..., 1] < 90) & (patch[..., 2] < 90)).any())


def test_gif_frames_show_the_path_so_far(tmp_path: Path, hand_made):
    episodes = run_rollouts(ShortestPathPolicy("cheese"), [hand_made], config=RECORD).episodes \
        + run_rollouts(ShortestPathPolicy("top_right"), [hand_made], config=RECORD).episodes
    assert [ep.steps for ep in episodes] == [6, 8]
    path = animate_rollouts(episodes, [hand_made, hand_made], tmp_path / "walk.gif", size=SIZE, dpi=DPI)
    gif = Image.open(path)
    assert gif.n_frames == sum(episode_frames(ep) for ep in episodes) == 7 + 9
    assert gif.size == (320, 200)

    # where cell centres land in a frame: the same figure, laid out at the GIF's resolution
    fig, artists = rollout_figure(SIZE)
    fig.set_dpi(DPI)
    frame = 0
    for ep in episodes:
        artists.show(ep, hand_made, 0, np.zeros((64, 64, 3), np.uint8))
        fig.canvas.draw()  # lays the axes out (equal aspect) as the writer does
        to_pixels = artists.maze_ax.transData.transform
        centres = cell_centre_xy(ep.trajectory, 5)
        for step in range(episode_frames(ep)):
            gif.seek(frame)
            pixels = np.asarray(gif.convert("RGB"))
            for i in range(len(ep.trajectory) - 1):
                midpoint = to_pixels((centres[i] + centres[i + 1]) / 2)
                walked = i < step
                assert _is_red(pixels, midpoint, 1 if walked else 2) == walked, (ep.outcome, step, i)
            frame += 1


def test_frame_shows_the_step_probabilities_and_the_outcome(hand_made):
    ep = run_rollouts(ShortestPathPolicy("cheese"), [hand_made], config=RECORD).episodes[0]
    _, artists = rollout_figure()
    obs = np.zeros((64, 64, 3), np.uint8)
    artists.show(ep, hand_made, 2, obs)
    assert [bar.get_height() for bar in artists.bars] == list(ep.action_probs[2])
    assert "step 2/6" in artists.maze_ax.get_title()
    artists.show(ep, hand_made, 6, obs)
    assert "reached the cheese" in artists.maze_ax.get_title()
    assert [bar.get_height() for bar in artists.bars] == [0.0] * 5
    with pytest.raises(ValueError, match="step 7 is outside"):
        artists.show(ep, hand_made, 7, obs)


def test_animation_refuses_unrecorded_or_mismatched_episodes(tmp_path: Path, hand_made, seeded_states):
    bare = run_rollouts(ShortestPathPolicy("cheese"), [hand_made], config=RolloutConfig(progress=False))
    with pytest.raises(ValueError, match="record_trajectories=True, record_action_probs=True"):
        animate_rollouts(bare.episodes, [hand_made], tmp_path / "a.gif")
    recorded = run_rollouts(ShortestPathPolicy("cheese"), [hand_made], config=RECORD)
    with pytest.raises(ValueError, match="1 episodes but 2 start states"):
        animate_rollouts(recorded.episodes, [hand_made, hand_made], tmp_path / "a.gif")
    other = next(s for s in seeded_states if s.maze_size == 5 and s.cheese != hand_made.cheese)
    with pytest.raises(ValueError, match="did not start from the given state"):
        animate_rollouts(recorded.episodes, [other], tmp_path / "a.gif")
    assert not (tmp_path / "a.gif").exists()


def test_cli_rollout_animate(tmp_path: Path, capsys):
    import torch

    from mazeinterp.checkpoint import save_policy

    torch.manual_seed(0)
    save_policy(ImpalaPolicy(scale=1), tmp_path / "tiny.pt")
    out = tmp_path / "run"
    argv = ["rollout", "--checkpoint", str(tmp_path / "tiny.pt"), "--n-mazes", "3", "--max-steps", "4",
            "--animate", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    rows = (out / "episodes.csv").read_text().splitlines()
    assert len(rows) == 4
    gif = Image.open(out / "rollout.gif")
    steps = [int(row.split(",")[4]) for row in rows[1:3]]  # the first two episodes' "steps" column
    assert gif.n_frames == sum(s + 1 for s in steps)
    assert cli.main([*argv[:-4], "--animate", "4", "--out", str(tmp_path / "other")]) == cli.EXIT_BAD_INPUT
    assert "--animate 4 asks for more episodes than --n-mazes 3" in capsys.readouterr().err
