"""Pure-numpy maze geometry: paths, the decision square, distances.

Every function takes ``open_cells``, a square 2-D boolean array (``True`` =
open / walkable; the cheese cell counts as open) indexed ``grid[row, col]``
with row 0 at the top -- the one cell convention of :mod:`mazeinterp.maze`.
The mouse starts at ``(n - 1, 0)``; the top-right cell is ``(0, n - 1)``.

Movement is 4-connected. Procgen mazes are trees, so shortest paths are
unique there, but every function works on any grid. Ties are broken
deterministically: a shortest path from ``a`` to ``b`` is built by one BFS from
``b`` and then, from ``a``, repeatedly stepping to the *first* neighbour in
:data:`NEIGHBOUR_ORDER` (up, down, left, right) that is one step closer to
``b``. :func:`shortest_path`, :func:`next_move_towards` and
:func:`oracle_moves` all follow that one rule, so they always agree.

Bad input raises ``ValueError`` naming the problem: a grid that is not square
and 2-D, or a cell that is outside the maze or on a wall.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from dataclasses import dataclass, fields

import numpy as np

Cell = tuple[int, int]

NEIGHBOUR_ORDER: tuple[Cell, ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))
"""Neighbour deltas ``(drow, dcol)`` in tie-breaking order: up, down, left, right."""

TOP_RIGHT_REGION_SIZE = 5
"""Side of the top-right corner region used by :func:`maze_features`."""

DECISION_SQUARE_DEFINITIONS: tuple[str, ...] = ("mazeinterp", "research")
"""The two definitions of the decision square that :func:`decision_square` offers."""


# --------------------------------------------------------------------------
# validation helpers


def _as_grid(open_cells: np.ndarray) -> np.ndarray:
    """Return ``open_cells`` as a bool array after checking it is square and 2-D."""
    grid = np.asarray(open_cells)
    if grid.ndim != 2 or grid.shape[0] != grid.shape[1] or grid.shape[0] == 0:
        raise ValueError(f"open_cells must be a non-empty square 2-D array, got shape {grid.shape}")
    if grid.dtype != bool:
        if not np.issubdtype(grid.dtype, np.integer) or not np.isin(grid, (0, 1)).all():
            raise ValueError(f"open_cells must be boolean (or 0/1 integers), got dtype {grid.dtype}")
        grid = grid.astype(bool)
    return grid


def _check_n(n: int) -> int:
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"maze size must be >= 1, got {n}")
    return n


def _in_maze(cell: Cell, n: int) -> Cell:
    """Return ``cell`` as a tuple of Python ints; ValueError if outside the n×n maze."""
    try:
        row, col = (operator.index(v) for v in cell)
    except (TypeError, ValueError):
        raise ValueError(f"cell {cell!r} is not a (row, col) pair of ints") from None
    if not (0 <= row < n and 0 <= col < n):
        raise ValueError(f"cell ({row}, {col}) is outside the {n}×{n} maze")
    return row, col


def _open(grid: np.ndarray, cell: Cell) -> Cell:
    """Return ``cell`` normalised; ValueError if outside the maze or a wall."""
    cell = _in_maze(cell, grid.shape[0])
    if not grid[cell]:
        raise ValueError(f"cell {cell} is a wall")
    return cell


# --------------------------------------------------------------------------
# search core


def _bfs(grid: np.ndarray, source: Cell) -> np.ndarray:
    """Distances from the open cell ``source``; -1 at walls and unreachable cells."""
    n = grid.shape[0]
    is_open = grid.tolist()
    dist = [[-1] * n for _ in range(n)]
    dist[source[0]][source[1]] = 0
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        d = dist[r][c] + 1
        for dr, dc in NEIGHBOUR_ORDER:
            rr, cc = r + dr, c + dc
            if 0 <= rr < n and 0 <= cc < n and is_open[rr][cc] and dist[rr][cc] < 0:
                dist[rr][cc] = d
                queue.append((rr, cc))
    return np.array(dist, dtype=np.int64)


def _step_towards(dist: np.ndarray, cell: Cell) -> Cell:
    """First neighbour (in NEIGHBOUR_ORDER) one step closer to the BFS source of ``dist``."""
    n = dist.shape[0]
    target = dist[cell] - 1
    for dr, dc in NEIGHBOUR_ORDER:
        r, c = cell[0] + dr, cell[1] + dc
        if 0 <= r < n and 0 <= c < n and dist[r, c] == target:
            return r, c
    raise AssertionError("unreachable: BFS distances always decrease along some neighbour")


def _descend(dist: np.ndarray, start: Cell, goal: Cell) -> list[Cell]:
    """Shortest path start→goal given ``dist`` = BFS distances from ``goal``."""
    if dist[start] < 0:
        raise ValueError(f"cell {goal} is not reachable from cell {start}")
    path = [start]
    while dist[path[-1]] > 0:
        path.append(_step_towards(dist, path[-1]))
    return path


def _divergence(path_a: list[Cell], path_b: list[Cell]) -> Cell | None:
    """Last cell of the common prefix; None if one path is a prefix of the other."""
    last = None
    for a, b in zip(path_a, path_b):
        if a != b:
            return last
        last = a
    return None


# --------------------------------------------------------------------------
# public API


def start_cell(n: int) -> Cell:
    """The mouse's start cell ``(n - 1, 0)`` (bottom-left) of an n×n maze."""
    n = _check_n(n)
    return n - 1, 0


