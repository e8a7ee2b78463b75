"""Immutable procgen 0.10.7 maze states, parsed from and serialized to the exact bytes.

A state blob is what ``get_state`` returns for one env: the fields that
procgen's ``Game``, ``BasicAbstractGame`` and ``MazeGame`` serialize, in that
order (ints and floats are 4-byte little-endian, strings are an int length and
raw bytes, the world grid is ``w, h, w*h`` ints followed by the cells, and the
blob ends with a 4-byte sentinel). :class:`MazeState` keeps every field, so
``MazeState.from_bytes(b).to_bytes() == b`` holds byte for byte, and exposes
the maze through the one cell convention of :mod:`mazeinterp.maze` (row 0 at the
top). procgen's grid has row 0 at the bottom; the flip lives only in this module.

Edits return new states and never touch the original::

    state = MazeState.from_bytes(blob)
    moved = state.with_cheese((0, state.maze_size - 1))
    env.set_state(0, moved)
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mazeinterp.maze.grid import Cell
from mazeinterp.maze.state_rules import InvalidStateError, check_header, check_mouse, check_mouse_cell, check_world, parts_of

WALL = 51
EMPTY = 100
CHEESE = 2
PLAYER_TYPE = 0
WORLD_SIZE = 25

GAME_FIELDS: tuple[tuple[str, str], ...] = (
    ("serialize_version", "i"),
    ("game_name", "s"),
    *((name, "i") for name in (
        "paint_vel_info", "use_generated_assets", "use_monochrome_assets",
        "restrict_themes", "use_backgrounds", "center_agent", "debug_mode",
        "distribution_mode", "use_sequential_levels", "use_easy_jump",
        "plain_assets", "physics_mode", "grid_step", "level_seed_low",
        "level_seed_high", "game_type", "game_n", "level_seed_rand_gen_is_seeded",
    )),
    ("level_seed_rand_gen", "s"),
    ("rand_gen_is_seeded", "i"),
    ("rand_gen", "s"),
    ("reward", "f"),
    *((name, "i") for name in (
        "done", "level_complete", "action", "timeout", "current_level_seed",
        "prev_level_seed", "episodes_remaining", "episode_done", "last_reward_timer",
    )),
    ("last_reward", "f"),
    *((name, "i") for name in (
        "default_action", "fixed_asset_seed", "cur_time", "is_waiting_for_step", "grid_size",
    )),
)
"""``(name, kind)`` of each field of the game header, in byte order; kind ``"i"`` int32, ``"f"`` float32,
``"s"`` length-prefixed string."""

ENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    *((name, "f") for name in ("x", "y", "vx", "vy", "rx", "ry")),
    *((name, "i") for name in (
        "type", "image_type", "image_theme", "render_z", "will_erase", "collides_with_entities",
    )),
    *((name, "f") for name in ("collision_margin", "rotation", "vrot")),
    *((name, "i") for name in (
        "is_reflected", "fire_time", "spawn_time", "life_time", "expire_time", "use_abs_coords",
    )),
    ("friction", "f"),
    *((name, "i") for name in ("smart_step", "avoids_collisions", "auto_erase")),
    *((name, "f") for name in (
        "alpha", "health", "theta", "grow_rate", "alpha_decay", "climber_spawn_x",
    )),
)
"""``(name, kind)`` of each field of one entity (the mouse is one), in byte order (kinds as :data:`GAME_FIELDS`)."""

BASIC_FIELDS: tuple[tuple[str, str], ...] = (
    ("use_procgen_background", "i"),
    ("background_index", "i"),
    *((name, "f") for name in ("bg_tile_ratio", "bg_pct_x", "char_dim")),
    *((name, "i") for name in ("last_move_action", "move_action", "special_action")),
    *((name, "f") for name in (
        "mixrate", "maxspeed", "max_jump", "action_vx", "action_vy", "action_vrot",
        "center_x", "center_y",
    )),
    *((name, "i") for name in (
        "random_agent_start", "has_useful_vel_info", "step_rand_int", "asset_rand_gen_is_seeded",
    )),
    ("asset_rand_gen", "s"),
    *((name, "i") for name in ("main_width", "main_height", "out_of_bounds_object")),
    *((name, "f") for name in ("unit", "view_dim", "x_off", "y_off", "visibility", "min_visibility")),
)
"""``(name, kind)`` of each field of the basic-game block after the entities, in byte order."""

MAZE_FIELDS: tuple[tuple[str, str], ...] = (("maze_dim", "i"), ("world_dim", "i"), ("end_marker", "i"))
"""``(name, kind)`` of the maze fields after the world grid, in byte order."""

_INT = struct.Struct("<i")
_FLOAT = struct.Struct("<f")


StateParseError = InvalidStateError
"""The error of a blob that is not a procgen maze state (another name of :class:`InvalidStateError`)."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def read(self, kind: str, name: str) -> Any:
        try:
            if kind == "s":
                size = _INT.unpack_from(self.data, self.offset)[0]
                start = self.offset + 4
                if size < 0 or start + size > len(self.data):
                    raise InvalidStateError(name, size, f"a string length that fits the blob ({len(self.data)} bytes)",
                                            f"string field {name!r} of length {size} runs past the blob")
                self.offset = start + size
                return self.data[start:self.offset]
            packer = _INT if kind == "i" else _FLOAT
            value = packer.unpack_from(self.data, self.offset)[0]
            self.offset += 4
            return value
        except struct.error as exc:
            raise InvalidStateError(name, f"end of blob at byte {self.offset}", "4 more bytes",
                                    f"blob ends inside field {name!r} at byte {self.offset}") from exc

    def read_fields(self, fields: tuple[tuple[str, str], ...]) -> tuple[Any, ...]:
        return tuple(self.read(kind, name) for name, kind in fields)


