"""Rollout animations: recorded move probabilities, and GIFs whose frames show the recorded path step by step."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mazeinterp import cli
from mazeinterp.viz.animation import (
    DEFAULT_MAX_FRAMES,
    FRAME_SIZE,
    animate_rollouts,
    cell_frame_xy,
    episode_frames,
    episode_pictures,
    frame_title,
    mouse_reflections,
    render_frame,
    shown_steps,
)
from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import MOVE_DELTAS, ImpalaPolicy
from mazeinterp.maze.moves import Move
from mazeinterp.rollout import RolloutConfig, ShortestPathPolicy, run_rollouts
from mazeinterp.rollout.policies import ScriptedPolicy, move_logits
from mazeinterp.analysis.vfield import move_probs_for_states

# cheese off the top-right path: to the cheese in 6 steps, to the top-right cell in 8
MAZE = """
.....
.####
....C
.####
.....
"""
RECORD = RolloutConfig(progress=False, record_trajectories=True, record_action_probs=True)


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
    """Whether any pixel within ``radius`` of frame point ``xy`` (x right, y down) is the path's red."""
    col, row = int(round(xy[0])), int(round(xy[1]))
    patch = pixels[row - radius : row + radius + 1, col - radius : col + radius + 1].astype(int)
    return bool(((patch[..., 0] > 170) & (patch[..., 1] < 90) & (patch[..., 2] < 90)).any())


def test_gif_frames_show_the_path_so_far(tmp_path: Path, hand_made):
    episodes = run_rollouts(ShortestPathPolicy("cheese"), [hand_made], config=RECORD).episodes \
        + run_rollouts(ShortestPathPolicy("top_right"), [hand_made], config=RECORD).episodes
    assert [ep.steps for ep in episodes] == [6, 8]
    path = animate_rollouts(episodes, [hand_made, hand_made], tmp_path / "walk.gif")
    gif = Image.open(path)
    assert gif.n_frames == sum(episode_frames(ep) for ep in episodes) == 7 + 9
    assert gif.size == FRAME_SIZE == (400, 288)
    frame = 0
    for ep in episodes:
        centres = cell_frame_xy(ep.trajectory, 5)
        for step in range(episode_frames(ep)):
            gif.seek(frame)
            pixels = np.asarray(gif.convert("RGB"))
            for i in range(len(ep.trajectory) - 1):
                midpoint = (centres[i] + centres[i + 1]) / 2
                walked = i < step
                assert _is_red(pixels, midpoint, 1 if walked else 3) == walked, (ep.outcome, step, i)
            frame += 1
    assert not list(tmp_path.glob(".*partial"))


def test_cell_centres_land_on_the_cells_of_the_frame(hand_made):
    # the maze picture shows the inner 5×5 maze and half a cell around it: 6 cells over 256 pixels
    side = 256 / 6
    assert np.allclose(cell_frame_xy([(0, 0), (4, 4), (2, 3)], 5),
                       [[side, 32 + side], [5 * side, 32 + 5 * side], [4 * side, 32 + 3 * side]])
    # a 25×25 maze shows the whole observation less a half-cell margin; cells stay 256/26 apart
    assert np.allclose(np.diff(cell_frame_xy([(0, 0), (0, 1)], 25), axis=0), [[256 / 26, 0]])


def _purple_run(pixels: np.ndarray, row: int, start: int, stop: int) -> int:
    strip = pixels[row, start:stop].astype(int)
    return int(((abs(strip[:, 0] - 106) < 8) & (abs(strip[:, 1] - 90) < 8) & (abs(strip[:, 2] - 205) < 8)).sum())


def test_frame_shows_the_step_probabilities_and_the_outcome(hand_made):
    from mazeinterp.core.hooks import render_states

    ep = run_rollouts(ShortestPathPolicy("cheese"), [hand_made], config=RECORD).episodes[0]
    obs = render_states([hand_made])[0]
    pixels = render_frame(ep, hand_made, 2, obs)
    assert pixels.shape == (288, 400, 3) and pixels.dtype == np.uint8
    # the maze picture is the observation's crop: its corner is the wall ring's texture, not white
    assert (pixels[40, 4] != 255).any()
    # one bar per move, in Move order, filled in proportion to its probability (82 pixels for 1.0)
    bar_left, bar_len = 256 + 10 + 44, 144 - 62
    filled = [_purple_run(pixels, 32 + 36 + 30 * i + 8, bar_left, bar_left + bar_len + 1) for i in range(5)]
    assert filled == [round(bar_len * p) + 1 if p > 0 else 0 for p in ep.action_probs[2]]
    assert frame_title(ep, 2) == f"maze 0 (level {ep.level_seed})   step 2/6"
    assert frame_title(ep, 250, stride=5).endswith("step 250/6  (1 in 5 shown)")
    last = render_frame(ep, hand_made, 6, obs)
    assert sum(_purple_run(last, 32 + 36 + 30 * i + 8, bar_left, 400) for i in range(5)) == 0
    with pytest.raises(ValueError, match="step 7 is outside"):
        render_frame(ep, hand_made, 7, obs)
    with pytest.raises(ValueError, match=r"\(64, 64, 3\) uint8"):
        render_frame(ep, hand_made, 1, obs[:32])


