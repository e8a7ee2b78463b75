"""Tests of mazeinterp.analysis.steering: cheese / top-right vectors, retargeting helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mazeinterp.core.hooks import render_states, run_states_with_cache, run_with_cache
from mazeinterp.core.interventions import AddVector, Clamp
from mazeinterp.maze.env import MazeEnv
from mazeinterp.maze.grid import shortest_path, start_cell
from mazeinterp.maze.pixels import cell_to_pixel
from mazeinterp.maze.state import EMPTY
from mazeinterp.core.model import MOVE_DELTAS, MOVE_TO_ACTION, ImpalaPolicy, Move, obs_to_tensor
from mazeinterp.analysis.steering import (
    DEFAULT_STEERING_HOOK,
    cheese_vector,
    cheese_vectors,
    hook_resolution,
    mean_cheese_vector,
    open_top_right_path,
    path_probability,
    probe_cheese_vector,
    retarget,
    top_right_vector,
    top_right_vectors,
)
from mazeinterp.analysis.vfield import vector_field

HOOK = DEFAULT_STEERING_HOOK




@pytest.fixture(scope="module")
def state(big_state):
    return big_state


def acts(model, states, hook=HOOK, interventions=()):
    _, cache = run_states_with_cache(model, states, [hook], stop_early=True, interventions=interventions)
    return cache[hook]


def independent_acts(model, states, hook):
    """Activations at ``hook`` from the env's own observations and a plain torch forward hook: (N, *shape)."""
    seen = []
    handle = model.module_for_hook(hook).register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        with MazeEnv.from_states(states) as env, torch.no_grad():
            logits, _ = model(obs_to_tensor(env.observe()[1]))
    finally:
        handle.remove()
    return seen[0], logits


@pytest.mark.parametrize("hook", [HOOK, "embedder.relu3_out"])
def test_cheese_vector_is_with_minus_without_cheese(model, state, hook):
    at_start = state.with_mouse(start_cell(state.maze_size))
    moved = state.with_mouse(next(tuple(int(v) for v in cell) for cell in np.argwhere(state.open_cells)
                                  if tuple(cell) not in (state.cheese, at_start.mouse)))
    cv = cheese_vector(model, moved, hook)  # the mouse is put back at the start
    both, logits = independent_acts(model, [at_start, at_start.without_cheese()], hook)
    torch.testing.assert_close(cv, both[0] - both[1], rtol=1e-5, atol=1e-6)
    assert cv.abs().sum() > 0
    # subtracting it at every forward pass makes the cheese maze look cheese-free to every later layer
    (steered, _), _ = run_with_cache(model, obs_to_tensor(render_states([at_start])), [],
                                     interventions=[AddVector(hook, cv, -1.0)])
    torch.testing.assert_close(steered[0], logits[1], rtol=0, atol=1e-6)
    assert (logits[0] - logits[1]).abs().max() > 1e-4, "the cheese changes the logits in the first place"


def test_cheese_vector_is_local_to_the_cheese(model, state):
    """At the 16×16 layer the cheese changes only pixels within the receptive field around it."""
    cv = cheese_vector(model, state)
    r, c = cell_to_pixel(state.cheese, state.maze_size, 16)
    changed = np.argwhere(cv.abs().amax(0).numpy() > 0)
    assert len(changed)
    # receptive field: ±1 px (conv) at 64, then 5 convs at 32 and 2 at 16 after the poolings: ≤ 6 px at 16
    assert np.abs(changed - [r, c]).max() <= 6


def test_cheese_vector_puts_mouse_at_start(model, state):
    n = state.maze_size
    elsewhere = next(tuple(int(v) for v in cell) for cell in np.argwhere(state.open_cells)
                     if tuple(cell) not in (state.cheese, start_cell(n)))
    torch.testing.assert_close(cheese_vector(model, state.with_mouse(elsewhere)), cheese_vector(model, state))


def test_cheese_vector_needs_cheese(model, state):
    with pytest.raises(ValueError, match="no cheese"):
        cheese_vector(model, state.without_cheese())


def test_mean_cheese_vector_is_mean_of_vectors(model, seeded_states):
    states = seeded_states[:4]
    mean = mean_cheese_vector(model, states)
    singles = torch.stack([cheese_vector(model, s) for s in states])
    torch.testing.assert_close(mean, singles.mean(0), rtol=1e-5, atol=1e-6)