def _write_fields(out: list[bytes], fields: tuple[tuple[str, str], ...], values: tuple[Any, ...]) -> None:
    for (_, kind), value in zip(fields, values, strict=True):
        if kind == "s":
            out.append(_INT.pack(len(value)))
            out.append(value)
        elif kind == "i":
            out.append(_INT.pack(value))
        else:
            out.append(_FLOAT.pack(value))


def _field_index(fields: tuple[tuple[str, str], ...], name: str) -> int:
    return [n for n, _ in fields].index(name)


@dataclass(frozen=True)
class MazeState:
    """One procgen maze state: every serialized field, plus convenient views.

    Construct with :meth:`from_bytes`; write back with :meth:`to_bytes`. The
    ``world`` array is procgen's grid as stored (row 0 at the bottom) and is
    read-only; use :attr:`world_grid`, :attr:`inner_grid` and cells instead.
    """

    game: tuple[Any, ...]
    entities: tuple[tuple[Any, ...], ...]
    basic: tuple[Any, ...]
    world: np.ndarray = field(repr=False)
    maze: tuple[Any, ...]

    def __post_init__(self) -> None:
        """Every state that exists is one procgen can hold: see :func:`~mazeinterp.maze.state_rules.check_state`."""
        check_state(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> MazeState:
        """Parse a procgen 0.10.7 maze state blob (``bytes``) into a :class:`MazeState`."""
        reader = _Reader(bytes(data))
        game = reader.read_fields(GAME_FIELDS)
        if game[1] != b"maze":
            raise InvalidStateError("game.game_name", game[1], "b'maze'", f"state is for game {game[1]!r}, not b'maze'")
        n_entities = reader.read("i", "entity count")
        if n_entities != 1:
            raise InvalidStateError("entity count", n_entities, "1 (the mouse; the cheese is a grid cell)")
        entities = tuple(reader.read_fields(ENTITY_FIELDS) for _ in range(n_entities))
        basic = reader.read_fields(BASIC_FIELDS)
        w, h, count = (reader.read("i", name) for name in ("grid w", "grid h", "grid cell count"))
        if w <= 0 or h <= 0 or count != w * h or reader.offset + 4 * count > len(reader.data):
            raise InvalidStateError("world header", (w, h, count), "w, h > 0 and w·h cells inside the blob",
                                    f"bad world grid header w={w} h={h} cells={count}")
        world = np.frombuffer(reader.data, dtype="<i4", count=count, offset=reader.offset).reshape(h, w)
        world = world.astype(np.int32)
        world.flags.writeable = False
        reader.offset += 4 * count
        maze = reader.read_fields(MAZE_FIELDS)
        if reader.offset != len(reader.data):
            extra = len(reader.data) - reader.offset
            raise InvalidStateError("end of state", extra, "no bytes after the end sentinel",
                                    f"{extra} unparsed bytes at the end of the state")
        return cls(game=game, entities=entities, basic=basic, world=world, maze=maze)

    def to_bytes(self) -> bytes:
        """Serialize back to the procgen blob (byte-identical to the parsed one if unedited)."""
        out: list[bytes] = []
        _write_fields(out, GAME_FIELDS, self.game)
        out.append(_INT.pack(len(self.entities)))
        for entity in self.entities:
            _write_fields(out, ENTITY_FIELDS, entity)
        _write_fields(out, BASIC_FIELDS, self.basic)
        h, w = self.world.shape
        out.append(struct.pack("<iii", w, h, w * h))
        out.append(np.ascontiguousarray(self.world, dtype="<i4").tobytes())
        _write_fields(out, MAZE_FIELDS, self.maze)
        return b"".join(out)

    def game_field(self, name: str) -> Any:
        """Value of one ``Game``-level serialized field, e.g. ``"current_level_seed"``."""
        return self.game[_field_index(GAME_FIELDS, name)]

    def with_game_fields(self, **values: Any) -> MazeState:
        """A copy with ``Game``-level fields replaced (e.g. ``cur_time=0``).

        Raises:
            InvalidStateError: an unknown field name, or a value procgen would not hold there.
        """
        names = [n for n, _ in GAME_FIELDS]
        game = list(self.game)
        for name, value in values.items():
            if name not in names:
                raise InvalidStateError("game field name", name, f"one of {', '.join(names)}")
            game[names.index(name)] = int(value) if isinstance(value, np.integer) else value
        return replace(self, game=tuple(game))

    # ----- views in the cell convention -------------------------------------------------

    @property
    def level_seed(self) -> int:
        """The procgen level seed this maze was generated from."""
        return int(self.game_field("current_level_seed"))

    @property
    def maze_size(self) -> int:
        """Side ``n`` of the inner maze (odd, 3…25 in hard mode)."""
        return int(self.maze[0])

    @property
    def margin(self) -> int:
        """Number of padding wall rows/columns on each side of the inner maze."""
        return (self.world.shape[0] - self.maze_size) // 2

    @property
    def world_grid(self) -> np.ndarray:
        """World grid (H, W) of cell codes (51 wall, 100 empty, 2 cheese), row 0 at the top."""
        return self.world[::-1]

    @property
    def inner_grid(self) -> np.ndarray:
        """Inner maze grid (n, n) of cell codes, row 0 at the top."""
        m, n = self.margin, self.maze_size
        return self.world_grid[m : m + n, m : m + n]

    @property
    def open_cells(self) -> np.ndarray:
        """Boolean (n, n) array, True where the mouse may stand (empty or cheese)."""
        return self.inner_grid != WALL

    @property
    def cheese(self) -> Cell | None:
        """The cheese cell, or None if the cheese has been removed or eaten."""
        found = np.argwhere(self.inner_grid == CHEESE)
        return (int(found[0][0]), int(found[0][1])) if len(found) else None

    @property
    def mouse(self) -> Cell:
        """The cell the mouse stands on."""
        entity = self.entities[self._player_index()]
        x, y = entity[0], entity[1]
        return self._world_to_cell(int(x), int(y))

    @property
    def mouse_reflected(self) -> bool:
        """Whether the mouse sprite is drawn mirrored.

        procgen mirrors it on every action with a rightward part and unmirrors it
        on every action with a leftward part, even against a wall; other actions
        keep it. The observation is a function of the maze, the cheese, the
        mouse's cell and this flag. Episodes start unmirrored.
        """
        return bool(self.entities[self._player_index()][_field_index(ENTITY_FIELDS, "is_reflected")])

    # ----- edits -----------------------------------------------------------------------

    def with_cheese(self, cell: Cell) -> MazeState:
        """A copy with the cheese moved to ``cell`` (an open cell of the inner maze, not the mouse's)."""
        self._check_inside(cell, "cheese")
        if self.inner_grid[cell] == WALL:
            raise ValueError(f"cannot put the cheese on cell {tuple(cell)}: it is a wall")
        if tuple(cell) == self.mouse:
            raise ValueError(f"cannot put the cheese on cell {tuple(cell)}: the mouse stands there")
        return self.without_cheese()._with_code(cell, CHEESE)

    def without_cheese(self) -> MazeState:
        """A copy with the cheese removed (its cell becomes empty); unchanged if there is none."""
        if self.cheese is None:
            return self
        return self._with_code(self.cheese, EMPTY)

    def with_open(self, cell: Cell) -> MazeState:
        """A copy with ``cell`` made an empty, walkable cell (no-op if already empty)."""
        self._check_inside(cell, "opened cell")
        if self.inner_grid[cell] == CHEESE:
            raise ValueError(f"cannot open cell {tuple(cell)}: it holds the cheese (remove or move it first)")
        return self._with_code(cell, EMPTY)

    def with_wall(self, cell: Cell) -> MazeState:
        """A copy with ``cell`` turned into a wall (not the mouse's cell, not the cheese's)."""
        self._check_inside(cell, "wall")
        if tuple(cell) == self.mouse:
            raise ValueError(f"cannot wall cell {tuple(cell)}: the mouse stands there")
        if self.inner_grid[cell] == CHEESE:
            raise ValueError(f"cannot wall cell {tuple(cell)}: it holds the cheese (remove or move it first)")
        return self._with_code(cell, WALL)

    def with_mouse(self, cell: Cell) -> MazeState:
        """A copy with the mouse moved to the centre of ``cell`` (an open cell without the cheese)."""
        self._check_inside(cell, "mouse")
        code = self.inner_grid[cell]
        if code == WALL:
            raise ValueError(f"cannot put the mouse on cell {tuple(cell)}: it is a wall")
        if code == CHEESE:
            raise ValueError(f"cannot put the mouse on cell {tuple(cell)}: it holds the cheese")
        x, y = self._cell_to_world(cell)
        return self._with_player(x=x + 0.5, y=y + 0.5)

    def with_mouse_reflected(self, reflected: bool) -> MazeState:
        """A copy whose mouse sprite is drawn mirrored (``True``) or not (see :attr:`mouse_reflected`)."""
        return self._with_player(is_reflected=int(bool(reflected)))

    def with_layout(self, open_cells: np.ndarray, cheese: Cell | None = None) -> MazeState:
        """A copy whose inner maze is ``open_cells`` (bool ``(n, n)``, row 0 at the top), for hand-made mazes.

        ``n`` must equal :attr:`maze_size`; the cheese (if given) must be on an
        open cell and the mouse's cell must stay open.
        """
        layout = np.asarray(open_cells, dtype=bool)
        n = self.maze_size
        if layout.shape != (n, n):
            raise ValueError(f"layout has shape {layout.shape}, this state's inner maze is {n}×{n}")
        if not layout[self.mouse]:
            raise ValueError(f"layout walls cell {self.mouse}, where the mouse stands")
        if cheese is not None:
            self._check_inside(cheese, "cheese")
            if not layout[tuple(cheese)]:
                raise ValueError(f"cannot put the cheese on cell {tuple(cheese)}: it is a wall in the layout")
            if tuple(cheese) == self.mouse:
                raise ValueError(f"cannot put the cheese on cell {tuple(cheese)}: the mouse stands there")
        codes = np.where(layout, EMPTY, WALL).astype(np.int32)
        if cheese is not None:
            codes[tuple(cheese)] = CHEESE
        world = self.world_grid.copy()
        m = self.margin
        world[m : m + n, m : m + n] = codes
        world = np.ascontiguousarray(world[::-1])
        world.flags.writeable = False
        return replace(self, world=world)

    # ----- internals -------------------------------------------------------------------

    def _player_index(self) -> int:
        type_index = _field_index(ENTITY_FIELDS, "type")
        for index, entity in enumerate(self.entities):
            if entity[type_index] == PLAYER_TYPE:
                return index
        raise InvalidStateError("entity types", [e[type_index] for e in self.entities], "one player entity (type 0)")

    def _with_player(self, **values: Any) -> MazeState:
        """A copy whose mouse entity has the given fields (names of ``ENTITY_FIELDS``) replaced."""
        index = self._player_index()
        entity = list(self.entities[index])
        for name, value in values.items():
            entity[_field_index(ENTITY_FIELDS, name)] = value
        return replace(self, entities=self.entities[:index] + (tuple(entity),) + self.entities[index + 1 :])

    def _check_inside(self, cell: Cell, what: str) -> None:
        if not _is_cell(cell):
            raise ValueError(f"cannot place the {what} on {cell!r}: a cell is a (row, col) pair of ints")
        row, col = (int(v) for v in cell)
        n = self.maze_size
        if not (0 <= row < n and 0 <= col < n):
            raise ValueError(f"cannot place the {what} on cell {(row, col)}: outside the {n}×{n} inner maze")

    def _cell_to_world(self, cell: Cell) -> tuple[int, int]:
        """Inner (row, col), row 0 at the top → procgen world (x, y), y 0 at the bottom."""
        row, col = cell
        return self.margin + int(col), self.margin + self.maze_size - 1 - int(row)

    def _world_to_cell(self, x: int, y: int) -> Cell:
        return (self.margin + self.maze_size - 1 - y, x - self.margin)

    def _with_code(self, cell: Cell, code: int) -> MazeState:
        x, y = self._cell_to_world(cell)
        world = self.world.copy()
        world[y, x] = code
        world.flags.writeable = False
        return replace(self, world=world)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MazeState):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())


