"""mazeinterp/Maze-v0: Gymnasium's checker, observations equal MazeEnv's, cheese control, rewards and outcomes
on hand-made mazes, and bad input."""

from __future__ import annotations

import subprocess
import sys

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mazeinterp.maze.gym_env import ENV_ID, MazeGymEnv
from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.grid import parse_ascii, shortest_path
from mazeinterp.maze.moves import MOVE_TO_ACTION, NOOP_ACTION, move_from_delta
from mazeinterp.maze.state import MazeState


@pytest.fixture()
def env():
    e = MazeGymEnv()
    yield e
    e.close()


def _actions(path: list[tuple[int, int]]) -> list[int]:
    return [int(MOVE_TO_ACTION[move_from_delta((b[0] - a[0], b[1] - a[1]))]) for a, b in zip(path, path[1:])]


def test_gymnasium_checker_passes() -> None:
    check_env(MazeGymEnv(cheese_region=5, level_seeds=range(10)), skip_render_check=True)
    made = gymnasium.make(ENV_ID, render_mode="rgb_array")
    check_env(made.unwrapped)
    made.close()


def test_observation_is_the_one_maze_env_shows(env) -> None:
    obs, info = env.reset(options={"level_seed": 7})
    with MazeEnv.from_seeds([7]) as reference:
        expected = reference.observe()[1][0]
        state = reference.get_state(0)
    assert obs.dtype == np.uint8 and obs.shape == (64, 64, 3)
    np.testing.assert_array_equal(obs, expected)
    assert info == {"cell": state.mouse, "level_seed": 7, "maze_size": state.maze_size}


def test_seeded_resets_repeat_and_draw_from_the_given_seeds() -> None:
    first = MazeGymEnv(level_seeds=[3, 11, 19])
    second = MazeGymEnv(level_seeds=[3, 11, 19])
    drawn = []
    for e in (first, second):
        e.reset(seed=42)
        drawn.append([e.reset()[1]["level_seed"] for _ in range(12)])
        e.close()
    assert drawn[0] == drawn[1] and set(drawn[0]) <= {3, 11, 19} and len(set(drawn[0])) > 1


def test_cheese_region_moves_the_cheese_into_the_corner(seeded_states) -> None:
    env = MazeGymEnv(cheese_region=1)
    for seed in range(5):
        env.reset(options={"level_seed": seed})
        state = env._env.get_state(0)
        assert state.cheese == (0, state.maze_size - 1)  # the 1×1 corner is the top-right cell
    env.close()
    env = MazeGymEnv(cheese_region=3, states=seeded_states[:8])
    for _ in range(8):
        env.reset()
        state = env._env.get_state(0)
        row, col = state.cheese
        assert row < 3 and col >= state.maze_size - 3 and state.open_cells[row, col]
    env.close()


def test_walking_to_the_cheese_earns_10_and_ends_the_episode(env, hand_maze: MazeState) -> None:
    path = shortest_path(hand_maze.open_cells, hand_maze.mouse, hand_maze.cheese)
    env.reset(options={"state": hand_maze})
    for i, action in enumerate(_actions(path)):
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["cell"] == path[i + 1]
        if i < len(path) - 2:
            assert (reward, terminated, truncated) == (0.0, False, False)
            assert env._env.get_state(0).mouse == path[i + 1]  # the tracked cell is procgen's
    assert (reward, terminated, truncated) == (10.0, True, False)
    # the cheese is the top-right cell (0, 4) and the path enters the 5×5 region at once: it is the whole maze
    assert info["outcome"] == "cheese" and info["steps"] == len(path) - 1 == 8
    assert info["region_first_step"] == 0 and info["trap"] == ""
    assert "outcome" not in env.reset(options={"state": hand_maze})[1]


def test_walls_and_edges_stop_the_mouse_as_procgen_does(env, hand_maze: MazeState) -> None:
    env.reset(options={"state": hand_maze})
    moves = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
    # from (4, 0): left and down hit the edge, right twice hits the wall at (4, 2), up hits the wall at (3, 1)
    for name, cell in [("left", (4, 0)), ("down", (4, 0)), ("right", (4, 1)), ("right", (4, 1)), ("up", (4, 1))]:
        info = env.step(int(MOVE_TO_ACTION[move_from_delta(moves[name])]))[4]
        assert info["cell"] == cell == env._env.get_state(0).mouse


def test_the_tracked_cell_follows_procgen_on_random_walks() -> None:
    env = MazeGymEnv(level_seeds=[0, 1, 2, 3])  # sizes 13, 3, 13, 5: edges and walls everywhere
    rng = np.random.default_rng(0)
    for seed in range(4):
        env.reset(options={"level_seed": seed})
        for action in rng.integers(0, 15, 150):
            _, _, terminated, truncated, info = env.step(int(action))
            if terminated or truncated:
                break
            assert info["cell"] == env._env.get_state(0).mouse
    env.close()


