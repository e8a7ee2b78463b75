"""The rules of a maze state, one at a time: each range at both ends, each check of the header, world and mouse.

A real start state (seed 0: a 13×13 maze in the 25×25 world of the hard distribution) gives valid fields;
each test changes one of them. :mod:`tests.test_state` checks the same rules through whole states and procgen.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from mazeinterp.maze import state as state_module
from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.state import MazeState
from mazeinterp.maze.state_rules import (
    BASIC_RULES,
    END_MARKER,
    ENTITY_RULES,
    GAME_RULES,
    INT32_MAX,
    INT32_MIN,
    WORLD_DIMS,
    InvalidStateError,
    check_header,
    check_mouse,
    check_mouse_cell,
    check_world,
    equal,
    float_range,
    mt19937_text,
    one_of,
    parts_of,
    per_world,
)


def _parts(state: MazeState) -> tuple[dict, dict, dict, dict]:
    """(game, basic, maze, mouse) fields of ``state`` by name."""
    def named(fields, values):
        return dict(zip([name for name, _ in fields], values))
    return (named(state_module.GAME_FIELDS, state.game), named(state_module.BASIC_FIELDS, state.basic),
            named(state_module.MAZE_FIELDS, state.maze), named(state_module.ENTITY_FIELDS, state.entities[0]))


@pytest.fixture(scope="module")
def parts() -> tuple[dict, dict, dict, dict]:
    with MazeEnv.from_seeds([0]) as env:
        state = env.get_states()[0]
    assert (state.maze_size, state.world.shape) == (13, (25, 25))
    return _parts(state)


def test_procgens_constants() -> None:
    assert END_MARKER == 0xCAFECAFE - 2**32 == struct.unpack("<i", bytes.fromhex("fecafeca"))[0]
    assert (INT32_MIN, INT32_MAX) == (-2147483648, 2147483647)
    assert WORLD_DIMS == {0: 15, 1: 25}  # easy, hard


def test_a_real_state_passes_every_rule(parts) -> None:
    game, basic, maze, mouse = parts
    for values, rules in ((game, GAME_RULES), (basic, BASIC_RULES), (mouse, ENTITY_RULES)):
        assert {name: rule(values[name], 25) for name, rule in rules.items()} == dict.fromkeys(rules)
    assert check_header(game, basic, maze) == (25, 13)


# int fields: (table, name, lowest, highest) as procgen writes them
INT_RANGES = [
    (GAME_RULES, "level_seed_low", 0, 2**31 - 2), (GAME_RULES, "level_seed_high", 1, 2**31 - 1),
    (GAME_RULES, "game_n", 0, 2**31 - 1), (GAME_RULES, "action", 0, 14), (GAME_RULES, "timeout", 1, 2**31 - 1),
    (GAME_RULES, "current_level_seed", 0, 2**31 - 2), (GAME_RULES, "prev_level_seed", 0, 2**31 - 2),
    (GAME_RULES, "episodes_remaining", 0, 2**31 - 1), (GAME_RULES, "last_reward_timer", 0, 10),
    (GAME_RULES, "fixed_asset_seed", -2**31, 2**31 - 1), (GAME_RULES, "cur_time", 0, 2**31 - 1),
    (GAME_RULES, "grid_size", 0, 2**31 - 1), (GAME_RULES, "done", 0, 1), (GAME_RULES, "level_complete", 0, 1),
    (GAME_RULES, "episode_done", 0, 1), (GAME_RULES, "distribution_mode", 0, 1),
    (ENTITY_RULES, "is_reflected", 0, 1), (ENTITY_RULES, "life_time", 0, 2**31 - 1),
    (BASIC_RULES, "background_index", 0, 8), (BASIC_RULES, "last_move_action", 0, 8),
    (BASIC_RULES, "move_action", 0, 8), (BASIC_RULES, "special_action", 0, 6),
    (BASIC_RULES, "step_rand_int", 0, 999_999),
]


@pytest.mark.parametrize(("rules", "name", "low", "high"), INT_RANGES, ids=[r[1] for r in INT_RANGES])
def test_int_fields_at_both_ends(rules, name, low, high) -> None:
    rule = rules[name]
    assert rule(low, 25) is None and rule(high, 25) is None and rule(np.int32(low), 25) is None
    for bad in (low - 1, high + 1, float(low), True if low == 0 else None):
        if bad is not None:
            assert rule(bad, 25) is not None, bad


def test_int_rules_name_what_they_expect() -> None:
    assert GAME_RULES["action"](15, 25) == "an int in [0, 14]"
    assert GAME_RULES["done"](2, 25) == "one of [0, 1]"
    assert GAME_RULES["done"](np.bool_(True), 25) == "one of [0, 1]"
    assert GAME_RULES["serialize_version"](1, 25) == "0"
    assert GAME_RULES["serialize_version"](False, 25) == "0"
    assert GAME_RULES["game_name"](b"mazes", 25) == "b'maze'" and GAME_RULES["game_name"](b"maze", 25) is None


FLOAT_RANGES = [
    (GAME_RULES, "reward", 0.0, 10.0), (GAME_RULES, "last_reward", -1.0, 10.0),
    (ENTITY_RULES, "x", 0.0, 25.0), (ENTITY_RULES, "y", 0.0, 25.0), (ENTITY_RULES, "vx", -1.0, 1.0),
    (ENTITY_RULES, "vy", -1.0, 1.0), (BASIC_RULES, "bg_pct_x", 0.0, 1.0),
    (BASIC_RULES, "action_vx", -1.0, 1.0), (BASIC_RULES, "action_vy", -1.0, 1.0),
]


@pytest.mark.parametrize(("rules", "name", "low", "high"), FLOAT_RANGES, ids=[r[1] for r in FLOAT_RANGES])
def test_float_fields_at_both_ends(rules, name, low, high) -> None:
    rule = rules[name]
    assert rule(low, 25) is None and rule(high, 25) is None and rule(np.float32(high), 25) is None
    for bad in (low - 1e-6, high + 1e-6, math.nan, math.inf, True):
        assert rule(bad, 25) == f"a finite number in [{low:g}, {high:g}]", bad


def test_fixed_floats_are_compared_as_float32_bits() -> None:
    half = equal(0.5)
    assert half(0.5, 25) is None and half(np.float32(0.5), 25) is None
    assert half(0.5000001, 25) == "0.5" and half(1e39, 25) == "0.5" and half("0.5", 25) == "0.5"
    assert equal(0.0)(-0.0, 25) == "0.0" and equal(0.0)(True, 25) == "0.0"
    assert ENTITY_RULES["theta"](-100.0, 25) is None and ENTITY_RULES["fire_time"](-1, 25) is None


def test_per_world_floats() -> None:
    assert BASIC_RULES["center_x"](12.5, 25) is None and BASIC_RULES["center_y"](7.5, 15) is None
    assert BASIC_RULES["center_x"](12.5, 15) == "7.5 for a 15×15 world"
    assert BASIC_RULES["main_width"](25.0, 25) is None and BASIC_RULES["main_height"](15.0, 15) is None
    for name, values in [("unit", {25: 2.559999942779541, 15: 4.266666889190674}),
                         ("view_dim", {25: 25.0, 15: 14.999999046325684}),
                         ("x_off", {25: 0.0, 15: 2.0345053144410485e-06}),
                         ("y_off", {25: 0.0, 15: 2.0345053144410485e-06})]:
        for dim, value in values.items():
            assert BASIC_RULES[name](value, dim) is None
            assert BASIC_RULES[name](value, 40 - dim) is not None
    assert per_world(float)(True, 1) == "1.0 for a 1×1 world"


def _mt(words: list[str], index: str = "0") -> bytes:
    return " ".join([*words, index]).encode()


def test_a_serialized_mt19937() -> None:
    ok = ["1"] * 623 + ["0"]
    assert mt19937_text(_mt(ok), 25) is None
    assert mt19937_text(_mt(ok, "624"), 25) is None
    assert mt19937_text(_mt(["4294967295"] * 624), 25) is None  # ten digits, the largest word
    assert mt19937_text("1 2", 25) == "bytes of a serialized mt19937"
    for bad in (_mt(ok, "625"), _mt(["0"] * 624), _mt(["4294967296"] + ok[1:]), _mt(["01"] + ok[1:]),
                _mt(ok[1:]), _mt(ok + ["1"]), _mt(["1a"] + ok[1:]), _mt(["00000000001"] + ok[1:])):
        assert mt19937_text(bad, 25).startswith("a serialized mt19937 (624 decimal words"), bad[:20]


def test_the_error_message_shortens_long_values() -> None:
    assert str(InvalidStateError("f", "x" * 58, "e")) == f"invalid maze state: f is '{'x' * 58}', expected e"
    long = InvalidStateError("f", "x" * 59, "e")  # its repr has 61 characters: cut to 57 and "..."
    assert str(long) == f"invalid maze state: f is '{'x' * 56}..., expected e"
    assert (long.field, long.value, long.expected) == ("f", "x" * 59, "e")
    assert str(InvalidStateError("f", 1, "e", message="told otherwise")) == "told otherwise"


def _header_error(parts, where: str, **changes) -> InvalidStateError:
    game, basic, maze, _ = ({**p} for p in parts)
    {"game": game, "basic": basic, "maze": maze}[where].update(changes)
    with pytest.raises(InvalidStateError) as caught:
        check_header(game, basic, maze)
    return caught.value


def test_the_header_checks(parts) -> None:
    game, basic, maze, _ = parts
    assert str(_header_error(parts, "game", distribution_mode=2)).endswith(
        "game.distribution_mode is 2, expected one of [0, 1] (easy, hard)")
    assert _header_error(parts, "game", distribution_mode=1.0).field == "game.distribution_mode"
    assert str(_header_error(parts, "maze", world_dim=15)).endswith("maze.world_dim is 15, expected 25 "
                                                                     "(distribution_mode 1)")
    for n in (1, 2, 14, 27, 13.0):
        assert str(_header_error(parts, "maze", maze_dim=n)).endswith(f"maze.maze_dim is {n!r}, expected an odd "
                                                                      "int in [3, 25]")
    for n in (3, 25):
        assert check_header(game, basic, {**maze, "maze_dim": n}) == (25, n)
    assert _header_error(parts, "maze", end_marker=0).expected == f"the end sentinel {END_MARKER}"
    assert str(_header_error(parts, "game", grid_size=624)).endswith("game.grid_size is 624, expected 625 "
                                                                     "(the world's cell count)")
    assert check_header({**game, "level_seed_low": 5, "level_seed_high": 6}, basic, maze) == (25, 13)
    assert _header_error(parts, "game", level_seed_low=5, level_seed_high=5).expected == "more than level_seed_low = 5"
    timeout = game["timeout"]
    assert check_header({**game, "cur_time": timeout}, basic, maze) == (25, 13)
    assert _header_error(parts, "game", cur_time=timeout + 1).expected == f"at most timeout = {timeout}"
    assert _header_error(parts, "basic", char_dim=4.0).field == "basic.char_dim"


def test_the_mouse_stands_at_a_cell_centre_inside_the_inner_maze(parts) -> None:
    mouse = parts[3]
    # a 13×13 maze in a 25×25 world: margin 6, cells 6 … 18
    assert check_mouse({**mouse, "x": 6.5, "y": 18.5}, 25, 13) == (6, 18)
    assert check_mouse({**mouse, "x": 18.5, "y": 6.5}, 25, 13) == (18, 6)
    for x in (5.5, 19.5, 7.0, 7.25):
        with pytest.raises(InvalidStateError, match=rf"mouse.x is {x}, expected a cell centre k \+ 0.5 with "
                                                    r"6 <= k < 19 \(inside the inner maze\)$"):
            check_mouse({**mouse, "x": x}, 25, 13)
    with pytest.raises(InvalidStateError, match=r"mouse.y is 19.5, expected .* with 6 <= k < 19"):
        check_mouse({**mouse, "y": 19.5}, 25, 13)
    with pytest.raises(InvalidStateError, match=r"mouse.rx is"):
        check_mouse({**mouse, "rx": 0.25}, 25, 13)


def _world(dim: int = 25, n: int = 13) -> np.ndarray:
    world = np.full((dim, dim), 51, dtype=np.int32)
    m = (dim - n) // 2
    world[m : m + n, m : m + n] = 100
    return world


def test_the_world_grid() -> None:
    world = _world()
    check_world(world, 25, 13)
    world[6, 18] = 2  # the cheese on the inner maze's corner cell
    check_world(world, 25, 13)
    world[5, 5] = 100  # the padding may be opened
    check_world(world, 25, 13)
    for bad, shown in [(world.astype(np.int64), r"\(25, 25\)"), (world[:24], r"\(24, 25\)"),
                       (world.tolist(), "'list'")]:
        with pytest.raises(InvalidStateError, match=rf"world is {shown}, expected an int32 array of shape \(25, 25\)"):
            check_world(bad, 25, 13)
    unknown = world.copy()
    unknown[3, 7] = 52
    with pytest.raises(InvalidStateError, match=r"world cell \(x=7, y=3\) is 52, expected a cell code in "
                                                r"\[2, 51, 100\] \(cheese, wall, empty\)"):
        check_world(unknown, 25, 13)
    for y, x in [(5, 12), (19, 12), (12, 5), (12, 19)]:  # just outside the inner maze, on each side
        outside = _world()
        outside[y, x] = 2
        with pytest.raises(InvalidStateError, match=rf"world cell \(x={x}, y={y}\) is 2, expected 51 or 100 .*"
                                                    r"outside the 13×13 inner maze"):
            check_world(outside, 25, 13)
    two = world.copy()
    two[7, 7] = 2
    with pytest.raises(InvalidStateError, match="world cheese cells is 2, expected at most 1"):
        check_world(two, 25, 13)


def test_the_mouse_cell_must_be_empty() -> None:
    world = _world()
    check_mouse_cell(world, 25, 13, (6, 18))
    world[18, 6] = 51  # (x, y) = (6, 18): inner row 13 - 1 - (18 - 6) = 0, column 0
    with pytest.raises(InvalidStateError, match="mouse cell is \\(0, 0\\), expected an empty cell of the inner "
                                                "maze, but it holds wall") as caught:
        check_mouse_cell(world, 25, 13, (6, 18))
    assert caught.value.value == (0, 0)
    world[10, 9] = 2
    with pytest.raises(InvalidStateError, match="holds cheese") as caught:
        check_mouse_cell(world, 25, 13, (9, 10))
    assert caught.value.value == (8, 3)
    assert repr(caught.value.value) == "(8, 3)"


def test_parts_of_counts_the_fields() -> None:
    assert parts_of(["a", "b"], (1, 2)) == {"a": 1, "b": 2}
    with pytest.raises(InvalidStateError, match="field count is 1, expected 2 fields"):
        parts_of(["a", "b"], [1])


def test_one_of_and_float_range_alone() -> None:
    assert one_of(3, 1)(3, 25) is None and one_of(3, 1)(2, 25) == "one of [1, 3]"
    assert float_range(-0.5, 2.0)(-0.5, 25) is None and float_range(-0.5, 2.0)(np.int64(2), 25) is None
