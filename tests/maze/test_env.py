"""MazeEnv: deterministic mazes from seeds, per-env state access, cheese-region resets."""

from __future__ import annotations

import numpy as np
import pytest

from mazeinterp.maze.env import NOOP_ACTION, MazeEnv, StateRenderer
from mazeinterp.maze.grid import in_top_right_region, top_right_region
from mazeinterp.maze.pixels import cell_to_pixel_region
from mazeinterp.maze.state import MazeState


def _reference(seed: int) -> tuple[MazeState, np.ndarray]:
    from procgen import ProcgenGym3Env

    env = ProcgenGym3Env(num=1, env_name="maze", distribution_mode="hard", start_level=seed, num_levels=1)
    state = MazeState.from_bytes(env.callmethod("get_state")[0])
    obs = env.observe()[1]["rgb"][0].copy()
    env.close()
    return state, obs


def test_from_seeds_builds_the_same_maze_as_a_one_level_env() -> None:
    seeds = [0, 17, 424242, 2**31 - 2]
    with MazeEnv.from_seeds(seeds) as env:
        obs = env.observe()[1]
        for i, seed in enumerate(seeds):
            ref_state, ref_obs = _reference(seed)
            state = env.get_state(i)
            assert state.level_seed == seed
            assert (state.world == ref_state.world).all()
            assert state.mouse == ref_state.mouse
            assert (obs[i] == ref_obs).all()


def test_bad_seeds_and_indices_are_refused() -> None:
    with pytest.raises(ValueError, match="level seed -1"):
        MazeEnv.from_seeds([3, -1])
    with MazeEnv.from_seeds([1, 2]) as env:
        with pytest.raises(IndexError, match="env index 2"):
            env.get_state(2)
        with pytest.raises(ValueError, match="expected 2 actions"):
            env.step([1, 2, 3])
        with pytest.raises(ValueError, match="0…14"):
            env.step([1, 15])


def test_setting_one_env_leaves_the_others_alone() -> None:
    with MazeEnv.from_seeds([5, 6, 7]) as env:
        before = [env.get_state_bytes(i) for i in range(3)]
        obs_before = env.observe()[1].copy()
        env.set_state(1, env.get_state(0))
        obs_after = env.observe()[1]
        assert env.get_state_bytes(0) == before[0]
        assert env.get_state_bytes(2) == before[2]
        assert env.get_state_bytes(1) == before[0]
        assert (obs_after[1] == obs_before[0]).all(), "set_state refreshes that env's observation"
        assert (obs_after[[0, 2]] == obs_before[[0, 2]]).all()


def test_moving_the_cheese_changes_only_the_two_cheese_cells(big_state: MazeState) -> None:
    n = big_state.maze_size
    old, new = big_state.cheese, (0, n - 1)
    with MazeEnv.from_states([big_state, big_state.with_cheese(new)]) as env:
        obs = env.observe()[1].astype(int)
    changed = np.abs(obs[0] - obs[1]).sum(-1) > 0
    allowed = np.zeros_like(changed)
    for cell in (old, new):
        allowed[cell_to_pixel_region(cell, n)] = True
    assert changed.any()
    assert not (changed & ~allowed).any(), "pixels outside the two cheese cells changed"
    for cell in (old, new):
        assert changed[cell_to_pixel_region(cell, n)].any()


def test_steps_move_the_mouse_by_one_cell(big_state: MazeState) -> None:
    n = big_state.maze_size
    with MazeEnv.from_states([big_state]) as env:
        up_open = big_state.open_cells[n - 2, 0]
        env.step([5])  # UP
        assert env.get_state(0).mouse == ((n - 2, 0) if up_open else (n - 1, 0))
        env.step([NOOP_ACTION])
        assert env.get_state(0).mouse == ((n - 2, 0) if up_open else (n - 1, 0))


def test_the_mirror_flag_follows_the_horizontal_part_of_each_action(big_state: MazeState) -> None:
    """Leftward actions (0-2) unmirror the sprite and rightward ones (6-8) mirror it, moved or not."""
    assert not big_state.mouse_reflected, "episodes start unmirrored"
    for start in (False, True):
        with MazeEnv.from_states([big_state.with_mouse_reflected(start)] * 15) as env:
            env.step(np.arange(15))
            flags = [s.mouse_reflected for s in env.get_states()]
        assert flags == [False] * 3 + [start] * 3 + [True] * 3 + [start] * 6


