"""MazeState: exact byte round trips, views in the cell convention, and edits."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.state import CHEESE, EMPTY, WALL, MazeState, StateParseError


def test_round_trip_is_byte_exact_for_200_level_seeds() -> None:
    with MazeEnv.from_seeds(range(1000, 1200)) as env:
        for i in range(env.num):
            blob = env.get_state_bytes(i)
            assert MazeState.from_bytes(blob).to_bytes() == blob


def test_round_trip_after_steps_and_random_levels() -> None:
    with MazeEnv(16, seed=5) as env:
        rng = np.random.default_rng(0)
        for _ in range(30):
            env.step(rng.integers(0, 15, env.num))
        for i in range(env.num):
            blob = env.get_state_bytes(i)
            assert MazeState.from_bytes(blob).to_bytes() == blob


def test_views_follow_the_cell_convention(seeded_states: list[MazeState]) -> None:
    for state in seeded_states:
        n = state.maze_size
        assert n % 2 == 1 and 3 <= n <= 25
        assert state.inner_grid.shape == (n, n)
        assert state.mouse == (n - 1, 0), "the mouse starts bottom-left"
        assert state.open_cells[n - 1, 0] and state.open_cells[0, n - 1]
        assert state.cheese is not None and state.inner_grid[state.cheese] == CHEESE
        assert np.count_nonzero(state.inner_grid == CHEESE) == 1
        # the padding around the inner maze is all wall
        world = state.world_grid
        m = state.margin
        mask = np.ones_like(world, dtype=bool)
        mask[m : m + n, m : m + n] = False
        assert (world[mask] == WALL).all()
        # row 0 of procgen's grid is the bottom: the flip is the only difference
        assert (world[::-1] == state.world).all()


def test_edits_return_new_states_and_leave_the_original(big_state: MazeState) -> None:
    before = big_state.to_bytes()
    n = big_state.maze_size
    moved = big_state.with_cheese((0, n - 1))
    assert moved.cheese == (0, n - 1)
    assert big_state.to_bytes() == before
    assert big_state.cheese != (0, n - 1)
    assert moved.inner_grid[big_state.cheese] == EMPTY
    removed = big_state.without_cheese()
    assert removed.cheese is None
    assert removed.without_cheese() is removed
    walker = big_state.with_mouse((0, n - 1))
    assert walker.mouse == (0, n - 1)
    assert big_state.mouse == (n - 1, 0)


def _a_wall(state: MazeState) -> tuple[int, int]:
    walls = np.argwhere(~state.open_cells)
    return int(walls[0][0]), int(walls[0][1])


def test_impossible_edits_name_the_cell(big_state: MazeState) -> None:
    n = big_state.maze_size
    wall = _a_wall(big_state)
    cheese = big_state.cheese
    start = (n - 1, 0)
    cases = [
        (lambda: big_state.with_cheese(wall), f"{re.escape(str(wall))}.*wall"),
        (lambda: big_state.with_cheese((n, 0)), f"\\({n}, 0\\).*outside"),
        (lambda: big_state.with_cheese((-1, 2)), "\\(-1, 2\\).*outside"),
        (lambda: big_state.with_cheese(start), "mouse stands there"),
        (lambda: big_state.with_mouse(wall), f"{re.escape(str(wall))}.*wall"),
        (lambda: big_state.with_mouse(cheese), "holds the cheese"),
        (lambda: big_state.with_mouse((0, n + 3)), "outside"),
        (lambda: big_state.with_wall(start), "mouse stands there"),
        (lambda: big_state.with_wall(cheese), "holds the cheese"),
        (lambda: big_state.with_open(cheese), "holds the cheese"),
    ]
    for edit, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            edit()


def test_garbage_is_rejected_with_a_reason(big_state: MazeState) -> None:
    blob = big_state.to_bytes()
    with pytest.raises(StateParseError, match="ends inside"):
        MazeState.from_bytes(blob[:30])
    with pytest.raises(StateParseError, match="unparsed bytes"):
        MazeState.from_bytes(blob + b"\0\0\0\0")
    with pytest.raises(StateParseError):
        MazeState.from_bytes(b"\x01\x02")


@st.composite
def edit_sequences(draw: st.DrawFn) -> list[tuple[str, tuple[int, int]]]:
    kinds = st.sampled_from(["cheese", "mouse", "open", "wall", "remove"])
    cells = st.tuples(st.integers(0, 24), st.integers(0, 24))
    return draw(st.lists(st.tuples(kinds, cells), min_size=1, max_size=6))


_EDITS = {
    "cheese": MazeState.with_cheese,
    "mouse": MazeState.with_mouse,
    "open": MazeState.with_open,
    "wall": MazeState.with_wall,
    "remove": lambda s, _cell: s.without_cheese(),
}


@pytest.fixture(scope="module")
def one_env() -> MazeEnv:
    env = MazeEnv.from_seeds([3, 4])
    yield env
    env.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edit_sequences(), which=st.integers(0, 40))
def test_edits_survive_a_trip_through_procgen(edits, which, seeded_states, one_env) -> None:
    """edit → serialize → set into an env → get → parse gives the edited state."""
    state = seeded_states[which]
    for kind, cell in edits:
        cell = (cell[0] % state.maze_size, cell[1] % state.maze_size)
        try:
            state = _EDITS[kind](state, cell)
        except ValueError:
            continue
    other_before = one_env.get_state_bytes(1)
    one_env.set_state(0, state)
    back = one_env.get_state(0)
    assert back == state
    assert back.mouse == state.mouse and back.cheese == state.cheese
    assert (back.inner_grid == state.inner_grid).all()
    assert one_env.get_state_bytes(1) == other_before


def test_with_layout_builds_a_hand_made_maze(seeded_states: list[MazeState]) -> None:
    from mazeinterp.maze.grid import parse_ascii

    base = next(s for s in seeded_states if s.maze_size == 5)
    layout, cheese = parse_ascii("""
        ....C
        .###.
        .#...
        .#.#.
        ...#.
    """)
    state = base.with_layout(layout, cheese)
    assert state.cheese == (0, 4)
    assert (state.open_cells == layout).all()
    assert state.mouse == (4, 0)
    assert MazeState.from_bytes(state.to_bytes()) == state
    with pytest.raises(ValueError, match="shape"):
        base.with_layout(np.ones((7, 7), dtype=bool))
    walled = layout.copy()
    walled[4, 0] = False
    with pytest.raises(ValueError, match="mouse"):
        base.with_layout(walled)
    with pytest.raises(ValueError, match=r"\(1, 1\).*wall"):
        base.with_layout(layout, (1, 1))


# ----- every state is one procgen can hold (each reproduction of a crash is kept here) ------------------


from mazeinterp.maze.state import InvalidStateError  # noqa: E402
from fuzzing.states import with_raw_field  # noqa: E402


@pytest.mark.parametrize(("fields", "named"), [
    ({"serialize_version": 1}, "game.serialize_version"),      # procgen: fatal assert in game.cpp
    ({"is_waiting_for_step": 1}, "game.is_waiting_for_step"),  # procgen: observe() never returns
    ({"current_level_seed": "x"}, "game.current_level_seed"),  # used to fail later, in to_bytes()
    ({"cur_time": 2**40}, "game.cur_time"),
    ({"reward": float("nan")}, "game.reward"),
    ({"no_such_field": 0}, "game field name"),
])
def test_impossible_game_fields_are_refused_naming_field_value_and_expectation(big_state, fields, named) -> None:
    with pytest.raises(InvalidStateError, match=re.escape(named)) as caught:
        big_state.with_game_fields(**fields)
    assert caught.value.field == named
    assert caught.value.expected


@pytest.mark.parametrize(("field", "value", "index", "named"), [
    ("world", 2**31 - 1, 300, "world cell (x=0, y=12)"),    # a world cell of 2147483647: fatal assert
    ("mouse.image_type", 10_000, 0, "mouse.image_type"),    # an entity image type of 10000: fatal assert
    ("basic.bg_tile_ratio", -1.86e-09, 0, "basic.bg_tile_ratio"),  # segfault on level seed 33
    ("mouse.x", float("nan"), 0, "mouse.x"),
    ("maze.end_marker", 0, 0, "maze.end_marker"),
    ("entity count", 2, 0, "entity count"),
])
def test_blobs_procgen_cannot_hold_are_refused_when_parsed(seeded_states, field, value, index, named) -> None:
    state = seeded_states[33] if field == "basic.bg_tile_ratio" else seeded_states[0]
    blob = with_raw_field(state.to_bytes(), field, value, index)
    with pytest.raises(InvalidStateError) as caught:
        MazeState.from_bytes(blob)
    assert caught.value.field == named


def test_a_13x13_maze_with_maze_dim_5_is_refused(seeded_states) -> None:
    state = seeded_states[0]
    assert state.maze_size == 13
    with pytest.raises(InvalidStateError, match=r"outside the 5×5 inner maze .* where the cheese cannot be"):
        MazeState.from_bytes(with_raw_field(state.to_bytes(), "maze.maze_dim", 5))  # cheese (7, 0) left outside
    with pytest.raises(InvalidStateError, match=r"mouse.x is 6.5, expected a cell centre .*inside the inner maze"):
        MazeState.from_bytes(with_raw_field(state.without_cheese().to_bytes(), "maze.maze_dim", 5))


def test_a_world_with_97_cheese_cells_is_refused(big_state) -> None:
    open_world = np.flatnonzero(big_state.world.reshape(-1) == EMPTY)[:96]
    blob = big_state.to_bytes()
    for cell in open_world:
        blob = with_raw_field(blob, "world", CHEESE, int(cell))
    with pytest.raises(InvalidStateError, match="cheese cells is 97, expected at most 1"):
        MazeState.from_bytes(blob)


def test_set_state_parses_bytes_first(big_state) -> None:
    """``env.set_state(0, b'\\x01\\x02')`` used to kill the process; now it is refused before procgen sees it."""
    with MazeEnv(1) as env:
        before = env.get_state_bytes(0)
        with pytest.raises(InvalidStateError, match="ends inside"):
            env.set_state(0, b"\x01\x02")
        with pytest.raises(TypeError, match="MazeState or its bytes"):
            env.set_state(0, [1, 2])
        assert env.get_state_bytes(0) == before
        env.set_state(0, big_state.to_bytes())
        assert env.get_state(0) == big_state


def test_impossible_edits_raise_value_errors(big_state) -> None:
    mouse = big_state.mouse
    with pytest.raises(ValueError, match="mouse stands there"):
        big_state.with_layout(big_state.open_cells, cheese=mouse)  # used to pay reward 10 on the next step
    for cell in [(0.5, 0.5), None, "ab", (1,), (True, 0)]:
        with pytest.raises(ValueError, match="pair of ints"):
            big_state.with_cheese(cell)
        with pytest.raises(ValueError, match="pair of ints"):
            big_state.with_mouse(cell)
    assert big_state.with_cheese((np.int64(0), np.int64(big_state.maze_size - 1))).cheese == (0, big_state.maze_size - 1)


def test_easy_distribution_states_are_valid() -> None:
    with MazeEnv(4, distribution_mode="easy") as env:
        for state in env.get_states():
            assert state.world.shape == (15, 15)
            assert MazeState.from_bytes(state.to_bytes()) == state


def test_every_serialized_field_has_a_rule() -> None:
    from mazeinterp.maze import state as state_module
    from mazeinterp.maze.state_rules import BASIC_RULES, ENTITY_RULES, GAME_RULES

    for fields, rules in ((state_module.GAME_FIELDS, GAME_RULES), (state_module.ENTITY_FIELDS, ENTITY_RULES),
                          (state_module.BASIC_FIELDS, BASIC_RULES)):
        assert [name for name, _ in fields] == list(rules)


def test_zero_and_minus_zero_and_int_and_float_are_told_apart(big_state) -> None:
    """``0 == 0.0 == -0.0`` in Python, but procgen reads bits: a remembered check must not mix them up."""
    assert big_state.with_game_fields(reward=0.0).game_field("reward") == 0.0
    with pytest.raises(InvalidStateError, match="game.cur_time"):
        big_state.with_game_fields(cur_time=float(big_state.game_field("cur_time")))
    blob = with_raw_field(big_state.to_bytes(), "basic.action_vrot", -0.0)
    with pytest.raises(InvalidStateError, match="basic.action_vrot is -0.0, expected 0.0"):
        MazeState.from_bytes(blob)
