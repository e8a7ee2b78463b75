"""The torch absorbing chain agrees with the numpy one, and its gradient with finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mazeinterp.analysis.exact_chain import chain_layout, first_arrival_torch
from mazeinterp.maze.grid import top_right_cell
from mazeinterp.analysis.vfield import VectorField, field_cells, first_arrival_probabilities, outcome_goals


def _random_fields(state, rng):
    """A plain and a mirrored field of random (Dirichlet) move probabilities: no model needed."""
    cells = field_cells(state)
    plain = VectorField(state.with_mouse_reflected(False), cells, rng.dirichlet(np.ones(5), len(cells)))
    mirrored = VectorField(state.with_mouse_reflected(True), cells, rng.dirichlet(np.ones(5), len(cells)))
    return plain, mirrored


@pytest.mark.parametrize("mirror", [True, False])
def test_torch_chain_agrees_with_the_numpy_chain(seeded_states, rng, mirror: bool) -> None:
    checked = 0
    for state in [s for s in seeded_states if s.maze_size <= 11][:4]:
        plain, mirrored = _random_fields(state, rng)
        for goals in (outcome_goals(state), [state.cheese], [top_right_cell(state.maze_size), (0, 0)]):
            if not all(state.open_cells[g] for g in goals):
                continue
            for start_reflected in ((False, True) if mirror else (False,)):
                expected = first_arrival_probabilities(plain, goals, reflected_field=mirrored if mirror else None,
                                                       start_reflected=start_reflected)
                layout = chain_layout(state, plain.cells, goals, mirror=mirror, start_reflected=start_reflected)
                probs = np.concatenate([plain.probs, mirrored.probs]) if mirror else plain.probs
                got = first_arrival_torch(layout, torch.tensor(probs)).numpy()
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
                checked += 1
    assert checked >= 8


def test_gradient_matches_finite_differences(hand_maze, rng) -> None:
    plain, mirrored = _random_fields(hand_maze, rng)
    layout = chain_layout(hand_maze, plain.cells, outcome_goals(hand_maze))
    probs = torch.tensor(np.concatenate([plain.probs, mirrored.probs]), requires_grad=True)
    (grad,) = torch.autograd.grad(first_arrival_torch(layout, probs, max_steps=60)[0], probs)
    assert grad.abs().max() > 1e-3
    eps = 1e-6
    for row, move in [(0, 0), (3, 3), (len(plain.cells) + 2, 1), (len(plain.cells) + 5, 4)]:
        bumped = [probs.detach().clone() for _ in range(2)]
        bumped[0][row, move] += eps
        bumped[1][row, move] -= eps
        up, down = (float(first_arrival_torch(layout, b, max_steps=60)[0]) for b in bumped)
        assert (up - down) / (2 * eps) == pytest.approx(float(grad[row, move]), abs=1e-7)


def test_a_walk_that_cannot_move_never_arrives_and_a_goal_start_has_arrived(hand_maze) -> None:
    cells = field_cells(hand_maze)
    noop = np.tile([0.0, 0.0, 0.0, 0.0, 1.0], (2 * len(cells), 1))
    layout = chain_layout(hand_maze, cells, [hand_maze.cheese])
    assert float(first_arrival_torch(layout, torch.tensor(noop))[0]) == 0.0
    # always right from the start (4, 0): (4, 1), then a wall at (4, 2): never the cheese
    right = np.tile([0.0, 0.0, 0.0, 1.0, 0.0], (2 * len(cells), 1))
    assert float(first_arrival_torch(layout, torch.tensor(right))[0]) == 0.0
    started = chain_layout(hand_maze, cells, [(4, 0), hand_maze.cheese])
    np.testing.assert_array_equal(first_arrival_torch(started, torch.tensor(noop)).numpy(), [1.0, 0.0])


def test_bad_layouts_and_probabilities_are_refused(hand_maze) -> None:
    cells = field_cells(hand_maze)
    with pytest.raises(ValueError, match=r"goal \(0, 2\) is not an open cell"):
        chain_layout(hand_maze, cells, [(0, 2)])
    # field cells: a wall (0, 2), a cell off the 5×5 maze, or a repeated cell
    for bad in ([*cells, (0, 2)], [*cells, (5, 0)], [*cells, cells[0]]):
        with pytest.raises(ValueError, match=r"field cells must be distinct open cells of this 5×5 maze"):
            chain_layout(hand_maze, bad, [hand_maze.cheese])
    layout = chain_layout(hand_maze, cells, [hand_maze.cheese])
    with pytest.raises(ValueError, match=r"probs must have shape \(\d+, 5\)"):
        first_arrival_torch(layout, torch.ones(3, 5))


def test_layout_defaults_start_and_identity(hand_maze) -> None:
    import dataclasses

    cells = field_cells(hand_maze)
    k = len(cells)
    plain = chain_layout(hand_maze, cells, [hand_maze.cheese])
    explicit = chain_layout(hand_maze, cells, [hand_maze.cheese], mirror=True, start=(4, 0), start_reflected=False)
    assert (plain.n_transient, plain.n_goals, plain.start) == (2 * k, 1, cells.index((4, 0)))
    np.testing.assert_array_equal(plain.dest, explicit.dest)
    assert chain_layout(hand_maze, cells, [hand_maze.cheese], start_reflected=True).start == k + cells.index((4, 0))
    one = chain_layout(hand_maze, cells, [hand_maze.cheese], mirror=False, start=(2, 1))
    assert (one.n_transient, one.start, one.dest.shape) == (k, cells.index((2, 1)), (k, 5))
    assert plain != explicit  # compared by identity: their arrays have no single truth value
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.start = 0  # type: ignore[misc]


def test_a_start_on_the_cheese_has_ended_and_no_cheese_adds_no_column(hand_maze) -> None:
    cells = field_cells(hand_maze)
    corner = top_right_cell(hand_maze.maze_size)
    no_cheese = hand_maze.without_cheese()
    # a maze without cheese: the goals are the only absorbing columns, the walk runs from the start
    layout = chain_layout(no_cheese, field_cells(no_cheese), [corner])
    assert layout.fixed is None and layout.dest.max() == layout.n_transient
    # starting on the cheese (not a goal): every goal has probability 0, whatever the moves
    at_cheese = chain_layout(hand_maze, cells, [(2, 2)], start=hand_maze.cheese)
    assert at_cheese.start == -1
    zeros = torch.zeros(2 * len(cells), 5, dtype=torch.float64)
    np.testing.assert_array_equal(first_arrival_torch(at_cheese, zeros).numpy(), [0.0])
    started = chain_layout(hand_maze, cells, [(4, 0), (2, 2)])
    np.testing.assert_array_equal(first_arrival_torch(started, zeros).numpy(), [1.0, 0.0])


def test_rows_are_normalised_and_the_default_cap_is_500_steps(hand_maze, rng) -> None:
    plain, mirrored = _random_fields(hand_maze, rng)
    probs = np.concatenate([plain.probs, mirrored.probs])
    # mostly NOOP: a slow walk, still arriving after 500 steps
    slow = torch.tensor(0.02 * probs + 0.98 * np.eye(5)[4])
    layout = chain_layout(hand_maze, plain.cells, outcome_goals(hand_maze))
    capped = first_arrival_torch(layout, slow)
    torch.testing.assert_close(capped, first_arrival_torch(layout, slow, max_steps=500), rtol=0, atol=0)
    assert float((first_arrival_torch(layout, slow, max_steps=501) - capped).sum()) > 1e-9
    torch.testing.assert_close(first_arrival_torch(layout, 3.0 * slow), capped, rtol=0, atol=1e-12)


def test_dest_rows_worked_out_by_hand(hand_maze) -> None:
    # hand maze (mouse (4, 0), cheese (0, 4)):  ..#.C / .##.# / ..... / .#.#. / ..#..
    cells = field_cells(hand_maze)
    k = len(cells)
    at = cells.index
    goal = (2, 2)
    layout = chain_layout(hand_maze, cells, [goal])
    t = layout.n_transient
    assert t == 2 * k
    # moves in Move order: LEFT, DOWN, UP, RIGHT, NOOP; RIGHT sets the mirrored drawing, LEFT clears it
    # (4, 0): left and down leave the maze and stay put; up to (3, 0); right to (4, 1), drawn mirrored
    np.testing.assert_array_equal(layout.dest[at((4, 0))],
                                  [at((4, 0)), at((4, 0)), at((3, 0)), k + at((4, 1)), at((4, 0))])
    np.testing.assert_array_equal(layout.dest[k + at((4, 0))],
                                  [at((4, 0)), k + at((4, 0)), k + at((3, 0)), k + at((4, 1)), k + at((4, 0))])
    # (2, 1): walls above and below stay put; right is the goal's column t + 0
    np.testing.assert_array_equal(layout.dest[at((2, 1))], [at((2, 0)), at((2, 1)), at((2, 1)), t, at((2, 1))])
    # (0, 3): up leaves the maze; right is the cheese, not a goal: the column after the goals, t + 1
    np.testing.assert_array_equal(layout.dest[at((0, 3))], [at((0, 3)), at((1, 3)), at((0, 3)), t + 1, at((0, 3))])
    # the rows of an absorbing cell are never left: every entry is -1, as documented, in both drawings
    np.testing.assert_array_equal(layout.dest[[at(goal), k + at(goal)]], np.full((2, 5), -1))
    assert (np.delete(layout.dest, [at(goal), k + at(goal)], axis=0) >= 0).all()