def top_right_cell(n: int) -> Cell:
    """The top-right cell ``(0, n - 1)`` of an n×n maze."""
    n = _check_n(n)
    return 0, n - 1


def neighbours(open_cells: np.ndarray, cell: Cell) -> list[Cell]:
    """Open 4-neighbours of the open ``cell``, in :data:`NEIGHBOUR_ORDER` (up, down, left, right)."""
    grid = _as_grid(open_cells)
    r, c = _open(grid, cell)
    n = grid.shape[0]
    out = []
    for dr, dc in NEIGHBOUR_ORDER:
        rr, cc = r + dr, c + dc
        if 0 <= rr < n and 0 <= cc < n and grid[rr, cc]:
            out.append((rr, cc))
    return out


def distance_map(open_cells: np.ndarray, source: Cell) -> np.ndarray:
    """Int64 (n, n) array of BFS path lengths from the open ``source``; -1 at walls/unreachable."""
    grid = _as_grid(open_cells)
    return _bfs(grid, _open(grid, source))


def shortest_path(open_cells: np.ndarray, start: Cell, goal: Cell) -> list[Cell]:
    """Cells of a shortest path from ``start`` to ``goal``, both ends included.

    Ties (only possible on grids with cycles) go to the first neighbour in
    :data:`NEIGHBOUR_ORDER` that is one step closer to ``goal``. Raises
    ValueError if ``goal`` is not reachable from ``start``.
    """
    grid = _as_grid(open_cells)
    start, goal = _open(grid, start), _open(grid, goal)
    return _descend(_bfs(grid, goal), start, goal)


def path_to_cheese(open_cells: np.ndarray, cheese: Cell) -> list[Cell]:
    """Shortest path from the start cell ``(n-1, 0)`` to ``cheese``, both ends included."""
    grid = _as_grid(open_cells)
    return shortest_path(grid, start_cell(grid.shape[0]), cheese)


def path_to_top_right(open_cells: np.ndarray) -> list[Cell]:
    """Shortest path from the start cell ``(n-1, 0)`` to the top-right cell ``(0, n-1)``."""
    grid = _as_grid(open_cells)
    n = grid.shape[0]
    return shortest_path(grid, start_cell(n), top_right_cell(n))


def check_decision_square_definition(definition: str) -> str:
    """``definition`` if it is one of :data:`DECISION_SQUARE_DEFINITIONS`; ValueError naming the choices otherwise."""
    if definition not in DECISION_SQUARE_DEFINITIONS:
        raise ValueError(f"unknown decision-square definition {definition!r}; "
                         f"expected one of {DECISION_SQUARE_DEFINITIONS}")
    return definition


def _decision_square(cheese_path: list[Cell], top_right_path: list[Cell], definition: str) -> Cell | None:
    if definition == "research" and len(top_right_path) < len(cheese_path) and (
            cheese_path[: len(top_right_path)] == top_right_path):
        return cheese_path[len(top_right_path)]
    return _divergence(cheese_path, top_right_path)


def decision_square(open_cells: np.ndarray, cheese: Cell, definition: str = "mazeinterp") -> Cell | None:
    """The decision square: last cell shared by the start→cheese and start→top-right paths.

    Both paths begin at the start cell; the decision square is the last cell
    of their common prefix, where they diverge (on a tree, exactly the last
    cell the two paths share).

    ``definition`` says what happens when one path is a prefix of the other:

    * ``"mazeinterp"`` (default): None, as there is no point of divergence:
      the cheese lies on the top-right path (this includes cheese on the start
      cell or on the top-right cell), or the top-right cell lies on the cheese
      path.
    * ``"research"``: as the published research code counts it. None when the
      cheese lies on the top-right path; but when the top-right cell lies on
      the cheese path (before the cheese), the cell after the top-right cell
      on the cheese path. The two definitions differ only in those mazes.
    """
    grid = _as_grid(open_cells)
    definition = check_decision_square_definition(definition)
    return _decision_square(path_to_cheese(grid, cheese), path_to_top_right(grid), definition)