def test_probe_cheese_vector(model, seeded_states):
    states = seeded_states[:8]
    diff = mean_cheese_vector(model, states)
    probe = probe_cheese_vector(model, states)
    assert probe.shape == diff.shape
    torch.testing.assert_close(probe.norm(), diff.norm(), rtol=1e-4, atol=1e-6)
    assert torch.dot(probe.flatten(), diff.flatten()) > 0
    unit = probe_cheese_vector(model, states, scale="unit")
    torch.testing.assert_close(unit.norm(), torch.tensor(1.0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(unit * diff.norm(), probe, rtol=1e-4, atol=1e-6)
    proj = probe_cheese_vector(model, states, scale="projection")
    torch.testing.assert_close(proj, unit * torch.dot(unit.flatten(), diff.flatten()), rtol=1e-4, atol=1e-6)
    # the probe separates the contrast pairs: projections with cheese exceed those without
    pairs = [s for st in states for s in (st, st.without_cheese())]
    flat = acts(model, pairs).flatten(1)
    proj_scores = flat @ unit.flatten()
    assert (proj_scores[0::2] > proj_scores[1::2]).float().mean() >= 0.9


def test_open_top_right_path_padding(state):
    opened = open_top_right_path(state)
    n, m = state.maze_size, state.margin
    assert m > 0
    world = opened.world_grid
    assert (world[:m, m + n - 1] == EMPTY).all()
    assert (world[0, m + n - 1 :] == EMPTY).all()
    np.testing.assert_array_equal(opened.inner_grid, state.inner_grid)
    changed = np.argwhere(world != state.world_grid)
    assert len(changed) == m + 24 - (m + n - 1)  # the padding column above, then the top row to the right
    assert opened.mouse == state.mouse and opened.cheese == state.cheese
    # the edited state survives a round trip through bytes
    assert type(state).from_bytes(opened.to_bytes()) == opened


def test_open_top_right_path_auto_uses_padding_when_there_is_some(seeded_states):
    padded = next(s for s in seeded_states if s.margin > 0)
    assert open_top_right_path(padded) == open_top_right_path(padded, route="padding")
    full = next(s for s in seeded_states if s.margin == 0)  # 25x25: the direct route instead of no change
    assert open_top_right_path(full) == open_top_right_path(full, route="direct")
    assert open_top_right_path(full) != full


def test_open_top_right_path_direct(state):
    opened = open_top_right_path(state, route="direct")
    n = state.maze_size
    assert opened.open_cells[:, 0].all() and opened.open_cells[0, :].all()
    assert opened.cheese == state.cheese
    path = shortest_path(opened.open_cells, start_cell(n), (0, n - 1))
    assert len(path) == 2 * (n - 1) + 1  # straight up, then straight right
    with pytest.raises(ValueError, match="route"):
        open_top_right_path(state, route="diagonal")  # type: ignore[arg-type]


def test_batched_vectors_are_each_mazes_own_vector_in_order(model, seeded_states):
    """Row i is state i's vector, checked against the env's own observations, with the mouse moved to the start."""
    states = list(seeded_states[:5])
    path = shortest_path(states[1].open_cells, start_cell(states[1].maze_size), states[1].cheese)
    states[1] = states[1].with_mouse(path[2])  # the vectors put the mouse back at the start
    starts = [s.with_mouse(start_cell(s.maze_size)) for s in states]
    expected = {
        cheese_vectors: [independent_acts(model, [s, s.without_cheese()], HOOK)[0] for s in starts],
        top_right_vectors: [independent_acts(model, [open_top_right_path(s), s], HOOK)[0] for s in starts],
    }
    for batched, pairs in expected.items():
        each = torch.stack([a[0] - a[1] for a in pairs])
        assert each.abs().flatten(1).sum(1).min() > 0
        for batch_size in (2, 3, 256):  # 3: pairs split across batches
            torch.testing.assert_close(batched(model, states, batch_size=batch_size, progress=False), each,
                                       rtol=1e-5, atol=1e-5)  # a difference: absolute rounding
        torch.testing.assert_close(batched(model, states[::-1], progress=False), each.flip(0), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="need at least one state"):
            batched(model, [])
    # a single maze's vector is the batched one's row, bit for bit, when the batches match
    assert torch.equal(cheese_vector(model, states[1]), cheese_vectors(model, states, batch_size=2)[1])
    with pytest.raises(ValueError, match="state 2 has no cheese"):
        cheese_vectors(model, [states[0], states[1], states[2].without_cheese()])


def test_top_right_vector(model, state, seeded_states):
    tr = top_right_vector(model, state)
    assert tr.shape == (32, 16, 16) and tr.abs().sum() > 0
    opened = open_top_right_path(state)
    acts_both, logits = independent_acts(model, [opened, state], HOOK)
    torch.testing.assert_close(tr, acts_both[0] - acts_both[1], rtol=1e-5, atol=1e-6)
    (steered, _), _ = run_with_cache(model, obs_to_tensor(render_states([state])), [],
                                     interventions=[AddVector(HOOK, tr, 1.0)])
    torch.testing.assert_close(steered[0], logits[0], rtol=0, atol=1e-6)
    full = next(s for s in seeded_states if s.maze_size == 25)
    # no padding: the default opens the direct route; the padding route has nothing to open
    assert torch.count_nonzero(top_right_vector(model, full)) > 0
    assert torch.count_nonzero(top_right_vector(model, full, route="padding")) == 0


def test_hook_resolution(model):
    for hook, shape in model.hook_points().items():
        res = hook_resolution(hook)
        assert (res is None) == (len(shape) == 1)
        if res is not None:
            assert shape[1:] == (res, res), hook


def test_retarget_builds_clamp():
    clamp = retarget([55, 42], (2, 3), maze_size=15)
    assert isinstance(clamp, Clamp)
    assert clamp.hook == HOOK and clamp.value == 5.5 and clamp.channels == (55, 42)
    assert clamp.pixels == (cell_to_pixel((2, 3), 15, 16),)
    late = retarget(7, (2, 3), 15, value=3.0, hook="embedder.relu3_out")
    assert late.pixels == (cell_to_pixel((2, 3), 15, 8),) and late.value == 3.0
    region = retarget(7, (0, 0), 25, region=True, hook="embedder.block1.conv_out")
    assert region.pixels == ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2))
    with pytest.raises(ValueError, match="embedder blocks"):
        retarget(7, (0, 0), 25, hook="embedder.fc_out")