def _is_cell(cell: Any) -> bool:
    """Whether ``cell`` is a ``(row, col)`` pair of ints (numpy ints included)."""
    try:
        parts = tuple(cell)
    except TypeError:
        return False
    return len(parts) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                                   for v in parts)


def check_state(state: MazeState) -> None:
    """Raise :class:`InvalidStateError` unless ``state`` is a maze state procgen can hold.

    Checks every field against the rules of :mod:`mazeinterp.maze.state_rules`:
    version, dimensions consistent with the world grid, known cell codes and
    entity, exactly one mouse on an open cell of the inner maze and at most one
    cheese, floats finite and in procgen's ranges, the end sentinel, flags.
    """
    entities = state.entities
    if not isinstance(entities, tuple) or not all(isinstance(e, tuple) for e in entities):
        raise InvalidStateError("entities", type(entities).__name__, "a tuple of entity tuples")
    if len(entities) != 1:
        raise InvalidStateError("entity count", len(entities), "1 (the mouse; the cheese is a grid cell)")
    header = (tuple(state.game), tuple(state.basic), tuple(state.maze))
    header_key: tuple[tuple[tuple[type, Any, float], ...], ...] | None
    mouse_key: tuple[tuple[type, Any, float], ...] | None
    try:
        header_key, mouse_key = tuple(_cache_key(part) for part in header), _cache_key(entities[0])
    except TypeError:  # a field holds an unhashable value: check it uncached (it will be refused)
        header_key = mouse_key = None
    dim, n = _header_dims(*header) if header_key is None else _header_dims_cached(header_key)
    check_world(state.world, dim, n)
    mouse = _mouse_cell(entities[0], dim, n) if mouse_key is None else _mouse_cell_cached(mouse_key, dim, n)
    check_mouse_cell(state.world, dim, n, mouse)


