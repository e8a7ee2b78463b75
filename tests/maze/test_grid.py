"""Tests for mazeinterp.maze.grid.

Expected answers for the hand mazes were worked out by hand and are written
literally; they are never recomputed with the code under test.
Cells are (row, col), row 0 = top; the mouse starts bottom-left at (n-1, 0).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mazeinterp.maze import grid as g

# A 5×5 tree. Cheese top-left, off the top-right path; decision square (2, 1).
MAZE_A = """
C.#..
#.#.#
.....
.####
.....
"""

# A 5×5 tree whose cheese path runs through the top-right cell (0, 4).
MAZE_B = """
.....
.###.
.#C..
.####
.....
"""

# A 7×7 tree; cheese (0, 0) outside the top-right 5×5 region (rows 0-4, cols 2-6).
MAZE_C = """
C#.....
.###.##
.....##
.######
.######
.######
.......
"""

# An open 3×3 room: many shortest paths, so tie-breaking shows.
ROOM = """
...
...
...
"""


def maze(text):
    return g.parse_ascii(text)


# ---------------------------------------------------------------- basics


def test_start_and_top_right():
    assert g.start_cell(5) == (4, 0)
    assert g.top_right_cell(5) == (0, 4)
    assert g.start_cell(1) == (0, 0) == g.top_right_cell(1)
    with pytest.raises(ValueError):
        g.start_cell(0)


def test_parse_ascii_and_back():
    grid, cheese = maze(MAZE_A)
    assert cheese == (0, 0)
    assert grid.dtype == bool and grid.shape == (5, 5)
    assert grid[0].tolist() == [True, True, False, True, True]
    assert grid[3].tolist() == [True, False, False, False, False]
    assert g.to_ascii(grid, cheese) == MAZE_A.strip()
    assert g.to_ascii(grid, marks={(4, 0): "S", (0, 2): "x"}).splitlines()[4] == "S...."
    assert g.to_ascii(grid, marks={(0, 2): "x"}).splitlines()[0] == "..x.."
    assert maze(ROOM)[1] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("", r"non-empty square, got row lengths \[\]"), ("..\n...", r"square, got row lengths \[2, 3\]"),
     ("...\n...", r"square, got row lengths \[3, 3\]"), ("C.\nC.", "2 cheese cells"),
     ("ab\n..", r"unknown characters \['a', 'b'\]")],
    ids=["empty", "ragged", "wide", "two-cheese", "bad-char"],
)  # fmt: skip
def test_parse_ascii_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        g.parse_ascii(text)


def test_to_ascii_rejects_a_mark_of_more_than_one_character():
    grid, _ = maze(MAZE_A)
    with pytest.raises(ValueError, match=r"mark for cell \(4, 0\) must be one character, got 'S1'"):
        g.to_ascii(grid, marks={(4, 0): "S1"})
    with pytest.raises(ValueError, match="must be one character, got ''"):
        g.to_ascii(grid, marks={(4, 0): ""})
    with pytest.raises(ValueError, match=r"cell \(5, 0\) is outside the 5×5 maze"):
        g.to_ascii(grid, marks={(5, 0): "x"})


def test_neighbours():
    grid, _ = maze(MAZE_A)
    assert g.neighbours(grid, (2, 1)) == [(1, 1), (2, 0), (2, 2)]  # up, left, right
    assert g.neighbours(grid, (4, 0)) == [(3, 0), (4, 1)]
    assert g.neighbours(grid, (0, 4)) == [(0, 3)]
    room, _ = maze(ROOM)
    assert g.neighbours(room, (1, 1)) == [(0, 1), (2, 1), (1, 0), (1, 2)]


def test_legal_mouse_cells_row_major():
    grid, _ = maze(MAZE_B)
    assert g.legal_mouse_cells(grid) == [
        (0, 0), (0, 1), (0, 2), (0, 3), (0, 4),
        (1, 0), (1, 4),
        (2, 0), (2, 2), (2, 3), (2, 4),
        (3, 0),
        (4, 0), (4, 1), (4, 2), (4, 3), (4, 4),
    ]  # fmt: skip


def test_top_right_region():
    assert g.top_right_region(5, 2) == [(0, 3), (0, 4), (1, 3), (1, 4)]
    assert g.top_right_region(3, 5) == [(r, c) for r in range(3) for c in range(3)]
    assert g.top_right_region(4, 0) == []
    assert g.in_top_right_region((1, 3), 5, 2)
    assert not g.in_top_right_region((2, 4), 5, 2)
    assert not g.in_top_right_region((0, 2), 5, 2)
    assert g.in_top_right_region((2, 0), 3, 5)
    with pytest.raises(ValueError, match="outside"):
        g.in_top_right_region((5, 0), 5, 2)


# ---------------------------------------------------------------- (1) decision square


def test_paths_and_decision_square_maze_a():
    grid, cheese = maze(MAZE_A)
    assert g.path_to_cheese(grid, cheese) == [
        (4, 0), (3, 0), (2, 0), (2, 1), (1, 1), (0, 1), (0, 0),
    ]  # fmt: skip
    assert g.path_to_top_right(grid) == [
        (4, 0), (3, 0), (2, 0), (2, 1), (2, 2), (2, 3), (1, 3), (0, 3), (0, 4),
    ]  # fmt: skip
    assert g.decision_square(grid, cheese) == (2, 1)
    # a cheese down the bottom dead end diverges right at the start
    assert g.decision_square(grid, (4, 3)) == (4, 0)


def test_distance_map_maze_a():
    grid, _ = maze(MAZE_A)
    expected = np.array(
        [
            [6, 5, -1, 7, 8],
            [-1, 4, -1, 6, -1],
            [2, 3, 4, 5, 6],
            [1, -1, -1, -1, -1],
            [0, 1, 2, 3, 4],
        ]
    )
    np.testing.assert_array_equal(g.distance_map(grid, (4, 0)), expected)


# ---------------------------------------------------------------- (2), (3) no decision square


@pytest.mark.parametrize("cheese", [(2, 3), (0, 4), (4, 0), (0, 3)])
def test_cheese_on_top_right_path_has_no_decision_square(cheese):
    grid, _ = maze(MAZE_A)
    assert g.decision_square(grid, cheese) is None


def test_top_right_on_cheese_path_has_no_decision_square():
    grid, cheese = maze(MAZE_B)
    assert cheese == (2, 2)
    assert g.path_to_top_right(grid) == [
        (4, 0), (3, 0), (2, 0), (1, 0), (0, 0), (0, 1), (0, 2), (0, 3), (0, 4),
    ]  # fmt: skip
    assert g.path_to_cheese(grid, cheese) == [
        (4, 0), (3, 0), (2, 0), (1, 0), (0, 0), (0, 1), (0, 2), (0, 3), (0, 4),
        (1, 4), (2, 4), (2, 3), (2, 2),
    ]  # fmt: skip
    assert g.decision_square(grid, cheese) is None
    f = g.maze_features(grid, cheese)
    assert not f.has_decision_square and f.decision_square is None
    assert f.cheese_top_right_path == 4
    assert f.cheese_top_right_euclidean == pytest.approx(2 * math.sqrt(2))
    assert math.isnan(f.cheese_decision_square_path)
    assert math.isnan(f.cheese_decision_square_euclidean)
    assert math.isnan(f.decision_square_top_right_path)
    assert math.isnan(f.decision_square_top_right_euclidean)


def test_research_definition_counts_the_cell_after_the_corner_on_the_cheese_path():
    grid, cheese = maze(MAZE_B)  # the top-right cell (0, 4) lies on the way to the cheese
    assert g.decision_square(grid, cheese, "research") == (1, 4)
    f = g.maze_features(grid, cheese, decision_square_definition="research")
    assert f.has_decision_square and f.decision_square == (1, 4)
    assert f.cheese_decision_square_path == 3.0 and f.decision_square_top_right_path == 1.0
    assert g.maze_features(grid, cheese).decision_square is None  # the default stays mazeinterp's


@pytest.mark.parametrize("cheese", [(2, 3), (0, 4), (4, 0), (0, 3)])
def test_research_definition_agrees_when_the_cheese_is_on_the_top_right_path(cheese):
    grid, _ = maze(MAZE_A)
    assert g.decision_square(grid, cheese, "research") is None


def test_research_definition_agrees_where_the_paths_part():
    grid, cheese = maze(MAZE_A)
    assert g.decision_square(grid, cheese, "research") == g.decision_square(grid, cheese) == (2, 1)
    with pytest.raises(ValueError, match="unknown decision-square definition 'published'"):
        g.decision_square(grid, cheese, "published")
    with pytest.raises(ValueError, match="unknown decision-square definition"):
        g.maze_features(grid, cheese, decision_square_definition="")


def _research_loop(cheese_path, corner_path):
    """The research code's loop, written out independently: walk the cheese path against the corner path."""
    for i, cell in enumerate(cheese_path):
        if i >= len(corner_path):
            return cell
        if cell != corner_path[i]:
            return cheese_path[i - 1]
    return None


