"""What a procgen 0.10.7 maze state may hold: every field checked against what procgen produces.

procgen trusts the states it is given: an unknown cell code or entity type, a
dimension that disagrees with the world grid, a NaN in a float, a random
generator that does not parse or a set ``is_waiting_for_step`` flag ends in a
fatal assert, a segfault or a hang of the whole interpreter. :func:`check_state`
therefore accepts only what procgen itself writes for a maze env (in the
``easy`` or ``hard`` distribution), plus the edits of
:class:`~mazeinterp.maze.state.MazeState`: any number of open cells, at most
one cheese, the mouse on any open cell of the inner maze that does not hold
the cheese. Everything else raises :class:`InvalidStateError` naming the field,
the value found and what was expected.

The rules are data (:data:`GAME_RULES`, :data:`ENTITY_RULES`,
:data:`BASIC_RULES`): one rule per serialized field.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
END_MARKER = -889271554  # 0xCAFECAFE as a signed int32: procgen's end-of-state sentinel
WORLD_DIMS = {0: 15, 1: 25}  # distribution_mode (0 easy, 1 hard) → side of the world grid
CELL_CODES = {2: "cheese", 51: "wall", 100: "empty"}
_MT_WORDS = 624
_FLOAT32 = struct.Struct("<f")  # a std::mt19937 serializes as 624 state words and an index


class InvalidStateError(ValueError):
    """A maze state procgen could not have produced (or an edit that would make one).

    Attributes:
        field: the field concerned (e.g. ``"game.cur_time"``, ``"world[3, 7]"``).
        value: the value found there.
        expected: what procgen produces there, in words.
    """

    def __init__(self, field: str, value: Any, expected: str, message: str | None = None) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(message or f"invalid maze state: {field} is {shown}, expected {expected}")


# --------------------------------------------------------------------------------------
# rules: each takes the value and the world side, and returns None (fine) or what was expected


Rule = Callable[[Any, int], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_float(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _same_float32(value: Any, expected: float) -> bool:
    """Bit-for-bit equality as float32 (so -0.0 is not 0.0: procgen would write it back as 0.0)."""
    try:
        return _FLOAT32.pack(value) == _FLOAT32.pack(expected)
    except (struct.error, OverflowError, TypeError):
        return False


def equal(expected: Any) -> Rule:
    """The field always holds ``expected``."""
    def rule(value: Any, _dim: int) -> str | None:
        if isinstance(expected, bytes):
            return None if value == expected else f"{expected!r}"
        if isinstance(expected, float):
            return None if _is_float(value) and _same_float32(value, expected) else f"{expected!r}"
        return None if _is_int(value) and value == expected else f"{expected!r}"
    return rule


def one_of(*allowed: Any) -> Rule:
    """The field holds one of ``allowed`` (ints)."""
    def rule(value: Any, _dim: int) -> str | None:
        return None if _is_int(value) and int(value) in allowed else f"one of {sorted(allowed)}"
    return rule


def int_range(low: int, high: int) -> Rule:
    """An int with ``low <= value <= high``."""
    def rule(value: Any, _dim: int) -> str | None:
        return None if _is_int(value) and low <= int(value) <= high else f"an int in [{low}, {high}]"
    return rule


def float_range(low: float, high: float) -> Rule:
    """A finite float with ``low <= value <= high``."""
    def rule(value: Any, _dim: int) -> str | None:
        ok = _is_float(value) and math.isfinite(float(value)) and low <= float(value) <= high
        return None if ok else f"a finite number in [{low:g}, {high:g}]"
    return rule


def per_world(value_of: Callable[[int], float | None]) -> Rule:
    """A number fixed by the world side ``dim`` (as float32, bit for bit; ``value_of`` None: no value is right)."""
    def rule(value: Any, dim: int) -> str | None:
        want = value_of(dim)
        return None if want is not None and _is_float(value) and _same_float32(value, want) else f"{want!r} for a {dim}×{dim} world"
    return rule


def mt19937_text(value: Any, _dim: int) -> str | None:
    """A serialized ``std::mt19937``: 624 words below 2**32, not all zero, then an index in [0, 624]."""
    return _mt19937_problem(value) if isinstance(value, bytes) else "bytes of a serialized mt19937"


@functools.lru_cache(maxsize=4096)
def _mt19937_problem(text: bytes) -> str | None:
    expected = ("a serialized mt19937 (624 decimal words below 2**32 without leading zeros, not all zero, "
                "then an index in [0, 624])")
    tokens = text.split(b" ")
    # procgen writes canonical decimals; anything else (a leading zero, say) reads back changed
    canonical = all(t.isdigit() and len(t) <= 10 and (t == b"0" or t[:1] != b"0") for t in tokens)
    if len(tokens) != _MT_WORDS + 1 or not canonical:
        return expected
    words = [int(t) for t in tokens]
    if max(words[:_MT_WORDS]) >= 2**32 or not any(words[:_MT_WORDS]) or words[-1] > _MT_WORDS:
        return expected
    return None


BOOL = one_of(0, 1)
MOVE = int_range(-1, 1)
SEED = int_range(0, INT32_MAX - 1)

GAME_RULES: Mapping[str, Rule] = {
    "serialize_version": equal(0), "game_name": equal(b"maze"),
    "paint_vel_info": equal(0), "use_generated_assets": equal(0), "use_monochrome_assets": equal(0),
    "restrict_themes": equal(0), "use_backgrounds": equal(1), "center_agent": equal(0), "debug_mode": equal(0),
    "distribution_mode": one_of(*WORLD_DIMS), "use_sequential_levels": equal(0), "use_easy_jump": equal(0),
    "plain_assets": equal(0), "physics_mode": equal(0), "grid_step": equal(1),
    "level_seed_low": SEED, "level_seed_high": int_range(1, INT32_MAX), "game_type": equal(0),
    "game_n": int_range(0, INT32_MAX), "level_seed_rand_gen_is_seeded": equal(1),
    "level_seed_rand_gen": mt19937_text, "rand_gen_is_seeded": equal(1), "rand_gen": mt19937_text,
    "reward": float_range(0.0, 10.0), "done": BOOL, "level_complete": BOOL, "action": int_range(0, 14),
    "timeout": int_range(1, INT32_MAX), "current_level_seed": SEED, "prev_level_seed": SEED,
    "episodes_remaining": int_range(0, INT32_MAX), "episode_done": BOOL, "last_reward_timer": int_range(0, 10),
    "last_reward": float_range(-1.0, 10.0), "default_action": equal(4), "fixed_asset_seed": int_range(INT32_MIN, INT32_MAX),
    "cur_time": int_range(0, INT32_MAX), "is_waiting_for_step": equal(0), "grid_size": int_range(0, INT32_MAX),
}

ENTITY_RULES: Mapping[str, Rule] = {
    "x": float_range(0.0, 25.0), "y": float_range(0.0, 25.0), "vx": float_range(-1.0, 1.0),
    "vy": float_range(-1.0, 1.0), "rx": equal(0.5), "ry": equal(0.5),
    "type": equal(0), "image_type": equal(0), "image_theme": equal(0), "render_z": equal(1), "will_erase": equal(0),
    "collides_with_entities": equal(0), "collision_margin": equal(0.0), "rotation": equal(0.0), "vrot": equal(0.0),
    "is_reflected": BOOL, "fire_time": equal(-1), "spawn_time": equal(-1), "life_time": int_range(0, INT32_MAX),
    "expire_time": equal(-1), "use_abs_coords": equal(0), "friction": equal(1.0), "smart_step": equal(1),
    "avoids_collisions": equal(0), "auto_erase": equal(1), "alpha": equal(1.0), "health": equal(1.0),
    "theta": equal(-100.0), "grow_rate": equal(1.0), "alpha_decay": equal(1.0), "climber_spawn_x": equal(0.0),
}

BASIC_RULES: Mapping[str, Rule] = {
    "use_procgen_background": equal(0), "background_index": int_range(0, 8), "bg_tile_ratio": equal(0.0),
    "bg_pct_x": float_range(0.0, 1.0), "char_dim": equal(5.0), "last_move_action": int_range(0, 8),
    "move_action": int_range(0, 8), "special_action": int_range(0, 6),
    "mixrate": equal(0.5), "maxspeed": equal(0.5), "max_jump": equal(0.5),
    "action_vx": float_range(-1.0, 1.0), "action_vy": float_range(-1.0, 1.0), "action_vrot": equal(0.0),
    "center_x": per_world(lambda d: d / 2), "center_y": per_world(lambda d: d / 2),
    "random_agent_start": equal(0), "has_useful_vel_info": equal(0), "step_rand_int": int_range(0, 999_999),
    "asset_rand_gen_is_seeded": equal(0), "asset_rand_gen": mt19937_text,
    "main_width": per_world(float), "main_height": per_world(float), "out_of_bounds_object": equal(51),
    # procgen recomputes these four on set_state: only its own float32 values read back unchanged
    "unit": per_world({25: 2.559999942779541, 15: 4.266666889190674}.get),
    "view_dim": per_world({25: 25.0, 15: 14.999999046325684}.get),
    "x_off": per_world({25: 0.0, 15: 2.0345053144410485e-06}.get),
    "y_off": per_world({25: 0.0, 15: 2.0345053144410485e-06}.get),
    "visibility": per_world(float), "min_visibility": equal(0.0),
}


# --------------------------------------------------------------------------------------
# checking a state


def _check_fields(prefix: str, values: Mapping[str, Any], rules: Mapping[str, Rule], dim: int) -> None:
    for name, rule in rules.items():
        value = values[name]
        expected = rule(value, dim)
        if expected is not None:
            raise InvalidStateError(f"{prefix}.{name}", value, expected)


def check_header(game: Mapping[str, Any], basic: Mapping[str, Any], maze: Mapping[str, Any]) -> tuple[int, int]:
    """Check the ``Game``, ``BasicAbstractGame`` and ``MazeGame`` fields (by name); return ``(world side, maze_dim)``.

    Raises:
        InvalidStateError: the first field procgen would not hold.
    """
    mode = game["distribution_mode"]
    if not (_is_int(mode) and int(mode) in WORLD_DIMS):
        raise InvalidStateError("game.distribution_mode", mode, f"one of {sorted(WORLD_DIMS)} (easy, hard)")
    dim = WORLD_DIMS[int(mode)]
    if maze["world_dim"] != dim:
        raise InvalidStateError("maze.world_dim", maze["world_dim"], f"{dim} (distribution_mode {mode})")
    n = maze["maze_dim"]
    if not _is_int(n) or not 3 <= n <= dim or n % 2 == 0:
        raise InvalidStateError("maze.maze_dim", n, f"an odd int in [3, {dim}]")
    if maze["end_marker"] != END_MARKER:
        raise InvalidStateError("maze.end_marker", maze["end_marker"], f"the end sentinel {END_MARKER}")
    _check_fields("game", game, GAME_RULES, dim)
    _check_fields("basic", basic, BASIC_RULES, dim)
    if game["grid_size"] != dim * dim:
        raise InvalidStateError("game.grid_size", game["grid_size"], f"{dim * dim} (the world's cell count)")
    if not game["level_seed_low"] < game["level_seed_high"]:
        raise InvalidStateError("game.level_seed_high", game["level_seed_high"],
                                f"more than level_seed_low = {game['level_seed_low']}")
    if game["cur_time"] > game["timeout"]:
        raise InvalidStateError("game.cur_time", game["cur_time"], f"at most timeout = {game['timeout']}")
    return dim, int(n)


def _half_cell(value: float, what: str, low: int, high: int) -> int:
    """The cell index of an entity coordinate that must lie at a cell centre ``k + 0.5``, low <= k < high."""
    k = math.floor(value)
    if value - k != 0.5 or not low <= k < high:
        raise InvalidStateError(what, value, f"a cell centre k + 0.5 with {low} <= k < {high} (inside the inner maze)")
    return k


def check_mouse(mouse: Mapping[str, Any], dim: int, n: int) -> tuple[int, int]:
    """Check the mouse entity's fields (by name); return its world cell ``(x, y)`` (y 0 at the bottom)."""
    _check_fields("mouse", mouse, ENTITY_RULES, dim)
    margin = (dim - n) // 2
    return (_half_cell(float(mouse["x"]), "mouse.x", margin, margin + n),
            _half_cell(float(mouse["y"]), "mouse.y", margin, margin + n))


