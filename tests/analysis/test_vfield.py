"""Tests of mazeinterp.analysis.vfield: vector fields on planted models, differences, the decision-square metric."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from mazeinterp.core.interventions import AddVector, Clamp
from mazeinterp.maze.grid import decision_square, parse_ascii, path_to_cheese
from mazeinterp.core.model import MOVE_DELTAS, MOVE_TO_ACTION, ImpalaPolicy, Move
from mazeinterp.rollout import OUTCOMES
from mazeinterp.analysis.vfield import (
    VectorField,
    cheese_ward_move,
    decision_square_cheese_prob,
    field_difference,
    first_arrival_probabilities,
    mirror_fields,
    move_probs_for_states,
    outcome_probabilities,
    EXACT_OUTCOMES,
    vector_field,
    vector_fields,
)



def biased_model(move: Move, strength: float = 30.0) -> ImpalaPolicy:
    """A model whose policy head ignores the input and puts (almost) all mass on ``move``."""
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=1).eval()
    with torch.no_grad():
        model.fc_policy.weight.zero_()
        model.fc_policy.bias.zero_()
        model.fc_policy.bias[int(MOVE_TO_ACTION[move])] = strength
    return model


@pytest.fixture(scope="module")
def up_model() -> ImpalaPolicy:
    return biased_model(Move.UP)


@pytest.fixture(scope="module")
def state(seeded_states):
    return next(s for s in seeded_states if 7 <= s.maze_size <= 9)


def test_up_model_field_points_up(up_model, state):
    vf = vector_field(up_model, state)
    n = state.maze_size
    expected_cells = {(r, c) for r in range(n) for c in range(n) if state.open_cells[r, c]} - {state.cheese}
    assert set(vf.cells) == expected_cells and len(vf) == len(expected_cells)
    assert vf.probs.shape == (len(vf), 5)
    np.testing.assert_allclose(vf.probs.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(vf.arrows, np.tile([-1.0, 0.0], (len(vf), 1)), atol=1e-6)
    np.testing.assert_allclose(vf.xy_arrows(), np.tile([0.0, 1.0], (len(vf), 1)), atol=1e-6)
    assert (vf.most_likely_moves() == Move.UP).all()
    np.testing.assert_allclose(vf.prob_at((n - 1, 0)), [0, 0, 1, 0, 0], atol=1e-6)
    with pytest.raises(KeyError, match="not in this vector field"):
        vf.prob_at(state.cheese)
    grid = vf.grid()
    assert np.isnan(grid[state.cheese]).all() and grid.shape == (n, n, 5)


def test_intervention_steers_field_and_difference(up_model, state):
    """Clamping the logits to favour 'right' turns every arrow right; the difference is right minus up."""
    right_logits = torch.zeros(15)
    right_logits[int(MOVE_TO_ACTION[Move.RIGHT])] = 30.0
    steer = Clamp("fc_policy_out", right_logits)
    base = vector_field(up_model, state)
    steered = vector_field(up_model, state, [steer])
    np.testing.assert_allclose(steered.arrows, np.tile([0.0, 1.0], (len(steered), 1)), atol=1e-6)
    diff = field_difference(base, steered)
    np.testing.assert_allclose(diff.arrows, np.tile([1.0, 1.0], (len(diff), 1)), atol=1e-6)
    np.testing.assert_allclose(diff.probs[:, Move.UP], -1.0, atol=1e-6)


def test_mixed_policy_expected_displacement(state):
    """Equal logits on left and down: arrows are (0.5, -0.5) = ½(1, 0) + ½(0, -1)."""
    model = biased_model(Move.LEFT)
    with torch.no_grad():
        model.fc_policy.bias[int(MOVE_TO_ACTION[Move.DOWN])] = 30.0
    vf = vector_field(model, state)
    np.testing.assert_allclose(vf.arrows, np.tile([0.5, -0.5], (len(vf), 1)), atol=1e-6)
    np.testing.assert_allclose(vf.arrows, vf.probs @ MOVE_DELTAS, atol=1e-12)


def test_vector_fields_batch_matches_single(seeded_states):
    torch.manual_seed(1)
    model = ImpalaPolicy(scale=1).eval()
    states = [s for s in seeded_states if s.maze_size <= 9][:3]
    fields = vector_fields(model, states, batch_size=50)
    for st, vf in zip(states, fields):
        single = vector_field(model, st)
        assert single.cells == vf.cells
        np.testing.assert_allclose(single.probs, vf.probs, atol=1e-6)


def test_field_difference_needs_same_maze(up_model, seeded_states):
    small = [next(s for s in seeded_states if s.maze_size == n) for n in (3, 5)]
    a, b = vector_fields(up_model, small)
    with pytest.raises(ValueError, match="same maze"):
        field_difference(a, b)
    with pytest.raises(ValueError, match="shape"):
        VectorField(a.state, a.cells, a.probs[:-1])


def test_cheese_ward_move_on_hand_made_maze(seeded_states):
    """A 5×5 maze whose cheese branch leaves the top-right path at (2, 1), going left to (2, 0)."""
    picture = """
    .....
    #.###
    ..###
    #.###
    .....
    """
    open_cells, _ = parse_ascii(picture)
    # build a state with exactly these walls from a seeded 5×5 maze
    base = next(s for s in seeded_states if s.maze_size == 5).without_cheese()
    state = base
    for cell in map(tuple, np.argwhere(~open_cells)):
        if base.open_cells[cell]:
            state = state.with_wall(cell)
    for cell in map(tuple, np.argwhere(open_cells)):
        if not state.open_cells[cell]:
            state = state.with_open(cell)
    state = state.with_cheese((2, 0))
    assert decision_square(state.open_cells, (2, 0)) == (2, 1)
    assert cheese_ward_move(state) == Move.LEFT
    assert cheese_ward_move(state.without_cheese()) is None
    on_path = state.with_cheese((0, 4))  # the top-right cell itself: no decision square
    assert cheese_ward_move(on_path) is None


def test_cheese_ward_move_follows_cheese_path(seeded_states):
    for state in seeded_states:
        move = cheese_ward_move(state)
        ds = decision_square(state.open_cells, state.cheese)
        assert (move is None) == (ds is None)
        if move is not None:
            path = path_to_cheese(state.open_cells, state.cheese)
            nxt = path[path.index(ds) + 1]
            assert tuple(MOVE_DELTAS[move]) == (nxt[0] - ds[0], nxt[1] - ds[1])


def test_decision_square_cheese_prob(up_model, seeded_states):
    states = seeded_states[:16]
    p = decision_square_cheese_prob(up_model, states)
    assert p.shape == (16,)
    for state, value in zip(states, p):
        move = cheese_ward_move(state)
        if move is None:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(1.0 if move == Move.UP else 0.0, abs=1e-6)
    # clamping every logit to 0 makes the 15 actions equally likely: left/right 3/15 each, up/down 1/15
    uniform = Clamp("fc_policy_out", 0.0)
    q = decision_square_cheese_prob(up_model, states, [uniform])
    have = ~np.isnan(p)
    expected = np.array([3 / 15 if cheese_ward_move(s) in (Move.LEFT, Move.RIGHT) else 1 / 15
                         for s, h in zip(states, have) if h])
    np.testing.assert_allclose(q[have], expected, atol=1e-6)
    assert np.isnan(q[~have]).all()


def test_move_probs_for_states_matches_vector_field(up_model, state):
    cells = [(state.maze_size - 1, 0)]
    probs = move_probs_for_states(up_model, [state.with_mouse(cells[0])],
                                  [AddVector("fc_policy_out", torch.zeros(15), 1.0)])
    np.testing.assert_allclose(probs[0], vector_field(up_model, state).prob_at(cells[0]), atol=1e-6)


def test_vector_fields_validate_each_edit_once(up_model, seeded_states, validations):
    edit = AddVector("fc_policy_out", torch.zeros(15), 1.0)
    vector_fields(up_model, seeded_states[:2], [edit], batch_size=7)
    assert validations == [edit]


# --------------------------------------------------------------------------- exact outcome probabilities


def _open_run_above_start(state) -> int:
    """Open cells straight above the start cell before the first wall."""
    n = state.maze_size
    d = 0
    while d + 1 < n and state.open_cells[n - 2 - d, 0] and (n - 2 - d, 0) != state.cheese:
        d += 1
    return d


def test_first_arrival_deterministic_walk(up_model, seeded_states):
    """Always UP: the mouse climbs the open run above the start, then pushes against the wall forever."""
    state = next(s for s in seeded_states if s.maze_size >= 7 and _open_run_above_start(s) >= 2)
    vf = vector_field(up_model, state)
    n, d = state.maze_size, _open_run_above_start(state)
    top_of_run, beyond = (n - 1 - d, 0), (n - 1 - d, 1)
    goals = [(n - 2, 0), top_of_run]
    np.testing.assert_allclose(first_arrival_probabilities(vf, goals[1:], max_steps=d), [1.0], atol=1e-6)
    np.testing.assert_allclose(first_arrival_probabilities(vf, goals[1:], max_steps=d - 1), [0.0], atol=1e-6)
    # the first goal on the way wins; the cell to the right is never reached
    np.testing.assert_allclose(first_arrival_probabilities(vf, goals, max_steps=50), [1.0, 0.0], atol=1e-6)
    if state.open_cells[beyond] and beyond != state.cheese:
        np.testing.assert_allclose(first_arrival_probabilities(vf, [beyond]), [0.0], atol=1e-6)


def test_first_arrival_lazy_walk_matches_binomial(seeded_states):
    """UP with probability p, else NOOP: reaching d cells up within T steps is P(Binomial(T, p) >= d)."""
    from math import comb

    state = next(s for s in seeded_states if _open_run_above_start(s) >= 3)
    p, T, d = 0.3, 12, 3
    cells = tuple((int(r), int(c)) for r, c in np.argwhere(state.open_cells) if (r, c) != state.cheese)
    probs = np.tile([0.0, 0.0, p, 0.0, 1 - p], (len(cells), 1))
    vf = VectorField(state, cells, probs)
    n = state.maze_size
    expected = sum(comb(T, k) * p**k * (1 - p) ** (T - k) for k in range(d, T + 1))
    got = first_arrival_probabilities(vf, [(n - 1 - d, 0)], max_steps=T)
    np.testing.assert_allclose(got, [expected], rtol=1e-10)


def test_outcome_probabilities_match_rollout_frequencies(seeded_states):
    """The exact chain agrees with sampled rollouts of the same policy in procgen (independent computation)."""
    from mazeinterp.maze.grid import top_right_cell
    from mazeinterp.rollout import RolloutConfig, run_rollouts

    torch.manual_seed(3)
    model = ImpalaPolicy(scale=1).eval()
    with torch.no_grad():  # lean up and away from NOOP, so that all three outcomes happen
        model.fc_policy.bias[int(MOVE_TO_ACTION[Move.UP])] += 2.0
        model.fc_policy.bias[int(MOVE_TO_ACTION[Move.NOOP])] -= 1.0
    state = seeded_states[3]  # level seed 3: a 5x5 maze, cheese off the top-right cell
    assert state.maze_size == 5 and state.cheese != top_right_cell(5)
    exact = outcome_probabilities(model, [state], max_steps=30, region_size=4)[0]
    plain, mirrored = mirror_fields(model, state)
    assert (plain.state.mouse_reflected, mirrored.state.mouse_reflected) == (False, True)
    np.testing.assert_allclose(mirrored.probs, vector_field(model, state.with_mouse_reflected(True)).probs)
    np.testing.assert_allclose(exact[:2], first_arrival_probabilities(plain, [state.cheese, top_right_cell(5)],
                                                                      max_steps=30, reflected_field=mirrored))
    n = 300
    result = run_rollouts(model, [state] * n, config=RolloutConfig(seed=0, max_steps=30, region_size=4))
    observed = np.array([np.mean([e.shows(o) for e in result.episodes]) for o in EXACT_OUTCOMES])
    se = np.sqrt(exact * (1 - exact) / n)
    assert 0.2 < exact[0] < 0.8 and 0.2 < exact[2] < 0.8 and exact[1] > 0.02  # a test with power
    assert exact[1] + 0.3 < exact[3] < 0.9  # the 4×4 region is often entered without reaching the corner
    assert (np.abs(observed - exact) < 4 * se).all(), (observed, exact)


def _constant_field(state, move: Move) -> VectorField:
    cells = tuple((int(r), int(c)) for r, c in np.argwhere(state.open_cells) if (r, c) != state.cheese)
    return VectorField(state, cells, np.tile(np.eye(len(Move))[move], (len(cells), 1)))


def test_the_chain_follows_the_mirrored_drawing(big_state):
    """Plain: always RIGHT; mirrored: always UP. From the start cell the mouse steps right once, is drawn
    mirrored from then on, and climbs column 1; a chain that ignores the mirroring walks right forever."""
    open_maze = big_state.with_layout(np.ones((big_state.maze_size,) * 2, dtype=bool), cheese=(0, 0))
    n = open_maze.maze_size
    plain = _constant_field(open_maze, Move.RIGHT)
    mirrored = _constant_field(open_maze.with_mouse_reflected(True), Move.UP)
    top_of_column_1 = [(0, 1)]
    exact = functools.partial(first_arrival_probabilities, plain, top_of_column_1, reflected_field=mirrored)
    assert exact(max_steps=n).tolist() == [1.0] and exact(max_steps=n - 1).tolist() == [0.0]
    assert first_arrival_probabilities(plain, top_of_column_1).tolist() == [0.0]
    # plain: UP; mirrored: LEFT. Starting mirrored, one LEFT clears the flag and the mouse climbs column 1;
    # starting plain, it climbs column 2
    up_plain = _constant_field(open_maze, Move.UP)
    left_mirrored = _constant_field(open_maze.with_mouse_reflected(True), Move.LEFT)
    walk = functools.partial(first_arrival_probabilities, up_plain, [(0, 1)], start=(n - 1, 2),
                             reflected_field=left_mirrored)
    assert walk(start_reflected=True, max_steps=n).tolist() == [1.0]
    assert walk(start_reflected=True, max_steps=n - 1).tolist() == [0.0]
    assert walk().tolist() == [0.0]


def test_the_two_drawings_must_be_of_one_maze_and_the_right_way_round(big_state, seeded_states):
    plain = _constant_field(big_state, Move.UP)
    mirrored = _constant_field(big_state.with_mouse_reflected(True), Move.UP)
    with pytest.raises(ValueError, match="plain and reflected_field mirrored"):
        first_arrival_probabilities(mirrored, [big_state.cheese], reflected_field=plain)
    other = next(s for s in seeded_states if s.maze_size != big_state.maze_size)
    with pytest.raises(ValueError, match="same maze"):
        first_arrival_probabilities(plain, [big_state.cheese],
                                    reflected_field=_constant_field(other.with_mouse_reflected(True), Move.UP))


def test_outcomes_with_and_without_the_mirror_differ_only_through_it(seeded_states):
    """A policy blind to the mirroring (its input never changes the output) gives the same outcomes both ways."""
    blind = biased_model(Move.RIGHT, strength=3.0)
    states = seeded_states[:6]
    np.testing.assert_allclose(outcome_probabilities(blind, states), outcome_probabilities(blind, states, mirror=False),
                               atol=1e-6)


def test_outcome_probabilities_are_probabilities(seeded_states):
    """Float32 move probabilities do not sum exactly to 1; the outcomes still lie in [0, 1] and sum to 1."""
    torch.manual_seed(0)
    model = biased_model(Move.RIGHT, strength=3.0)
    p = outcome_probabilities(model, seeded_states[:12])
    assert p.shape == (12, len(EXACT_OUTCOMES)) and (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p[:, :3].sum(1), 1.0, atol=1e-9)
    assert (p[:, 3] >= p[:, 1] - 1e-12).all(), "the top-right cell lies in the region"
    np.testing.assert_array_equal(outcome_probabilities(model, seeded_states[:12], region_size=None), p[:, :3])


def test_outcome_probabilities_per_maze_interventions(seeded_states):
    torch.manual_seed(1)
    model = ImpalaPolicy(scale=1).eval()
    states = [s for s in seeded_states if s.maze_size <= 7][:4]
    hook = "embedder.block2.res1.resadd_out"
    vectors = torch.randn(len(states), 32, 16, 16)
    per_maze = outcome_probabilities(model, states, lambda i: [AddVector(hook, vectors[i], 1.0)], max_steps=30)
    np.testing.assert_allclose(per_maze[:, :3].sum(1), 1.0)  # the three outcomes; column 3 is P(5×5 first)
    for i, state in enumerate(states):
        one = outcome_probabilities(model, [state], [AddVector(hook, vectors[i], 1.0)], max_steps=30)
        np.testing.assert_allclose(per_maze[i], one[0])
    assert not np.allclose(per_maze, outcome_probabilities(model, states, max_steps=30))


def test_first_arrival_rejects_bad_input(up_model, state):
    vf = vector_field(up_model, state)
    wall = tuple(int(v) for v in np.argwhere(~state.open_cells)[0])
    with pytest.raises(ValueError, match=rf"goal \({wall[0]}, {wall[1]}\) is not an open cell"):
        first_arrival_probabilities(vf, [wall])
    with pytest.raises(ValueError, match="start"):
        first_arrival_probabilities(vf, [state.cheese], start=wall)
    with pytest.raises(ValueError, match="difference"):
        first_arrival_probabilities(field_difference(vf, vector_field(biased_model(Move.LEFT), state)),
                                    [state.cheese])
    # a start on a goal has arrived before the first step
    assert first_arrival_probabilities(vf, [(state.maze_size - 1, 0)]).tolist() == [1.0]
