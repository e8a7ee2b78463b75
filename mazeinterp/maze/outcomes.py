"""The rules that classify what the mouse did in an episode (pure numpy).

One place for every rule that turns a maze and the mouse's cells into an
outcome, so that rollouts (:mod:`mazeinterp.rollout`), exact outcome
probabilities (:mod:`mazeinterp.analysis.vfield`), plots and reports all agree:

* **Outcomes** (:data:`OUTCOMES`): an episode ends with the first of
  ``"cheese"`` (the mouse entered the cheese cell), ``"top_right"`` (the mouse
  stands on the top-right cell ``(0, n-1)``, when :func:`top_right_ends_episode`;
  :func:`top_right_counts` for a maze state) and ``"neither"`` (the step cap passed).
  :func:`step_outcomes` decides it after each step of sampled episodes (the
  rollouts, the gym env); :func:`outcome_goals` and :func:`outcome_probabilities_from_arrivals`
  give the same outcomes as first arrivals of the exact chain
  (:mod:`mazeinterp.analysis.vfield`). :data:`OUTCOME_CODES` are the ints that
  stand for the outcomes in arrays and sweep shard files.
* **Events** (:data:`EVENTS`): what an episode may show besides its outcome,
  ``"region_first"`` and ``"trapped"`` below.
* **Region first** (:func:`in_top_right_region`, :func:`region_goals`,
  :func:`first_region_step`): the first step at which the mouse stands on a
  cell of the top-right k×k corner other than the cheese cell, before it
  reaches the cheese. The start position counts as step 0. The top-right cell
  lies in every region (k ≥ 1), so every ``"top_right"`` episode reached the
  region first; an episode that ends on the cheese reached it first only if
  it entered the region on another cell earlier.
* **Trapped** (:func:`find_trap`): an episode that hit the step cap is
  trapped when two 4-adjacent cells hold at least half of the mouse's
  positions over its last :data:`TRAP_WINDOW` steps (the cells after each of
  those steps). The trap is the adjacent pair holding the most positions. A
  mouse that held still on one cell for half the window is trapped there, and
  both cells of its trap are that cell.

Cells are ``(row, col)`` of the inner maze, row 0 at the top (see
:mod:`mazeinterp.maze.grid`).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mazeinterp.maze.grid import TOP_RIGHT_REGION_SIZE, Cell, shortest_path, top_right_cell, top_right_region

if TYPE_CHECKING:
    from mazeinterp.maze.state import MazeState

__all__ = [
    "DEFAULT_REGION_SIZE",
    "EVENTS",
    "EXACT_OUTCOMES",
    "OUTCOMES",
    "OUTCOME_CODES",
    "RUNNING",
    "TRAP_SHARE",
    "TRAP_WINDOW",
    "Trap",
    "find_trap",
    "first_region_step",
    "in_top_right_region",
    "outcome_goals",
    "outcome_probabilities_from_arrivals",
    "region_edge_distance",
    "region_goals",
    "step_outcomes",
    "top_right_counts",
    "top_right_ends_episode",
]

OUTCOMES: tuple[str, ...] = ("cheese", "top_right", "neither")
"""The three episode outcomes, in reporting order."""

EVENTS: tuple[str, ...] = ("region_first", "trapped")
"""What an episode may show besides its outcome: it reached the top-right region before the cheese
(:func:`first_region_step`); it hit the step cap trapped between two cells (:func:`find_trap`)."""

OUTCOME_CODES: dict[str, int] = {name: code for code, name in enumerate(OUTCOMES)}
"""Outcome → the int that stands for it in arrays and sweep shard files: 0 cheese, 1 top_right, 2 neither."""

RUNNING = -1
"""The code :func:`step_outcomes` gives an episode whose outcome is not known yet."""

EXACT_OUTCOMES: tuple[str, ...] = (*OUTCOMES, "region_first")
"""Columns of exact outcome probabilities (:func:`mazeinterp.analysis.vfield.outcome_probabilities`, exact
sweeps): the three outcomes, then P(region first)."""

DEFAULT_REGION_SIZE = TOP_RIGHT_REGION_SIZE
"""Side k of the top-right region whose first arrival is recorded (5: the published training region)."""

TRAP_WINDOW = 100
"""Number of final steps whose positions decide whether a timed-out mouse was trapped."""

TRAP_SHARE = 0.5
"""Share of those positions that two adjacent cells must hold for a trap."""


def top_right_ends_episode(open_cells: np.ndarray, mouse: Cell, cheese: Cell | None) -> bool:
    """Whether standing on the top-right cell ends an episode as ``"top_right"``.

    False when the top-right cell lies on the shortest path from ``mouse`` to
    ``cheese`` (passing through it is progress towards the cheese) or is the
    cheese cell; True otherwise, including mazes without a cheese, a walled
    top-right cell, or a cheese the mouse cannot reach.
    """
    grid = np.asarray(open_cells, dtype=bool)
    top_right = top_right_cell(grid.shape[0])
    if cheese is None:
        return True
    try:  # a walled top-right cell lies on no path
        return top_right not in shortest_path(grid, mouse, cheese)
    except ValueError:  # the cheese cannot be reached from the mouse
        return True


def top_right_counts(state: MazeState) -> bool:
    """Whether reaching the top-right cell ends an episode of this maze as ``"top_right"``.

    False when the top-right cell lies on the shortest path from the mouse to
    the cheese (passing through it is progress towards the cheese), or is the
    cheese cell; True otherwise (:func:`top_right_ends_episode` of the state's
    open cells, mouse and cheese).
    """
    return top_right_ends_episode(state.open_cells, state.mouse, state.cheese)


def step_outcomes(got_cheese: np.ndarray | bool, on_top_right: np.ndarray | bool,
                  out_of_time: np.ndarray | bool) -> np.ndarray:
    """The outcome code (:data:`OUTCOME_CODES`) of each episode after a step, :data:`RUNNING` where it goes on.

    The first that applies of ``"cheese"``, ``"top_right"`` and ``"neither"``: a step
    onto the cheese is ``"cheese"`` even at the step cap.

    Args:
        got_cheese: (m,) bool: the mouse entered the cheese cell on this step.
        on_top_right: (m,) bool: it stands on the top-right cell and that ends the
            episode (:func:`top_right_counts`).
        out_of_time: (m,) bool: the step cap is reached (or the episode ended otherwise).

    Returns:
        int64 (m,) codes (0-d for scalar flags).

    >>> step_outcomes([True, False, False, False], [True, True, False, False], [True, True, True, False]).tolist()
    [0, 1, 2, -1]
    """
    got_cheese, on_top_right, out_of_time = (np.asarray(a, dtype=bool) for a in (got_cheese, on_top_right, out_of_time))
    codes = np.full(np.broadcast_shapes(got_cheese.shape, on_top_right.shape, out_of_time.shape), RUNNING,
                    dtype=np.int64)
    codes[np.broadcast_to(out_of_time, codes.shape)] = OUTCOME_CODES["neither"]
    codes[np.broadcast_to(on_top_right, codes.shape)] = OUTCOME_CODES["top_right"]
    codes[np.broadcast_to(got_cheese, codes.shape)] = OUTCOME_CODES["cheese"]
    return codes


def outcome_goals(state: MazeState) -> list[Cell]:
    """The goals whose first arrival gives a rollout's outcome: the cheese (if any), then the top-right cell.

    The top-right cell is left out when it is a wall or lies on the path from the mouse to the cheese
    (:func:`top_right_ends_episode`), as the rollouts do. Reads ``state.open_cells``, ``mouse`` and ``cheese``.
    """
    grid = np.asarray(state.open_cells, dtype=bool)
    cheese, top_right = state.cheese, top_right_cell(grid.shape[0])
    goals = [] if cheese is None else [cheese]
    if grid[top_right] and top_right_ends_episode(grid, state.mouse, cheese):
        goals.append(top_right)
    return goals


def outcome_probabilities_from_arrivals(arrived: Sequence[float] | np.ndarray, goals: Sequence[Cell],
                                        cheese: Cell | None) -> tuple[float, float, float]:
    """P(cheese), P(top_right), P(neither) from the first-arrival probabilities at :func:`outcome_goals`.

    ``arrived``: (len(goals),) probabilities of reaching each goal first (the exact chain's);
    ``neither`` is what is left (reaching no goal within the cap), never below 0.

    >>> outcome_probabilities_from_arrivals([0.7, 0.2], [(2, 3), (0, 4)], (2, 3))
    (0.7, 0.2, 0.10000000000000003)
    >>> outcome_probabilities_from_arrivals([0.4], [(0, 4)], None)
    (0.0, 0.4, 0.6)
    """
    p_cheese = float(arrived[0]) if cheese is not None else 0.0
    p_top_right = float(arrived[-1]) if len(goals) > (cheese is not None) else 0.0
    return p_cheese, p_top_right, max(0.0, 1.0 - p_cheese - p_top_right)


def _region_size(k: int) -> int:
    k = operator.index(k)
    if k < 1:
        raise ValueError(f"region size must be >= 1, got {k}")
    return k


def in_top_right_region(cells: np.ndarray, n: int | np.ndarray, k: int) -> np.ndarray:
    """Boolean ``(m,)``: which of ``cells`` ``(m, 2)`` lie in the top-right k×k corner of their n×n maze.

    ``n`` is one maze size or one per cell ``(m,)``; a region larger than the
    maze covers the whole maze.
    """
    k = _region_size(k)
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    n = np.asarray(n, dtype=np.int64)
    side = np.minimum(k, n)
    return (cells[:, 0] < side) & (cells[:, 1] >= n - side)


def region_edge_distance(cell: Cell, n: int, k: int = DEFAULT_REGION_SIZE) -> int:
    """How many cells ``cell`` lies from the edge of the top-right k×k region of the n×n maze.

    The edge is the region's bottom row and left column: 0 on them. Inside,
    the rows or columns to the nearer of the two; outside, the rows and
    columns to the region, whichever is more (1 just below or left of it).
    """
    side = min(_region_size(k), n)
    row, col = int(cell[0]), int(cell[1])
    if row < side and col >= n - side:
        return min(side - 1 - row, col - (n - side))
    return max(row - (side - 1), (n - side) - col)


def region_goals(open_cells: np.ndarray, cheese: Cell | None, k: int = DEFAULT_REGION_SIZE) -> list[Cell]:
    """Open cells of the top-right k×k corner other than the cheese cell, row-major.

    Arriving on one of them before the cheese is "region first".
    """
    grid = np.asarray(open_cells, dtype=bool)
    return [cell for cell in top_right_region(grid.shape[0], _region_size(k)) if grid[cell] and cell != cheese]


def first_region_step(trajectory: Sequence[Cell], n: int, cheese: Cell | None,
                      k: int = DEFAULT_REGION_SIZE) -> int | None:
    """Index into ``trajectory`` (start = 0) of the first region arrival before the cheese; None if none.

    ``trajectory``: the mouse's cells, start first, one per step after it.
    """
    cells = np.asarray(trajectory, dtype=np.int64).reshape(-1, 2)
    hits = in_top_right_region(cells, n, k)
    if cheese is not None:
        on_cheese = np.flatnonzero((cells == np.asarray(cheese)).all(axis=1))
        if len(on_cheese):
            hits[on_cheese[0]:] = False
    first = np.flatnonzero(hits)
    return int(first[0]) if len(first) else None


@dataclass(frozen=True)
class Trap:
    """Two adjacent cells that held a timed-out mouse (see :func:`find_trap`)."""

    cells: tuple[Cell, Cell]
    """The two cells, in row-major order (the same cell twice for a mouse that held still)."""
    share: float
    """Fraction of the window's positions on those cells."""

    def label(self) -> str:
        """``"r c;r c"`` (for CSV rows)."""
        return ";".join(f"{r} {c}" for r, c in self.cells)


def find_trap(positions: Sequence[Cell] | np.ndarray, share: float = TRAP_SHARE) -> Trap | None:
    """The trap of a timed-out episode, or None when the mouse was not trapped.

    Args:
        positions: the mouse's cells after each of its last steps, ``(m, 2)``
            (:data:`TRAP_WINDOW` of them in a rollout; fewer when the cap is lower).
        share: the fraction of ``positions`` that two adjacent cells must hold.

    Returns:
        The 4-adjacent pair of cells holding the most positions (ties: the
        row-major first pair) if it holds at least ``share`` of them; a cell
        alone counts as the pair of itself when no adjacent pair holds more.
    """
    cells = [(int(r), int(c)) for r, c in np.asarray(positions, dtype=np.int64).reshape(-1, 2)]
    if not cells:
        return None
    counts = Counter(cells)
    best: tuple[int, tuple[Cell, Cell]] | None = None
    for cell in sorted(counts):
        candidates = [(counts[cell], (cell, cell))]
        for neighbour in ((cell[0] + 1, cell[1]), (cell[0], cell[1] + 1)):
            if neighbour in counts:
                candidates.append((counts[cell] + counts[neighbour], (cell, neighbour)))
        for held, pair in candidates:
            if best is None or held > best[0]:
                best = (held, pair)
    assert best is not None
    fraction = best[0] / len(cells)
    return Trap(best[1], fraction) if fraction >= share else None