def test_mouse_cell_and_mirror_flag_reproduce_every_rollout_frame() -> None:
    """A frame of a rollout equals the start state redrawn with the mouse's cell and flag, pixel for pixel."""
    rng = np.random.default_rng(1)
    renderer = StateRenderer(batch_size=8)
    with MazeEnv.from_seeds(range(20, 28), cheese_region=5) as env:
        starts, alive = env.get_states(), np.ones(8, dtype=bool)
        mirrored = compared = visible = 0
        for _ in range(40):
            _, obs, first = env.step(rng.integers(0, 15, size=8))
            alive &= ~first
            now = env.get_states()
            for i in np.flatnonzero(alive):
                moved = starts[i].with_mouse(now[i].mouse)
                assert np.array_equal(renderer([moved.with_mouse_reflected(now[i].mouse_reflected)])[0], obs[i])
                compared += 1
                if now[i].mouse_reflected:  # without the flag, the frame usually differs
                    mirrored += 1
                    visible += not np.array_equal(renderer([moved])[0], obs[i])
    renderer.close()
    assert compared > 100 and mirrored > 20 and visible > mirrored / 2, (compared, mirrored, visible)


def _force_reset(env: MazeEnv, index: int) -> None:
    state = env.get_state(index)
    env.set_state(index, state.with_game_fields(cur_time=state.game_field("timeout") - 1))


def test_cheese_region_covers_the_region_and_edits_only_resetting_envs() -> None:
    seed = 12  # a 23×23 maze
    with MazeEnv(4, cheese_region=5, start_level=seed, num_levels=1, seed=0) as env:
        n = env.get_state(0).maze_size
        assert n == 23
        region = {c for c in top_right_region(n, 5) if env.get_state(0).open_cells[c]}
        assert len(region) >= 9
        seen: set[tuple[int, int]] = set()
        for _ in range(150):
            _force_reset(env, 0)
            others = [env.get_state(i) for i in (1, 2, 3)]
            _, _, first = env.step(np.full(4, NOOP_ACTION))
            assert first.tolist() == [True, False, False, False]
            state = env.get_state(0)
            assert state.cheese is not None and in_top_right_region(state.cheese, n, 5)
            seen.add(state.cheese)
            for before, i in zip(others, (1, 2, 3)):
                after = env.get_state(i)
                assert after.cheese == before.cheese
                assert (after.world == before.world).all()
        assert seen == region, f"unused region cells: {sorted(region - seen)}"


def test_cheese_region_applies_at_the_first_episode_and_on_random_levels() -> None:
    with MazeEnv(32, cheese_region=3, seed=2) as env:
        for _ in range(3):
            for state in env.get_states():
                assert in_top_right_region(state.cheese, state.maze_size, 3)
                assert state.cheese != state.mouse
            for i in range(0, 32, 2):
                _force_reset(env, i)
            env.step(np.full(32, NOOP_ACTION))


def test_step_refuses_actions_that_are_not_whole_numbers() -> None:
    with MazeEnv(2) as env:
        for bad in ([0.5, 1], [float("nan"), 1], ["a", "b"], [15, 0], [-1, 0]):
            with pytest.raises(ValueError, match="actions"):
                env.step(bad)
        env.step([3.0, 6])  # whole numbers in floats are fine
def test_building_an_env_prints_no_gym_banner_but_keeps_other_warnings() -> None:
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('always')\n"
            "from mazeinterp.maze.env import MazeEnv\n"
            "MazeEnv.from_seeds([0]).close()\n"
            "warnings.warn('a warning of our own')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Gym has been unmaintained" not in proc.stderr and "gymnasium" not in proc.stderr.lower()
    assert "a warning of our own" in proc.stderr


def test_without_notice_removes_only_the_notice() -> None:
    from mazeinterp.maze.env import without_notice

    notice = "Gym is old.\nUse Gymnasium."
    text = "before\nGym is old.\nUse Gymnasium.\nafter: a DeprecationWarning\n"
    assert without_notice(text, notice) == "before\nafter: a DeprecationWarning\n"
    assert without_notice("Gym is old.\nsomething else\n", notice) == "Gym is old.\nsomething else\n"
    assert without_notice(text, None) == text