def test_passing_the_top_right_on_the_way_to_the_cheese_is_no_top_right_outcome(seeded_states) -> None:
    base = next(s for s in seeded_states if s.maze_size == 5)
    layout, cheese = parse_ascii("""
        .....
        .###.
        .###C
        .####
        .####
    """)
    maze = base.with_layout(layout, cheese).with_mouse((4, 0))
    path = shortest_path(maze.open_cells, (4, 0), cheese)
    assert (0, 4) in path and len(path) == 11
    env = MazeGymEnv(top_right_ends=True)
    env.reset(options={"state": maze})
    for action in _actions(path):
        _, reward, terminated, _, info = env.step(action)
    assert reward == 10.0 and terminated and info["outcome"] == "cheese" and info["steps"] == 10
    env.close()


def test_top_right_outcome_and_region_first_on_a_hand_made_maze(seeded_states) -> None:
    base = next(s for s in seeded_states if s.maze_size == 7)
    layout, cheese = parse_ascii("""
        .....#.
        .###.#.
        C#...#.
        .#.###.
        .#.....
        .#####.
        .......
    """)
    maze = base.with_layout(layout, cheese).with_mouse((6, 0))
    to_top_right = shortest_path(maze.open_cells, (6, 0), (0, 6))  # along the bottom, then up the right side
    assert (2, 0) not in to_top_right and len(to_top_right) == 13
    for ends in (True, False):
        env = MazeGymEnv(top_right_ends=ends, region_size=3)
        env.reset(options={"state": maze})
        for action in _actions(to_top_right):
            _, reward, terminated, truncated, info = env.step(action)
        assert reward == 0.0 and terminated is ends and truncated is False
        if ends:
            # (2, 6) is the first cell of the top-right 3×3 on that path: step 10 of 12
            assert info["outcome"] == "top_right" and info["steps"] == 12 and info["region_first_step"] == 10
        else:
            assert "outcome" not in info  # the episode goes on; reaching the cheese later stays "top_right"
            back = shortest_path(maze.open_cells, (0, 6), cheese)
            for action in _actions(back):
                _, reward, terminated, truncated, info = env.step(action)
            assert reward == 10.0 and terminated and info["outcome"] == "top_right"
        env.close()


def test_a_mouse_that_holds_still_times_out_trapped(env, hand_maze: MazeState) -> None:
    env.reset(options={"state": hand_maze.with_game_fields(cur_time=0)})
    up = int(MOVE_TO_ACTION[move_from_delta((-1, 0))])
    for step in range(1, 501):  # 300 steps on the start cell (4, 0), then one up, then still on (3, 0)
        _, reward, terminated, truncated, info = env.step(up if step == 301 else NOOP_ACTION)
        if truncated:
            break
    assert step == 500 and reward == 0.0 and not terminated
    assert info["outcome"] == "neither" and info["steps"] == 500
    assert info["trap"] == "3 0;3 0"  # held still on (3, 0) for all of the last 100 steps
    assert info["region_first_step"] == 0  # a 5×5 maze lies wholly in the top-right 5×5 region
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_vector_form_runs_episodes_side_by_side() -> None:
    envs = gymnasium.make_vec(ENV_ID, num_envs=3, vectorization_mode="sync", cheese_region=5)
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, 64, 64, 3) and obs.dtype == np.uint8 and len(set(info["level_seed"])) == 3
    for _ in range(20):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert reward.shape == (3,) and info["cell"].shape == (3,)
    envs.close()


def test_module_id_form_and_cheap_package_import() -> None:
    code = ("import sys, mazeinterp; assert 'gymnasium' not in sys.modules and 'torch' not in sys.modules; "
            "import gymnasium; e = gymnasium.make('mazeinterp.maze.gym_env:mazeinterp/Maze-v0'); print(e.reset(seed=1)[0].shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.strip() == "(64, 64, 3)"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cheese_region": 0}, "cheese_region must be a positive int"),
    ({"level_seeds": [1], "states": []}, "give level_seeds or states, not both"),
    ({"level_seeds": [-1]}, r"level seed -1 is outside procgen's range"),
    ({"level_seeds": []}, "need at least one entry"),
    ({"render_mode": "human"}, "render_mode must be None or 'rgb_array'"),
])
def test_bad_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MazeGymEnv(**kwargs)


def test_bad_steps_and_options(env) -> None:
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(0)
    env.reset(seed=0)
    for action in (15, -1, 2.5):
        with pytest.raises(ValueError, match="action must be an int in 0…14"):
            env.step(action)
    with pytest.raises(ValueError, match=r"reset options take one of 'level_seed' or 'state', got \['seed'\]"):
        env.reset(options={"seed": 3})
    with pytest.raises(ValueError, match="level seed 'x' is not an int"):
        env.reset(options={"level_seed": "x"})
    with pytest.raises(TypeError, match="state 0 is a str, expected a MazeState"):
        env.reset(options={"state": "x"})