def test_research_definition_matches_the_research_loop_on_procgen_mazes(seeded_states):
    differ = 0
    for state in seeded_states:
        grid = state.open_cells
        expected = _research_loop(g.path_to_cheese(grid, state.cheese), g.path_to_top_right(grid))
        assert g.decision_square(grid, state.cheese, "research") == expected
        differ += g.decision_square(grid, state.cheese) != expected
    assert differ, "some of the 64 mazes have the corner on the cheese path"


# ---------------------------------------------------------------- (4) distances and features


def test_distances_maze_a():
    grid, cheese = maze(MAZE_A)
    assert g.path_distance(grid, cheese, (0, 4)) == 8
    assert g.path_distance(grid, (0, 4), cheese) == 8
    assert g.path_distance(grid, cheese, (2, 1)) == 3
    assert g.path_distance(grid, (2, 1), (0, 4)) == 5
    assert g.path_distance(grid, (1, 3), (1, 3)) == 0
    assert g.euclidean_distance(cheese, (0, 4)) == 4.0
    assert g.euclidean_distance(cheese, (2, 1)) == pytest.approx(math.sqrt(5))
    assert g.euclidean_distance((2, 1), (0, 4)) == pytest.approx(math.sqrt(13))
    assert g.euclidean_distance((3, 1), (1, 4)) == pytest.approx(math.sqrt(13))  # neither in row 0
    assert g.euclidean_distance((1, 4), (4, 2)) == pytest.approx(math.sqrt(13))