def test_long_episodes_show_every_kth_step_and_always_the_last():
    from mazeinterp.rollout import Episode

    def walk(steps: int) -> Episode:
        return Episode(index=0, level_seed=0, maze_size=5, cheese=None, has_decision_square=False,
                       decision_square=None, outcome="neither", steps=steps, start=(4, 0))

    assert shown_steps(walk(6), max_frames=7) == [0, 1, 2, 3, 4, 5, 6]
    assert shown_steps(walk(7), max_frames=7) == [0, 2, 4, 6, 7]    # stride ceil(7 / 6) = 2
    steps = shown_steps(walk(500))                                     # stride ceil(500 / 119) = 5
    assert steps[:3] == [0, 5, 10] and steps[-2:] == [495, 500] and len(steps) == 101 <= DEFAULT_MAX_FRAMES
    for n in range(1, 60):
        for cap in (2, 3, 10):
            shown = shown_steps(walk(n), cap)
            assert shown[0] == 0 and shown[-1] == n and len(shown) <= cap and shown == sorted(set(shown))
    with pytest.raises(ValueError, match="at least 2"):
        shown_steps(walk(5), max_frames=1)


class _Script(ScriptedPolicy):
    """Plays a fixed list of moves in a single env, then stands still."""

    def __init__(self, moves: list[int]) -> None:
        self.moves, self.step = list(moves), 0

    def logits(self, states):
        move = self.moves[self.step] if self.step < len(self.moves) else Move.NOOP
        self.step += 1
        return move_logits([move] * len(states))


def test_the_mouse_is_drawn_mirrored_after_a_rightward_move_even_into_a_wall(hand_made):
    from mazeinterp.core.hooks import render_states

    script = [Move.UP, Move.RIGHT, Move.UP, Move.LEFT, Move.RIGHT, Move.DOWN]
    config = dataclasses.replace(RECORD, max_steps=len(script))
    ep = run_rollouts(_Script(script), [hand_made], config=config).episodes[0]
    assert ep.moves == tuple(int(m) for m in script)
    # RIGHT at (3, 0) meets a wall, LEFT at (2, 0) the edge, DOWN at (2, 1) a wall: the cells stay
    assert ep.trajectory == ((4, 0), (3, 0), (3, 0), (2, 0), (2, 0), (2, 1), (2, 1))
    assert mouse_reflections(ep) == [False, False, True, True, False, True, True]
    assert mouse_reflections(ep, start_reflected=True)[:2] == [True, True]
    frames = [frame for frame, _ in episode_pictures(ep, hand_made)]
    assert len(frames) == ep.steps + 1
    for step in (2, 5):
        moved = hand_made.with_mouse(ep.trajectory[step])
        mirrored, plain = render_states([moved.with_mouse_reflected(True), moved.with_mouse_reflected(False)])
        assert (mirrored != plain).any(), "the sprite looks different mirrored"
        assert np.array_equal(frames[step], render_frame(ep, hand_made, step, mirrored))
        assert not np.array_equal(frames[step], render_frame(ep, hand_made, step, plain))
    with pytest.raises(ValueError, match="record_trajectories=True"):
        mouse_reflections(dataclasses.replace(ep, moves=None))


def test_mp4_holds_every_frame_and_the_last_for_a_second(tmp_path: Path, hand_made):
    av = pytest.importorskip("av", reason="MP4 needs the video extra (PyAV)")
    ep = run_rollouts(ShortestPathPolicy("cheese"), [hand_made], config=RECORD).episodes[0]
    path = animate_rollouts([ep], [hand_made], tmp_path / "walk.mp4", fps=4)
    with av.open(str(path)) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == ep.steps + 4            # 6 steps shown once, the last frame held for 4 frames (1 s)
    assert frames[0].shape == (288, 400, 3)
    centres = cell_frame_xy(ep.trajectory, 5)
    assert _is_red(frames[-1], (centres[0] + centres[1]) / 2, 2) and not _is_red(frames[0], (centres[0] + centres[1]) / 2, 2)


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
    with pytest.raises(ValueError, match=r"\.gif or \.mp4, not 'a.avi'"):
        animate_rollouts(recorded.episodes, [hand_made], tmp_path / "a.avi")
    with pytest.raises(ValueError, match="fps must be between 1 and 60"):
        animate_rollouts(recorded.episodes, [hand_made], tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match="max_frames must be at least 2"):
        animate_rollouts(recorded.episodes, [hand_made], tmp_path / "a.gif", max_frames=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_rollout_animate(tmp_path: Path, capsys):
    import torch

    from mazeinterp.checkpoints.registry import save_policy

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
    # a frame cap shows every k-th step of longer episodes, and always the last
    capped = [*argv[:-2], "--animate-frames", "2", "--out", str(tmp_path / "capped")]
    assert cli.main(capped) == 0
    assert Image.open(tmp_path / "capped" / "rollout.gif").n_frames == 2 * 2
    assert cli.main([*argv[:-4], "--animate", "4", "--out", str(tmp_path / "other")]) == cli.EXIT_BAD_INPUT
    assert "--animate 4 asks for more episodes than --n-mazes 3" in capsys.readouterr().err
    assert cli.main([*argv[:-2], "--animate-frames", "1", "--out", str(tmp_path / "o2")]) == cli.EXIT_BAD_INPUT
    assert "--animate-frames must be at least 2" in capsys.readouterr().err
    if importlib.util.find_spec("av") is not None:
        assert cli.main([*argv[:-2], "--animate-format", "mp4", "--out", str(tmp_path / "mp4")]) == 0
        assert (tmp_path / "mp4" / "rollout.mp4").stat().st_size > 1000