def path_distance(open_cells: np.ndarray, a: Cell, b: Cell) -> int:
    """Number of moves on a shortest path between open cells ``a`` and ``b``; ValueError if unreachable."""
    grid = _as_grid(open_cells)
    a, b = _open(grid, a), _open(grid, b)
    d = int(_bfs(grid, b)[a])
    if d < 0:
        raise ValueError(f"cell {b} is not reachable from cell {a}")
    return d


def euclidean_distance(a: Cell, b: Cell) -> float:
    """Straight-line distance between two cells, in cell units."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def legal_mouse_cells(open_cells: np.ndarray) -> list[Cell]:
    """All open cells in row-major order (the mouse may stand on any open cell)."""
    grid = _as_grid(open_cells)
    return [(int(r), int(c)) for r, c in np.argwhere(grid)]


def top_right_region(n: int, k: int) -> list[Cell]:
    """Cells (row-major) of the top-right k×k corner of the n×n maze, clipped to the maze."""
    n = _check_n(n)
    k = operator.index(k)
    if k < 0:
        raise ValueError(f"region size must be >= 0, got {k}")
    k = min(k, n)
    return [(r, c) for r in range(k) for c in range(n - k, n)]


def in_top_right_region(cell: Cell, n: int, k: int) -> bool:
    """Whether ``cell`` (which must be inside the n×n maze) lies in its top-right k×k corner."""
    n = _check_n(n)
    row, col = _in_maze(cell, n)
    k = operator.index(k)
    if k < 0:
        raise ValueError(f"region size must be >= 0, got {k}")
    return row < k and col >= n - k


def next_move_towards(open_cells: np.ndarray, cell: Cell, goal: Cell) -> tuple[int, int]:
    """Delta ``(drow, dcol)`` of the first step of :func:`shortest_path` from ``cell`` to ``goal``.

    ``(0, 0)`` when ``cell == goal``; ValueError if ``goal`` is unreachable.
    """
    grid = _as_grid(open_cells)
    cell, goal = _open(grid, cell), _open(grid, goal)
    dist = _bfs(grid, goal)
    if dist[cell] < 0:
        raise ValueError(f"cell {goal} is not reachable from cell {cell}")
    if cell == goal:
        return 0, 0
    nxt = _step_towards(dist, cell)
    return nxt[0] - cell[0], nxt[1] - cell[1]


def oracle_moves(open_cells: np.ndarray, goal: Cell) -> np.ndarray:
    """Int64 (n, n, 2) array: :func:`next_move_towards` ``goal`` at every cell, from ONE BFS.

    ``moves[r, c] = (drow, dcol)``; zeros at walls, at ``goal`` and at cells
    that cannot reach ``goal``.
    """
    grid = _as_grid(open_cells)
    goal = _open(grid, goal)
    dist = _bfs(grid, goal)
    n = grid.shape[0]
    padded = np.full((n + 2, n + 2), -1, dtype=np.int64)
    padded[1:-1, 1:-1] = dist
    moves = np.zeros((n, n, 2), dtype=np.int64)
    done = dist <= 0  # walls, unreachable cells and the goal keep (0, 0)
    for dr, dc in NEIGHBOUR_ORDER:
        neighbour_dist = padded[1 + dr : 1 + dr + n, 1 + dc : 1 + dc + n]
        hit = ~done & (neighbour_dist == dist - 1)
        moves[hit] = (dr, dc)
        done |= hit
    return moves


@dataclass(frozen=True)
class MazeFeatures:
    """Geometric features of a maze with its cheese (for behavioural regressions).

    Distances involving the decision square are floats and are NaN -- for the
    path distances too -- when there is no decision square, so that a
    regression can drop those rows with one ``dropna``.
    """

    n: int
    """Side of the inner maze."""
    cheese: Cell
    """Cheese cell."""
    has_decision_square: bool
    """Whether the maze has a decision square (under the definition the features were computed with)."""
    decision_square: Cell | None
    """See :func:`decision_square`."""
    cheese_top_right_euclidean: float
    """Euclidean distance cheese ↔ top-right cell."""
    cheese_top_right_path: int
    """Path distance cheese ↔ top-right cell."""
    cheese_top_right_region_euclidean: float
    """Min Euclidean distance from the cheese to an open cell of the top-right region."""
    cheese_top_right_region_path: int
    """Min path distance from the cheese to an open cell of the top-right region."""
    cheese_decision_square_euclidean: float
    """Euclidean distance cheese ↔ decision square (NaN if none)."""
    cheese_decision_square_path: float
    """Path distance cheese ↔ decision square (NaN if none)."""
    decision_square_top_right_euclidean: float
    """Euclidean distance decision square ↔ top-right cell (NaN if none)."""
    decision_square_top_right_path: float
    """Path distance decision square ↔ top-right cell (NaN if none)."""

    def as_dict(self) -> dict[str, object]:
        """Field name → value, in field order (cells stay tuples or None)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def maze_features(
    open_cells: np.ndarray, cheese: Cell, region_size: int = TOP_RIGHT_REGION_SIZE,
    decision_square_definition: str = "mazeinterp",
) -> MazeFeatures:
    """Compute :class:`MazeFeatures` for the maze and its ``cheese`` cell (two BFS in all).

    The top-right region is the top-right ``region_size``² corner (5×5 by
    default); the decision square follows ``decision_square_definition`` (see
    :func:`decision_square`). ValueError if the cheese, start and top-right
    cells are not open and connected.
    """
    grid = _as_grid(open_cells)
    n = grid.shape[0]
    cheese = _open(grid, cheese)
    start, top_right = start_cell(n), _open(grid, top_right_cell(n))
    from_cheese = _bfs(grid, cheese)
    from_top_right = _bfs(grid, top_right)
    ds = _decision_square(_descend(from_cheese, start, cheese), _descend(from_top_right, start, top_right),
                          check_decision_square_definition(decision_square_definition))
    cheese_tr_path = int(from_cheese[top_right])
    if cheese_tr_path < 0:
        raise ValueError(f"cell {top_right} is not reachable from cell {cheese}")
    region = [cell for cell in top_right_region(n, region_size) if grid[cell]]
    nan = float("nan")
    return MazeFeatures(
        n=n,
        cheese=cheese,
        has_decision_square=ds is not None,
        decision_square=ds,
        cheese_top_right_euclidean=euclidean_distance(cheese, top_right),
        cheese_top_right_path=cheese_tr_path,
        cheese_top_right_region_euclidean=min(euclidean_distance(cheese, c) for c in region),
        cheese_top_right_region_path=min(int(from_cheese[c]) for c in region if from_cheese[c] >= 0),
        cheese_decision_square_euclidean=nan if ds is None else euclidean_distance(cheese, ds),
        cheese_decision_square_path=nan if ds is None else float(from_cheese[ds]),
        decision_square_top_right_euclidean=nan if ds is None else euclidean_distance(ds, top_right),
        decision_square_top_right_path=nan if ds is None else float(from_top_right[ds]),
    )