def test_features_maze_a():
    grid, cheese = maze(MAZE_A)
    f = g.maze_features(grid, cheese)
    assert f.n == 5 and f.cheese == (0, 0)
    assert f.has_decision_square and f.decision_square == (2, 1)
    assert f.cheese_top_right_path == 8
    assert f.cheese_top_right_euclidean == 4.0
    # the 5×5 region is the whole 5×5 maze, cheese included
    assert f.cheese_top_right_region_path == 0
    assert f.cheese_top_right_region_euclidean == 0.0
    assert f.cheese_decision_square_path == 3.0
    assert f.cheese_decision_square_euclidean == pytest.approx(math.sqrt(5))
    assert f.decision_square_top_right_path == 5.0
    assert f.decision_square_top_right_euclidean == pytest.approx(math.sqrt(13))


def test_features_maze_c():
    grid, cheese = maze(MAZE_C)
    assert g.path_to_cheese(grid, cheese) == [(6, 0), (5, 0), (4, 0), (3, 0), (2, 0), (1, 0), (0, 0)]
    assert g.path_to_top_right(grid) == [
        (6, 0), (5, 0), (4, 0), (3, 0), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4),
        (1, 4), (0, 4), (0, 5), (0, 6),
    ]  # fmt: skip
    f = g.maze_features(grid, cheese)
    assert f.as_dict() == {
        "n": 7,
        "cheese": (0, 0),
        "has_decision_square": True,
        "decision_square": (2, 0),
        "cheese_top_right_euclidean": 6.0,
        "cheese_top_right_path": 10,
        # nearest region cell by straight line is (0, 2) (2 away, but 10 moves);
        # nearest by path is (2, 2) (4 moves, sqrt(8) away)
        "cheese_top_right_region_euclidean": 2.0,
        "cheese_top_right_region_path": 4,
        "cheese_decision_square_euclidean": 2.0,
        "cheese_decision_square_path": 2.0,
        "decision_square_top_right_euclidean": pytest.approx(math.sqrt(40)),
        "decision_square_top_right_path": 8.0,
    }
    assert g.path_distance(grid, cheese, (0, 2)) == 10
    small = g.maze_features(grid, cheese, region_size=1)
    assert small.cheese_top_right_region_path == 10
    assert small.cheese_top_right_region_euclidean == 6.0