def test_retarget_clamps_in_model(model, state):
    target = (0, 0)
    clamp = retarget([3], target, state.maze_size, value=5.5)
    out = acts(model, [state], HOOK, [clamp])[0]
    r, c = cell_to_pixel(target, state.maze_size, 16)
    assert out[3, r, c] == 5.5
    base = acts(model, [state])[0]
    mask = torch.ones_like(base, dtype=torch.bool)
    mask[3, r, c] = False
    assert torch.equal(out[mask], base[mask])


def test_path_probability_matches_vector_field(model, state):
    state = state.without_cheese()
    n = state.maze_size
    target = (0, n - 1)
    path = shortest_path(state.open_cells, start_cell(n), target)
    fields = {flag: vector_field(model, state.with_mouse_reflected(flag)) for flag in (False, True)}
    expected, plain_only, mirrored = 1.0, 1.0, False  # the walk starts plain; RIGHT mirrors, LEFT unmirrors
    for a, b in zip(path[:-1], path[1:]):
        move = next(m for m in Move if tuple(MOVE_DELTAS[m]) == (b[0] - a[0], b[1] - a[1]))
        expected *= fields[mirrored].prob_at(a)[move]
        plain_only *= fields[False].prob_at(a)[move]
        mirrored = {Move.RIGHT: True, Move.LEFT: False}.get(move, mirrored)
    assert path_probability(model, state, target) == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(plain_only, rel=1e-7, abs=0), "the mirrored drawing changes the answer"
    assert path_probability(model, state, target, log=True) == pytest.approx(np.log(expected), rel=1e-5)
    assert path_probability(model, state, start_cell(n)) == 1.0


def test_path_probability_rises_under_steering(model, state):
    """Steering the logits toward 'up' makes a straight-up path (the left column) near-certain."""
    n = state.maze_size
    opened = open_top_right_path(state, route="direct")
    up = torch.zeros(15)
    up[int(MOVE_TO_ACTION[Move.UP])] = 30.0
    before = path_probability(model, opened, (0, 0))
    after = path_probability(model, opened, (0, 0), [Clamp("fc_policy_out", up)])
    assert after == pytest.approx(1.0, abs=1e-6) and before < 0.5
    assert len(shortest_path(opened.open_cells, start_cell(n), (0, 0))) == n


def test_path_probability_through_cheese_raises(model, state):
    n = state.maze_size
    path = shortest_path(state.open_cells, start_cell(n), state.cheese)
    beyond = [c for c in map(tuple, np.argwhere(state.open_cells))
              if state.cheese in shortest_path(state.open_cells, start_cell(n), c)[:-1]]
    if beyond:
        with pytest.raises(ValueError, match="passes through the cheese"):
            path_probability(model, state, beyond[0])
    assert path_probability(model, state, path[-2]) > 0