# States are immutable and edits mostly change the world or the mouse: the field checks of
# the unchanged parts are remembered, keyed by value, type and sign (``0 == 0.0 == -0.0`` in
# Python, but procgen reads the bits), which keeps edits cheap.
def _cache_key(values: tuple[Any, ...]) -> tuple[tuple[type, Any, float], ...]:
    """Each value with its type and sign; raises TypeError for an unhashable value."""
    key = tuple((type(v), v, math.copysign(1.0, v) if isinstance(v, float) else 0.0) for v in values)
    hash(key)
    return key


def _values(key: tuple[tuple[type, Any, float], ...]) -> tuple[Any, ...]:
    return tuple(value for _, value, _ in key)


def _header_dims(game: tuple[Any, ...], basic: tuple[Any, ...], maze: tuple[Any, ...]) -> tuple[int, int]:
    return check_header(parts_of(_names(GAME_FIELDS), game), parts_of(_names(BASIC_FIELDS), basic),
                        parts_of(_names(MAZE_FIELDS), maze))


@functools.lru_cache(maxsize=1024)
def _header_dims_cached(key: tuple[tuple[tuple[type, Any, float], ...], ...]) -> tuple[int, int]:
    return _header_dims(*(_values(part) for part in key))


def _mouse_cell(entity: tuple[Any, ...], dim: int, n: int) -> tuple[int, int]:
    return check_mouse(parts_of(_names(ENTITY_FIELDS), entity), dim, n)


@functools.lru_cache(maxsize=4096)
def _mouse_cell_cached(key: tuple[tuple[type, Any, float], ...], dim: int, n: int) -> tuple[int, int]:
    return _mouse_cell(_values(key), dim, n)


def _names(fields: tuple[tuple[str, str], ...]) -> list[str]:
    return [name for name, _ in fields]