def test_features_is_frozen():
    grid, cheese = maze(MAZE_A)
    f = g.maze_features(grid, cheese)
    with pytest.raises(AttributeError):
        f.n = 3  # type: ignore[misc]


# ---------------------------------------------------------------- tie-breaking on a grid with cycles


def test_room_tie_breaking_is_up_down_left_right():
    room, _ = maze(ROOM)
    # from (2, 0) to (0, 2): up moves come first, then right
    assert g.shortest_path(room, (2, 0), (0, 2)) == [(2, 0), (1, 0), (0, 0), (0, 1), (0, 2)]
    assert g.shortest_path(room, (0, 2), (2, 0)) == [(0, 2), (1, 2), (2, 2), (2, 1), (2, 0)]
    moves = g.oracle_moves(room, (0, 2))
    expected = np.array(
        [
            [[0, 1], [0, 1], [0, 0]],
            [[-1, 0], [-1, 0], [-1, 0]],
            [[-1, 0], [-1, 0], [-1, 0]],
        ]
    )
    np.testing.assert_array_equal(moves, expected)
    # the cheese path goes right along the bottom, the top-right path goes up
    assert g.decision_square(room, (2, 2)) == (2, 0)


# ---------------------------------------------------------------- (5) bad inputs


def test_wall_and_outside_cells_raise():
    grid, _ = maze(MAZE_A)
    with pytest.raises(ValueError, match=r"cell \(0, 2\) is a wall"):
        g.distance_map(grid, (0, 2))
    with pytest.raises(ValueError, match=r"cell \(9, 0\) is outside the 5×5 maze"):
        g.shortest_path(grid, (9, 0), (0, 0))
    with pytest.raises(ValueError, match=r"cell \(0, -1\) is outside the 5×5 maze"):
        g.neighbours(grid, (0, -1))
    with pytest.raises(ValueError, match="wall"):
        g.path_to_cheese(grid, (3, 3))
    with pytest.raises(ValueError, match="wall"):
        g.maze_features(grid, (1, 0))
    with pytest.raises(ValueError, match="wall"):
        g.next_move_towards(grid, (0, 0), (1, 4))
    with pytest.raises(ValueError, match="outside"):
        g.oracle_moves(grid, (5, 5))
    with pytest.raises(ValueError, match="wall"):
        g.to_ascii(grid, cheese=(0, 2))
    with pytest.raises(ValueError, match="not a"):
        g.distance_map(grid, (1.5, 0))


@pytest.mark.parametrize(
    "bad",
    [np.ones((3, 4), bool), np.ones(5, bool), np.ones((2, 2, 2), bool), np.ones((0, 0), bool),
     np.full((3, 3), 0.5)],
    ids=["non-square", "1-D", "3-D", "empty", "float"],
)  # fmt: skip
def test_bad_grids_raise(bad):
    message = "must be boolean" if bad.dtype.kind == "f" else "non-empty square 2-D array"
    with pytest.raises(ValueError, match=message):
        g.distance_map(bad, (0, 0))
    with pytest.raises(ValueError, match=message):
        g.legal_mouse_cells(bad)