@functools.lru_cache(maxsize=64)
def _padding(dim: int, n: int) -> np.ndarray:
    padding = np.ones((dim, dim), dtype=bool)
    margin = (dim - n) // 2
    padding[margin : margin + n, margin : margin + n] = False
    return padding


def check_world(world: Any, dim: int, n: int) -> None:
    """Check the world grid: int32 ``(dim, dim)``, known cell codes, at most one cheese, inside the inner
    ``n × n`` maze (the padding around it is wall, or empty where a path was opened)."""
    if not isinstance(world, np.ndarray) or world.dtype != np.int32 or world.shape != (dim, dim):
        shape = getattr(world, "shape", type(world).__name__)
        raise InvalidStateError("world", shape, f"an int32 array of shape ({dim}, {dim})")
    is_cheese, is_wall = world == 2, world == 51
    known = is_cheese | is_wall | (world == 100)
    if not known.all():
        y, x = (int(v) for v in np.argwhere(~known)[0])
        raise InvalidStateError(f"world cell (x={x}, y={y})", int(world[y, x]),
                                f"a cell code in {sorted(CELL_CODES)} (cheese, wall, empty)")
    # the padding may be opened (the top-right path of the steering recipe), but the cheese lies inside
    padding = _padding(dim, n)
    if is_cheese[padding].any():
        y, x = (int(v) for v in np.argwhere(padding & is_cheese)[0])
        raise InvalidStateError(f"world cell (x={x}, y={y})", int(world[y, x]),
                                f"51 or 100 (wall or empty): it lies outside the {n}×{n} inner maze (maze_dim {n}), "
                                "where the cheese cannot be")
    cheeses = int(np.count_nonzero(is_cheese))
    if cheeses > 1:
        raise InvalidStateError("world cheese cells", cheeses, "at most 1")


def check_mouse_cell(world: np.ndarray, dim: int, n: int, mouse: tuple[int, int]) -> None:
    """Check that the mouse's world cell ``(x, y)`` is empty (not a wall, not the cheese)."""
    x, y = mouse
    code = int(world[y, x])
    if code != 100:
        margin = (dim - n) // 2
        raise InvalidStateError("mouse cell", (margin + n - 1 - y, x - margin),
                                f"an empty cell of the inner maze, but it holds {CELL_CODES[code]}")


def parts_of(names: Iterable[str], values: Iterable[Any]) -> dict[str, Any]:
    """``dict(zip(names, values))`` with the lengths checked."""
    names, values = list(names), list(values)
    if len(names) != len(values):
        raise InvalidStateError("field count", len(values), f"{len(names)} fields")
    return dict(zip(names, values))