# --------------------------------------------------------------------------
# ascii pictures (tests and debugging)


def parse_ascii(text: str) -> tuple[np.ndarray, Cell | None]:
    """Build ``(open_cells, cheese)`` from a picture, rows top to bottom.

    ``#`` wall, ``.`` open, ``C`` cheese (open; at most one). Blank lines and
    whitespace inside lines are ignored. ``cheese`` is None without a ``C``.
    """
    rows = ["".join(line.split()) for line in text.splitlines()]
    rows = [row for row in rows if row]
    n = len(rows)
    if n == 0 or any(len(row) != n for row in rows):
        raise ValueError(f"picture must be a non-empty square, got row lengths {[len(r) for r in rows]}")
    bad = set("".join(rows)) - set("#.C")
    if bad:
        raise ValueError(f"unknown characters {sorted(bad)} in picture (use '#', '.', 'C')")
    cheeses = [(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "C"]
    if len(cheeses) > 1:
        raise ValueError(f"picture has {len(cheeses)} cheese cells {cheeses}, expected at most one")
    grid = np.array([[ch != "#" for ch in row] for row in rows], dtype=bool)
    return grid, (cheeses[0] if cheeses else None)


def to_ascii(
    open_cells: np.ndarray, cheese: Cell | None = None, marks: dict[Cell, str] | None = None
) -> str:
    """Picture of the maze (inverse of :func:`parse_ascii`), rows top to bottom, no trailing newline.

    ``marks`` maps cells to single characters drawn over everything else
    (then the cheese ``C``, then ``#`` / ``.``).
    """
    grid = _as_grid(open_cells)
    n = grid.shape[0]
    chars = [["." if v else "#" for v in row] for row in grid.tolist()]
    if cheese is not None:
        r, c = _open(grid, cheese)
        chars[r][c] = "C"
    for cell, mark in (marks or {}).items():
        r, c = _in_maze(cell, n)
        if len(mark) != 1:
            raise ValueError(f"mark for cell {(r, c)} must be one character, got {mark!r}")
        chars[r][c] = mark
    return "\n".join("".join(row) for row in chars)