def test_integer_grids_must_hold_only_zeros_and_ones():
    ones = np.array([[1, 1], [0, 1]], dtype=np.int64)
    assert g.legal_mouse_cells(ones) == [(0, 0), (0, 1), (1, 1)]
    assert g.legal_mouse_cells(ones.astype(np.uint8)) == [(0, 0), (0, 1), (1, 1)]
    with pytest.raises(ValueError, match=r"boolean \(or 0/1 integers\), got dtype int64"):
        g.legal_mouse_cells(np.array([[1, 2], [0, 1]]))
    with pytest.raises(ValueError, match="got dtype float64"):
        g.legal_mouse_cells(np.array([[1.0, 1.0], [0.0, 1.0]]))  # 0/1, but floats


def test_integer_grid_accepted():
    grid, cheese = maze(MAZE_A)
    assert g.decision_square(grid.astype(np.int8), cheese) == (2, 1)


def test_unreachable_goal_raises():
    grid, _ = maze(
        """
        ...
        ###
        ..C
        """
    )
    dist = g.distance_map(grid, (2, 0))
    np.testing.assert_array_equal(dist, [[-1, -1, -1], [-1, -1, -1], [0, 1, 2]])
    with pytest.raises(ValueError, match="not reachable"):
        g.shortest_path(grid, (2, 0), (0, 0))
    with pytest.raises(ValueError, match="not reachable"):
        g.path_distance(grid, (0, 1), (2, 2))
    with pytest.raises(ValueError, match="not reachable"):
        g.path_to_top_right(grid)  # top-right (0, 2) is open but cut off
    with pytest.raises(ValueError, match="not reachable"):
        g.maze_features(grid, (2, 2))
    walled = grid.copy()
    walled[0, 2] = False
    with pytest.raises(ValueError, match=r"cell \(0, 2\) is a wall"):
        g.path_to_top_right(walled)
    with pytest.raises(ValueError, match="not reachable"):
        g.next_move_towards(grid, (0, 0), (2, 2))
    # unreachable cells get no move
    np.testing.assert_array_equal(g.oracle_moves(grid, (2, 2))[0], [[0, 0], [0, 0], [0, 0]])


# ---------------------------------------------------------------- (6) oracle moves


def _check_oracle(grid, goal):
    moves = g.oracle_moves(grid, goal)
    dist = g.distance_map(grid, goal)
    n = grid.shape[0]
    assert moves.shape == (n, n, 2)
    assert not moves[~grid].any()
    assert moves[goal].tolist() == [0, 0]
    for cell in g.legal_mouse_cells(grid):
        if dist[cell] < 0:
            assert moves[cell].tolist() == [0, 0]
            continue
        assert tuple(moves[cell]) == g.next_move_towards(grid, cell, goal)
        here, steps = cell, 0
        while here != goal:
            here = (here[0] + int(moves[here][0]), here[1] + int(moves[here][1]))
            assert grid[here]
            steps += 1
            assert steps <= dist[cell]
        assert steps == dist[cell]


def test_oracle_moves_maze_a():
    grid, cheese = maze(MAZE_A)
    assert g.next_move_towards(grid, (4, 0), cheese) == (-1, 0)
    assert g.next_move_towards(grid, (2, 1), cheese) == (-1, 0)
    assert g.next_move_towards(grid, (2, 3), cheese) == (0, -1)
    assert g.next_move_towards(grid, (4, 4), cheese) == (0, -1)
    assert g.next_move_towards(grid, cheese, cheese) == (0, 0)
    moves = g.oracle_moves(grid, cheese)
    assert moves[1, 3].tolist() == [1, 0]
    assert moves[0, 1].tolist() == [0, -1]
    _check_oracle(grid, cheese)
    _check_oracle(grid, (0, 4))


def test_oracle_moves_room():
    room, _ = maze(ROOM)
    for goal in g.legal_mouse_cells(room):
        _check_oracle(room, goal)


# ---------------------------------------------------------------- (7) properties on random mazes

ODD_SIZES = st.sampled_from([3, 5, 7, 9, 11, 13, 15])


