"""The maze-level outcome rules: the top-right rule, the region rule and the trap rule, on hand-made data."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from mazeinterp.maze import grid
from mazeinterp.maze.outcomes import (
    EXACT_OUTCOMES,
    OUTCOME_CODES,
    OUTCOMES,
    RUNNING,
    TRAP_SHARE,
    TRAP_WINDOW,
    Trap,
    find_trap,
    first_region_step,
    in_top_right_region,
    outcome_goals,
    outcome_probabilities_from_arrivals,
    region_edge_distance,
    region_goals,
    step_outcomes,
    top_right_ends_episode,
)

# the top-right cell (0, 4) lies on the way to the cheese (2, 3)
CORNER_ON_CHEESE_PATH = """
.....
.###.
.##C.
.####
.....
"""


def test_in_top_right_region_matches_the_cell_by_cell_rule() -> None:
    cells = np.array([(r, c) for r in range(7) for c in range(7)])
    for k in (1, 2, 5, 7, 9):
        got = in_top_right_region(cells, 7, k)
        expected = [grid.in_top_right_region((int(r), int(c)), 7, k) or (k > 7) for r, c in cells]
        assert got.tolist() == expected
    # one maze size per cell
    assert in_top_right_region(np.array([(0, 2), (0, 2)]), np.array([3, 9]), 2).tolist() == [True, False]
    with pytest.raises(ValueError, match="region size"):
        in_top_right_region(cells, 7, 0)


def test_region_edge_distance_counts_cells_to_the_edge_from_either_side() -> None:
    # 9×9 maze, 5×5 region: rows 0-4, columns 4-8; its edge is row 4 and column 4
    assert [region_edge_distance((r, 4), 9) for r in range(9)] == [0, 0, 0, 0, 0, 1, 2, 3, 4]
    assert [region_edge_distance((0, c), 9) for c in range(9)] == [4, 3, 2, 1, 0, 1, 2, 3, 4]
    assert region_edge_distance((5, 3), 9) == 1  # diagonally next to the region's corner
    assert region_edge_distance((2, 6), 9) == 2 and region_edge_distance((8, 0), 9) == 4
    assert region_edge_distance((0, 2), 3) == 2  # a region as large as the maze: its edge is the maze's
    # inside, limited by the rows: (3, 7) is 1 row above the bottom edge and 3 columns right of the left one
    assert region_edge_distance((3, 7), 9) == 1 and region_edge_distance((1, 5), 9) == 1
    assert region_edge_distance((1, 7), 9) == 3
    # outside, below and to the left: whichever is more, rows (7, 2) or columns (5, 0)
    assert region_edge_distance((7, 2), 9) == 3 and region_edge_distance((5, 0), 9) == 4


def test_region_goals_leave_out_walls_and_the_cheese() -> None:
    open_cells, cheese = grid.parse_ascii(CORNER_ON_CHEESE_PATH)
    assert region_goals(open_cells, cheese, 2) == [(0, 3), (0, 4), (1, 4)]  # (1, 3) is a wall
    assert region_goals(open_cells, (0, 3), 2) == [(0, 4), (1, 4)]


def test_first_region_step_counts_the_start_and_stops_at_the_cheese() -> None:
    walk = [(4, 0), (3, 0), (2, 0), (1, 0), (0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]
    assert first_region_step(walk, 5, cheese=(2, 3), k=2) == 7
    assert first_region_step(walk, 5, cheese=(0, 2), k=2) is None  # the cheese came first
    assert first_region_step(walk, 5, cheese=None, k=5) == 0  # a 5×5 region covers the whole 5×5 maze
    assert first_region_step(walk[:4], 5, cheese=None, k=2) is None


def test_top_right_ends_episode_unless_it_is_on_the_way_to_the_cheese() -> None:
    open_cells, cheese = grid.parse_ascii(CORNER_ON_CHEESE_PATH)
    assert not top_right_ends_episode(open_cells, (4, 0), cheese)
    assert top_right_ends_episode(open_cells, (4, 0), (2, 0))  # cheese on the way up, corner elsewhere
    assert not top_right_ends_episode(open_cells, (4, 0), (0, 4))  # the corner is the cheese
    assert top_right_ends_episode(open_cells, (4, 0), None)


def test_top_right_ends_episode_when_the_cheese_cannot_be_reached() -> None:
    open_cells, cheese = grid.parse_ascii("""
        ...
        ###
        C#.
    """)
    assert top_right_ends_episode(open_cells, (2, 2), cheese)  # the mouse is walled in at (2, 2)
    assert top_right_ends_episode(open_cells, (0, 0), cheese)  # the cheese is walled off from the corner row
    walled = open_cells.copy()
    walled[0, 2] = False
    assert top_right_ends_episode(walled, (0, 0), (0, 1))  # a walled top-right cell


def test_shuttling_between_two_cells_is_a_trap() -> None:
    shuttle = [(2, 3), (2, 4)] * 30 + [(0, 0), (0, 1), (0, 2), (1, 2)] * 10  # 60 of 100 on the pair
    trap = find_trap(shuttle)
    assert trap == Trap(((2, 3), (2, 4)), 0.6)
    assert trap.label() == "2 3;2 4"
    assert find_trap(shuttle, share=0.61) is None
    vertical = [(3, 1), (2, 1)] * 25 + [(0, c) for c in range(5)] * 10
    assert find_trap(vertical) == Trap(((2, 1), (3, 1)), 0.5)  # exactly half is enough, cells row-major


def test_the_trap_rule_is_half_of_the_last_100_positions_and_a_trap_is_a_value() -> None:
    assert (TRAP_WINDOW, TRAP_SHARE) == (100, 0.5)  # the rule as the module and Episode.trap document it
    trap = find_trap([(1, 1)] * 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trap.share = 0.0  # type: ignore[misc]


def test_a_tie_between_traps_goes_to_the_row_major_first_pair() -> None:
    late_first = [(3, 2), (3, 3)] * 20 + [(1, 0), (1, 1)] * 20 + [(0, 4)] * 20  # 40% each, (1, 0) sorts first
    assert find_trap(late_first, share=0.4) == Trap(((1, 0), (1, 1)), 0.4)
    # a cell alone ties with nothing: a pair that includes it holds more
    assert find_trap([(2, 2)] * 6 + [(2, 3)] * 2 + [(0, 0)] * 2) == Trap(((2, 2), (2, 3)), 0.8)


def test_wandering_is_no_trap_and_holding_still_is() -> None:
    corridor = [(0, c) for c in range(10)] + [(0, c) for c in range(9, -1, -1)]  # to and fro along 10 cells
    assert find_trap(corridor * 5) is None  # the best pair holds 20%
    assert find_trap([(1, 1)] * 100) == Trap(((1, 1), (1, 1)), 1.0)
    # two cells that are not adjacent are no trap, however often they are visited
    assert find_trap([(0, 0)] * 40 + [(0, 2)] * 40 + [(2, 2)] * 20) is None
    assert find_trap([]) is None


def test_the_outcome_codes_are_the_outcomes_in_order_and_every_user_takes_them_from_here() -> None:
    from mazeinterp.analysis import vfield
    from mazeinterp.sweep import exact, files, output, runner, shard

    assert OUTCOME_CODES == {"cheese": 0, "top_right": 1, "neither": 2} and RUNNING == -1
    assert EXACT_OUTCOMES == ("cheese", "top_right", "neither", "region_first")
    for module in (shard, files, output, runner):
        assert module.OUTCOME_CODES is OUTCOME_CODES
    assert vfield.EXACT_OUTCOMES is exact.EXACT_COLUMNS is EXACT_OUTCOMES
    assert vfield.outcome_goals is outcome_goals


def test_step_outcomes_take_the_first_of_cheese_top_right_and_neither() -> None:
    # every combination of (entered the cheese, on a counting top-right cell, out of time), by hand
    flags = [(c, t, o) for c in (False, True) for t in (False, True) for o in (False, True)]
    expected = [-1, 2, 1, 1, 0, 0, 0, 0]
    got = step_outcomes(*(np.array(column) for column in zip(*flags)))
    assert got.dtype == np.int64 and got.tolist() == expected
    assert [OUTCOMES[code] for code in got if code != RUNNING] == ["neither", "top_right", "top_right"] + ["cheese"] * 4
    for (c, t, o), code in zip(flags, expected):
        assert int(step_outcomes(c, t, o)) == code  # scalar flags, as the gym env steps
    assert step_outcomes(np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, bool)).shape == (0,)


def test_outcome_goals_are_the_cheese_then_a_counting_top_right_cell() -> None:
    open_cells, cheese = grid.parse_ascii(CORNER_ON_CHEESE_PATH)

    def state(mouse, cheese, cells=open_cells):
        return SimpleNamespace(open_cells=cells, mouse=mouse, cheese=cheese)

    assert outcome_goals(state((4, 0), cheese)) == [(2, 3)]  # the corner is on the way to the cheese
    assert outcome_goals(state((4, 0), (2, 0))) == [(2, 0), (0, 4)]
    assert outcome_goals(state((4, 0), None)) == [(0, 4)]
    assert outcome_goals(state((4, 0), (0, 4))) == [(0, 4)]  # the corner is the cheese: once, as the cheese
    walled = open_cells.copy()
    walled[0, 4] = False
    assert outcome_goals(state((4, 0), (2, 0), walled)) == [(2, 0)]
    assert outcome_goals(state((4, 0), None, walled)) == []


def test_outcome_probabilities_from_first_arrivals() -> None:
    assert outcome_probabilities_from_arrivals([0.5, 0.25], [(2, 0), (0, 4)], (2, 0)) == (0.5, 0.25, 0.25)
    assert outcome_probabilities_from_arrivals([0.5], [(2, 3)], (2, 3)) == (0.5, 0.0, 0.5)
    assert outcome_probabilities_from_arrivals([0.75], [(0, 4)], None) == (0.0, 0.75, 0.25)
    assert outcome_probabilities_from_arrivals([], [], None) == (0.0, 0.0, 1.0)
    # rounding may take the two arrivals a hair over 1: neither stays at 0
    assert outcome_probabilities_from_arrivals([0.75, 0.25 + 1e-12], [(2, 0), (0, 4)], (2, 0))[2] == 0.0