def tree_maze(size, seed):
    """Randomised-DFS tree on an odd grid: rooms at even (row, col), walls between."""
    rng = np.random.default_rng(seed)
    grid = np.zeros((size, size), bool)
    stack = [(size - 1, 0)]
    grid[stack[0]] = True
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in ((-2, 0), (2, 0), (0, -2), (0, 2))
            if 0 <= r + dr < size and 0 <= c + dc < size and not grid[r + dr, c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[rng.integers(len(options))]
        grid[(r + nr) // 2, (c + nc) // 2] = grid[nr, nc] = True
        stack.append((nr, nc))
    return grid


def assert_valid_path(grid, path, start, goal):
    assert path[0] == start and path[-1] == goal
    assert all(grid[cell] for cell in path)
    for a, b in zip(path, path[1:]):
        assert abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


@settings(max_examples=60, deadline=None)
@given(size=ODD_SIZES, seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 10**6))
def test_random_tree_mazes(size, seed, pick):
    grid = tree_maze(size, seed)
    cells = g.legal_mouse_cells(grid)
    assert len(cells) == (size // 2 + 1) ** 2 * 2 - 1  # a spanning tree of the rooms
    cheese = cells[pick % len(cells)]
    start, top_right = g.start_cell(size), g.top_right_cell(size)

    from_start = g.distance_map(grid, start)
    assert (from_start[grid] >= 0).all()  # connected
    cheese_path = g.path_to_cheese(grid, cheese)
    tr_path = g.path_to_top_right(grid)
    assert len(cheese_path) - 1 == from_start[cheese] == g.path_distance(grid, start, cheese)
    assert len(tr_path) - 1 == from_start[top_right]
    assert_valid_path(grid, cheese_path, start, cheese)
    assert_valid_path(grid, tr_path, start, top_right)

    ds = g.decision_square(grid, cheese)
    f = g.maze_features(grid, cheese)
    assert f.decision_square == ds and f.has_decision_square == (ds is not None)
    if ds is None:
        assert cheese in tr_path or top_right in cheese_path
        assert math.isnan(f.cheese_decision_square_path)
    else:
        assert ds in cheese_path and ds in tr_path
        assert cheese not in tr_path and top_right not in cheese_path
        # on a tree the shared cells are exactly the prefix up to the decision square
        i = cheese_path.index(ds)
        assert set(cheese_path) & set(tr_path) == set(cheese_path[: i + 1])
        assert f.cheese_decision_square_path + f.decision_square_top_right_path == f.cheese_top_right_path
    assert f.cheese_top_right_path == g.path_distance(grid, cheese, top_right)
    assert f.cheese_top_right_region_path <= f.cheese_top_right_path

    _check_oracle(grid, cheese)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 9), seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 10**6))
def test_random_grids_with_cycles(size, seed, pick):
    rng = np.random.default_rng(seed)
    grid = rng.random((size, size)) < 0.7
    cells = g.legal_mouse_cells(grid)
    if not cells:
        return
    a, b = cells[pick % len(cells)], cells[(pick // 7) % len(cells)]
    dist = g.distance_map(grid, a)
    if dist[b] < 0:
        with pytest.raises(ValueError, match="not reachable"):
            g.shortest_path(grid, a, b)
    else:
        path = g.shortest_path(grid, a, b)
        assert len(path) - 1 == dist[b] == g.path_distance(grid, b, a)
        assert_valid_path(grid, path, a, b)
        step = g.next_move_towards(grid, a, b)
        assert step == ((0, 0) if a == b else (path[1][0] - a[0], path[1][1] - a[1]))
    _check_oracle(grid, b)


def test_sizes_below_their_minimum_are_refused_with_the_value():
    for n in (0, -3):
        with pytest.raises(ValueError, match=rf"maze size must be >= 1, got {n}"):
            g.start_cell(n)
        with pytest.raises(ValueError, match=rf"maze size must be >= 1, got {n}"):
            g.top_right_cell(n)
    with pytest.raises(ValueError, match=r"region size must be >= 0, got -1"):
        g.top_right_region(5, -1)
    with pytest.raises(ValueError, match=r"region size must be >= 0, got -1"):
        g.in_top_right_region((0, 4), 5, -1)
    assert not g.in_top_right_region((0, 4), 5, 0)  # an empty region holds no cell
    assert g.in_top_right_region((0, 4), 5, 1) and not g.in_top_right_region((0, 3), 5, 1)
