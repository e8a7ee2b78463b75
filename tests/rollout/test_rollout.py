"""Rollouts: outcome classification with scripted policies, tracking, seeding, summaries, comparisons."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.core.hooks import intervene
from mazeinterp.core.interventions import AddVector, Intervention, PerEpisodeIntervention, Scale
from mazeinterp.maze.env import MazeEnv
from mazeinterp.core.model import MOVE_TO_ACTION, ImpalaPolicy, Move, obs_to_tensor
from mazeinterp.rollout import (
    top_right_counts,
    EVENTS,
    OUTCOMES,
    Comparison,
    EpisodeVectors,
    NoopPolicy,
    OutcomeSummary,
    RolloutConfig,
    ScriptedPolicy,
    ShortestPathPolicy,
    compare,
    load_mazes,
    move_logits,
    place_cheese,
    run_rollouts,
)
from mazeinterp.analysis.stats import paired_difference, wilson_interval




def _config(**kwargs) -> RolloutConfig:
    return RolloutConfig(**{"progress": False, **kwargs})


def _build(base: MazeState, picture: str) -> MazeState:
    """A hand-built maze: rewrite ``base``'s inner grid cell by cell (``#`` wall, ``.`` open, ``C`` cheese)."""
    open_cells, cheese = grid.parse_ascii(picture)
    assert open_cells.shape == (base.maze_size, base.maze_size)
    state = base.without_cheese().with_mouse(grid.start_cell(base.maze_size))
    for (r, c), is_open in np.ndenumerate(open_cells):
        state = state.with_open((r, c)) if is_open else state.with_wall((r, c))
    return state.with_cheese(cheese)


# cheese off the top-right path (decision square at (2, 0)) / cheese on it
OFF_PATH = """
.....
.####
....C
.####
.....
"""
ON_PATH = """
..C..
.####
.....
.####
.....
"""


@pytest.fixture(scope="module")
def five(seeded_states: list[MazeState]) -> MazeState:
    return next(s for s in seeded_states if s.maze_size == 5)


def test_hand_built_mazes_are_classified(five: MazeState) -> None:
    off, on = _build(five, OFF_PATH), _build(five, ON_PATH)
    cfg = _config(check_positions=True, record_trajectories=True)
    to_cheese = run_rollouts(ShortestPathPolicy("cheese"), [off, on], config=cfg)
    assert [(e.outcome, e.steps) for e in to_cheese] == [("cheese", 6), ("cheese", 6)]
    assert to_cheese.episodes[0].trajectory == ((4, 0), (3, 0), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4))
    assert to_cheese.episodes[0].decision_square == (2, 0) and to_cheese.episodes[0].has_decision_square
    assert not to_cheese.episodes[1].has_decision_square
    to_corner = run_rollouts(ShortestPathPolicy("top_right"), [off, on], config=cfg)
    assert [(e.outcome, e.steps) for e in to_corner] == [("top_right", 8), ("cheese", 6)]
    assert to_corner.episodes[0].trajectory[-1] == (0, 4)
    still = run_rollouts(NoopPolicy(), [off, on], config=_config(max_steps=7, check_positions=True))
    assert [(e.outcome, e.steps) for e in still] == [("neither", 7), ("neither", 7)]


# the top-right cell (0, 4) lies on the way to the cheese (2, 3): a cheese-seeker passes through the corner
CORNER_FIRST = """
.....
.###.
.##C.
.####
.....
"""


class _Bounce(ScriptedPolicy):
    """Walks the shortest path to one cell, then to the other, and back, for ever (one env at a time)."""

    def __init__(self, a: grid.Cell, b: grid.Cell) -> None:
        self.goals, self.heading = (a, b), 0

    def logits(self, states):
        (state,) = states
        if state.mouse == self.goals[self.heading]:
            self.heading = 1 - self.heading
        return ShortestPathPolicy(self.goals[self.heading]).logits(states)


def test_region_first_is_recorded_before_the_cheese_only(five: MazeState) -> None:
    off, corner_first = _build(five, OFF_PATH), _build(five, CORNER_FIRST)
    cfg = _config(check_positions=True, record_trajectories=True, region_size=2)
    to_cheese = run_rollouts(ShortestPathPolicy("cheese"), [off, corner_first], config=cfg)
    cheese_first, region_first = to_cheese.episodes
    assert (cheese_first.outcome, cheese_first.region_step, cheese_first.region_first) == ("cheese", None, False)
    assert cheese_first.trap is None and region_first.trap is None  # only episodes at the cap can be trapped
    assert (region_first.outcome, region_first.steps) == ("cheese", 11)
    assert region_first.region_step == 7 and region_first.trajectory[7] == (0, 3)  # the first cell of the 2×2
    to_corner = run_rollouts(ShortestPathPolicy("top_right"), [off], config=cfg).episodes[0]
    assert (to_corner.outcome, to_corner.region_step) == ("top_right", 7)
    # a region as large as the maze holds the start: arrival at step 0
    whole = run_rollouts(ShortestPathPolicy("cheese"), [off], config=_config(region_size=5)).episodes[0]
    assert whole.region_step == 0
    summary = to_cheese.summary()
    assert summary.region_size == 2 and summary.event_counts == {"region_first": 1, "trapped": 0}
    assert "2×2 first" in str(summary)
    legend = summary.event_legend()
    assert legend.startswith("(2×2 first: stood on a cell of the top-right 2×2 region before the cheese; trapped: ")
    assert str(to_cheese).count(legend) == 1 and str(to_cheese).endswith(legend)
    row = to_cheese.to_rows()[1]
    assert (row["region_size"], row["region_step"], row["region_first"], row["trapped"]) == (2, 7, True, False)


def test_a_shuttle_at_the_cap_is_trapped_and_a_wanderer_is_not(five: MazeState) -> None:
    off = _build(five, OFF_PATH)
    cfg = _config(check_positions=True, max_steps=150, region_size=2)
    shuttle = run_rollouts(_Bounce((0, 1), (0, 2)), [off], config=cfg).episodes[0]
    assert (shuttle.outcome, shuttle.steps) == ("neither", 150)
    assert shuttle.trapped and shuttle.trap.cells == ((0, 1), (0, 2)) and shuttle.trap.share == 1.0
    assert not shuttle.region_first
    wanderer = run_rollouts(_Bounce((4, 4), (0, 2)), [off], config=cfg).episodes[0]  # 10 cells to and fro
    assert (wanderer.outcome, wanderer.steps, wanderer.trapped) == ("neither", 150, False)
    still = run_rollouts(NoopPolicy(), [off], config=_config(max_steps=20)).episodes[0]
    assert still.trap is not None and still.trap.cells == ((4, 0), (4, 0))  # holding still is stuck too
    result = run_rollouts(_Bounce((0, 1), (0, 2)), [off], config=cfg)
    assert result.summary().event_counts["trapped"] == 1
    assert result.reached("trapped").tolist() == [True] and result.reached("region_first").tolist() == [False]
    with pytest.raises(ValueError, match="unknown outcome"):
        result.reached("lost")


def test_the_research_decision_square_selects_mazes_with_the_corner_on_the_cheese_path(five: MazeState) -> None:
    from mazeinterp.core.model import Move
    from mazeinterp.analysis.vfield import cheese_ward_move

    off, corner_first = _build(five, OFF_PATH), _build(five, CORNER_FIRST)
    ours = run_rollouts(ShortestPathPolicy("cheese"), [off, corner_first], config=_config())
    research = run_rollouts(ShortestPathPolicy("cheese"), [off, corner_first],
                            config=_config(decision_square="research"))
    assert [ep.decision_square for ep in ours] == [(2, 0), None]
    assert [ep.decision_square for ep in research] == [(2, 0), (1, 4)]  # the cell after the corner
    assert research.episodes[1].features.cheese_decision_square_path == 2.0  # (1, 4) → (2, 4) → (2, 3)
    assert ours.summary(decision_square_only=True).n == 1 and research.summary(decision_square_only=True).n == 2
    summary = research.summary(decision_square_only=True)
    assert summary.decision_square == "research" and "research definition" in summary.label
    assert summary.as_dict()["decision_square_definition"] == "research"
    assert ours.summary(decision_square_only=True).decision_square == "mazeinterp"
    assert ours.summary().decision_square is None  # no decision-square filter
    assert (cheese_ward_move(corner_first), cheese_ward_move(corner_first, "research")) == (None, Move.DOWN)
    with pytest.raises(ValueError, match="unknown decision-square definition"):
        RolloutConfig(decision_square="paper")


def test_bfs_to_cheese_always_gets_the_cheese(seeded_states: list[MazeState]) -> None:
    states = seeded_states[:24]
    result = run_rollouts(ShortestPathPolicy("cheese"), states,
                          config=_config(batch_size=7, check_positions=True))
    assert len(result) == 24 and result.frames == sum(e.steps for e in result)
    assert not all(ep.top_right_counts for ep in result), "some cheese paths pass the top-right cell"
    for ep, state in zip(result, states):
        assert ep.outcome == "cheese"
        assert ep.steps == len(grid.path_to_cheese(state.open_cells, state.cheese)) - 1
        assert (ep.level_seed, ep.maze_size, ep.cheese) == (state.level_seed, state.maze_size, state.cheese)


def test_bfs_to_top_right_gets_top_right_unless_the_cheese_is_on_its_path() -> None:
    seeds = list(range(100, 124))  # level seeds go through the helper env
    result = run_rollouts(ShortestPathPolicy("top_right"), seeds, config=_config(batch_size=8, max_steps=300))
    assert [ep.level_seed for ep in result] == seeds
    on_path_seen = off_path_seen = 0
    for ep, state in zip(result, load_mazes(seeds)):
        path = grid.path_to_top_right(state.open_cells)
        cheese_path = grid.path_to_cheese(state.open_cells, state.cheese)
        assert ep.top_right_counts == (path[-1] not in cheese_path) == top_right_counts(state)
        if state.cheese in path:
            on_path_seen += 1
            assert (ep.outcome, ep.steps) == ("cheese", path.index(state.cheese))
            assert not ep.has_decision_square
        elif not ep.top_right_counts:
            # the corner is on the way to the cheese: reaching it is no outcome, and the policy then stays
            assert (ep.outcome, ep.steps) == ("neither", 300)
            assert not ep.has_decision_square
        else:
            off_path_seen += 1
            assert (ep.outcome, ep.steps) == ("top_right", len(path) - 1)
    assert on_path_seen and off_path_seen


def test_top_right_counts_edge_cases(seeded_states: list[MazeState]) -> None:
    state = next(s for s in seeded_states if s.maze_size >= 5)
    corner = grid.top_right_cell(state.maze_size)
    assert not top_right_counts(state.with_cheese(corner))  # the corner is the cheese: no second outcome
    assert top_right_counts(state.without_cheese())  # nothing to reach first: the corner counts


def test_never_moving_gets_neither_and_the_cap_can_exceed_procgens_timeout() -> None:
    result = run_rollouts(NoopPolicy(), [3, 4], config=_config(max_steps=12))
    assert [(e.outcome, e.steps) for e in result] == [("neither", 12)] * 2
    # a pixel policy that always goes left: from the start (bottom-left corner) that is a wall
    always_left = lambda x: torch.tensor(move_logits([0] * len(x)))  # noqa: E731
    result = run_rollouts(always_left, [5], config=_config(max_steps=510, greedy=True))
    assert (result.episodes[0].outcome, result.episodes[0].steps) == ("neither", 510)


def test_random_actions_are_tracked_exactly(seeded_states: list[MazeState]) -> None:
    uniform = lambda x: torch.zeros(len(x), 15)  # noqa: E731  (all 15 actions, diagonals included)
    result = run_rollouts(uniform, seeded_states[:6], config=_config(max_steps=40, check_positions=True,
                                                                      record_trajectories=True))
    for ep in result:
        assert len(ep.trajectory) == ep.steps + 1
        steps = np.abs(np.diff(np.array(ep.trajectory), axis=0)).sum(axis=1)
        assert set(steps.tolist()) <= {0, 1}


def test_same_seed_same_numbers_whatever_the_batch_size(seeded_states: list[MazeState]) -> None:
    uniform = lambda x: torch.zeros(len(x), 15)  # noqa: E731
    states = seeded_states[:10]
    a = run_rollouts(uniform, states, config=_config(max_steps=30, batch_size=10, seed=4))
    b = run_rollouts(uniform, states, config=_config(max_steps=30, batch_size=3, seed=4))
    c = run_rollouts(uniform, states, config=_config(max_steps=30, batch_size=10, seed=5))
    key = lambda r: [(e.outcome, e.steps) for e in r]  # noqa: E731
    assert key(a) == key(b)
    assert key(c) != key(a), "another seed draws other actions"
    # recording trajectories changes nothing, and the same seed walks the same cells at any batch size
    traj = run_rollouts(uniform, states, config=_config(max_steps=30, seed=5, record_trajectories=True))
    traj_b = run_rollouts(uniform, states, config=_config(max_steps=30, seed=5, batch_size=4,
                                                           record_trajectories=True))
    assert key(traj) == key(c)
    assert [e.trajectory for e in traj] == [e.trajectory for e in traj_b]


def test_greedy_takes_the_most_probable_action(five: MazeState) -> None:
    # logits favour UP (action 5) then RIGHT: greedy always goes up (and stays when blocked)
    logits = torch.zeros(15)
    logits[5], logits[7] = 3.0, 2.0
    policy = lambda x: logits.expand(len(x), 15)  # noqa: E731
    off = _build(five, OFF_PATH)
    result = run_rollouts(policy, [off], config=_config(greedy=True, max_steps=6, record_trajectories=True))
    assert result.episodes[0].trajectory == ((4, 0), (3, 0), (2, 0), (1, 0), (0, 0), (0, 0), (0, 0))


def test_cheese_region_places_the_cheese_in_the_corner() -> None:
    result = run_rollouts(NoopPolicy(), list(range(12)), config=_config(max_steps=1, cheese_region=5))
    for ep in result:
        assert ep.cheese_in_region(5)
    again = run_rollouts(NoopPolicy(), list(range(12)), config=_config(max_steps=1, cheese_region=5))
    assert [e.cheese for e in again] == [e.cheese for e in result]


def test_summaries_filters_and_rows(seeded_states: list[MazeState]) -> None:
    result = run_rollouts(ShortestPathPolicy("top_right"), seeded_states[:20], config=_config(max_steps=120))
    summary = result.summary()
    counts = {o: int(np.sum(result.outcomes == o)) for o in OUTCOMES}
    assert summary.counts == counts and summary.n == 20
    for o in OUTCOMES:
        assert summary.intervals[o] == wilson_interval(counts[o], 20)
        assert summary.proportions[o] == counts[o] / 20
    ds = result.summary(decision_square_only=True)
    assert ds.n == sum(e.has_decision_square for e in result)
    assert ds.counts["top_right"] == ds.n, "with a decision square the cheese is off the top-right path"
    outside = result.filter(cheese_outside_region=5)
    assert all(not e.cheese_in_region(5) for e in outside)
    assert [s.label for s in result.summaries()][:2] == ["all mazes", "with decision square"]
    rows = result.to_rows()
    assert len(rows) == 20 and {"outcome", "steps", "cheese_top_right_path", "level_seed"} <= set(rows[0])
    assert "Wilson" in str(result)
    assert OutcomeSummary.of([]).n == 0


def test_compare_pairs_the_same_mazes(seeded_states: list[MazeState]) -> None:
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=1)
    mazes = seeded_states[:8]
    cfg = _config(max_steps=20)
    up = torch.zeros(15)
    up[int(MOVE_TO_ACTION[Move.UP])] = 1e4
    always_up = AddVector("fc_policy_out", up)  # the treatment turns the network into "always go up"
    comp = compare(model, mazes, [], [always_up], config=cfg)
    key = lambda r: [(e.outcome, e.steps) for e in r]  # noqa: E731
    alone = run_rollouts(model, mazes, config=cfg)
    scripted_up = run_rollouts(lambda x: torch.tensor(move_logits([Move.UP] * len(x))), mazes, config=cfg)
    assert key(comp.baseline) == key(alone)
    assert key(comp.treatment) == key(scripted_up) != key(alone)
    assert comp.treatment.interventions == (repr(always_up),) and comp.baseline.interventions == ()
    for outcome in OUTCOMES:
        assert comp.difference(outcome) == paired_difference(alone.reached(outcome), scripted_up.reached(outcome))
    # a comparison of two different policies, paired by hand
    cheese = run_rollouts(ShortestPathPolicy("cheese"), seeded_states[:16], config=_config(max_steps=120))
    corner = run_rollouts(ShortestPathPolicy("top_right"), seeded_states[:16], config=_config(max_steps=120))
    pair = Comparison(cheese, corner)
    expected = paired_difference(cheese.reached("cheese"), corner.reached("cheese"))
    assert pair.difference() == expected
    assert pair.difference(decision_square_only=True).estimate == -1.0
    assert len(pair.rows()) == 16 and "treatment_outcome" in pair.rows()[0]
    assert "paired difference" in str(pair)
    assert {d["outcome"] for d in pair.as_dict()["differences"]} == set(OUTCOMES + EVENTS)


def test_tiny_network_rollout_restores_memory_format() -> None:
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=1)
    result = run_rollouts(model, [0, 1, 2], config=_config(max_steps=3))
    assert result.frames <= 9 and len(result) == 3 and "ImpalaPolicy" in result.policy
    assert all(p.is_contiguous() for p in model.parameters())


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="positive int"):
        RolloutConfig(max_steps=0)
    with pytest.raises(ValueError, match="level seed"):
        run_rollouts(NoopPolicy(), [-3], config=_config())
    with pytest.raises(ValueError, match="no mazes"):
        run_rollouts(NoopPolicy(), [], config=_config())
    with pytest.raises(TypeError, match="MazeStates"):
        run_rollouts(NoopPolicy(), ["maze"], config=_config())
    with pytest.raises(TypeError, match="a number of mazes, level seeds or start states, got True"):
        run_rollouts(NoopPolicy(), True, config=_config())  # type: ignore[arg-type]
    vec = EpisodeVectors("embedder.block2.res1.resadd_out", torch.zeros(1, 32, 16, 16))
    with pytest.raises(ValueError, match="torch policy"):
        run_rollouts(NoopPolicy(), [0], [vec], config=_config())
    with pytest.raises(ValueError, match=r"torch policy \(an ImpalaPolicy\), not a Linear"):  # no hook points
        run_rollouts(torch.nn.Linear(2, 2), [0], [vec], config=_config())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown hook point"):
        run_rollouts(ImpalaPolicy(scale=1), [0], [EpisodeVectors("embedder.nope_out", torch.zeros(1, 3))],
                     config=_config())
    with pytest.raises(ValueError, match="shape"):
        run_rollouts(ImpalaPolicy(scale=1), [0], [EpisodeVectors("embedder.block2.res1.resadd_out",
                                                                  torch.zeros(1, 8, 16, 16))], config=_config())


def test_episode_vectors_steer_each_maze_separately() -> None:
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=1)
    hook = "embedder.block2.res1.resadd_out"
    mazes = load_mazes([0, 1, 2, 3])
    vectors = torch.zeros(4, 32, 16, 16)
    vectors[2] = 0.5  # only maze 2 has a non-zero vector
    rows_seen: list[list[int]] = []

    class Spy(EpisodeVectors):
        def set_episode_indices(self, indices):  # type: ignore[override]
            rows_seen.append([int(i) for i in indices])
            super().set_episode_indices(indices)

    def start_logits(interventions) -> torch.Tensor:
        """Logits of each maze's first (and, with max_steps=1, only) forward pass, in maze order."""
        outputs: list[torch.Tensor] = []
        handle = model.register_forward_hook(lambda _m, _i, out: outputs.append(out[0].float().clone()))
        try:
            run_rollouts(model, mazes, interventions, config=_config(max_steps=1, batch_size=2))
        finally:
            handle.remove()
        return torch.cat(outputs)[-len(mazes):]  # the last passes: checking the intervention runs one first

    base = start_logits([])
    steered = start_logits([Spy(hook, vectors, coefficient=-1.0)])
    assert rows_seen == [[0, 1], [2, 3]], "batch rows are told their maze"
    torch.testing.assert_close(steered[[0, 1, 3]], base[[0, 1, 3]], rtol=0, atol=0)
    assert (steered[2] - base[2]).abs().max() > 1e-3
    # maze 2's logits are those of its own vector added outside a rollout
    with MazeEnv.from_states([mazes[2]]) as env, intervene(model, [AddVector(hook, vectors[2], -1.0)]):
        expected = model(obs_to_tensor(env.observe()[1]))[0]
    torch.testing.assert_close(steered[2], expected[0], rtol=1e-4, atol=1e-4)


def test_episode_vectors_keep_their_fields_and_hold_the_batch_rows_apart() -> None:
    import dataclasses

    vectors = torch.arange(6.0).reshape(3, 2)
    edit = EpisodeVectors("embedder.fc_out", vectors, coefficient=-2.0)
    with pytest.raises(RuntimeError, match="set_episode_indices"):
        edit.edit(torch.zeros(2, 2))
    edit.set_episode_indices([2, 0])
    torch.testing.assert_close(edit.edit(torch.ones(2, 2)), torch.tensor([[-7.0, -9.0], [1.0, -1.0]]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        edit.coefficient = 1.0  # type: ignore[misc]
    copy = dataclasses.replace(edit, coefficient=1.0)
    assert copy.rows is not edit.rows and copy.rows.indices is None, "a copy does not share the batch rows"
    copy.set_episode_indices([1])
    assert edit.rows.indices.tolist() == [2, 0]
    with pytest.raises(IndexError, match="out of range"):
        edit.set_episode_indices([3])


def test_a_rollout_validates_each_edit_once(validations) -> None:
    edits = [Scale("fc_value_out", 2.0), EpisodeVectors("fc_value_out", torch.zeros(3, 1))]
    run_rollouts(ImpalaPolicy(scale=1), [0, 1, 2], edits, config=_config(max_steps=2, batch_size=2))
    assert validations == edits


def test_per_episode_edits_declare_their_protocol() -> None:
    """The runner tells the rows' mazes to PerEpisodeIntervention subclasses; an undeclared one is refused, not ignored."""
    import dataclasses

    told: list[list[int]] = []

    @dataclasses.dataclass(frozen=True, eq=False, repr=False)
    class Undeclared(Intervention):
        """Keeps per-episode rows but does not say so: a rollout would never call set_episode_indices."""

        def set_episode_indices(self, indices) -> None:
            told.append(list(indices))

        def edit(self, act: torch.Tensor) -> torch.Tensor:
            return act

    @dataclasses.dataclass(frozen=True, eq=False, repr=False)
    class Declared(PerEpisodeIntervention):
        def set_episode_indices(self, indices) -> None:
            told.append([int(i) for i in indices])
            self.rows.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))

        def edit(self, act: torch.Tensor) -> torch.Tensor:
            return act

    model = ImpalaPolicy(scale=1)
    with pytest.raises(TypeError, match=r"Undeclared\(fc_value_out\) has a set_episode_indices method but is not "
                                        "a PerEpisodeIntervention"):
        run_rollouts(model, [0, 1], [Undeclared("fc_value_out")], config=_config(max_steps=1))
    assert told == []
    declared = Declared("fc_value_out")
    run_rollouts(model, [0, 1, 2], [declared], config=_config(max_steps=1, batch_size=2))
    assert told == [[0, 1], [2]] and declared.rows.indices.tolist() == [2]

    @dataclasses.dataclass(frozen=True, eq=False, repr=False)
    class Incomplete(PerEpisodeIntervention):
        def edit(self, act: torch.Tensor) -> torch.Tensor:
            return act

    with pytest.raises(TypeError, match="abstract method.*set_episode_indices"):
        Incomplete("fc_value_out")
    assert isinstance(EpisodeVectors("fc_value_out", torch.zeros(1, 1)), PerEpisodeIntervention)


def test_place_cheese_matches_the_rollouts_cheese_region(seeded_states: list[MazeState]) -> None:
    states = seeded_states[:12]
    placed = place_cheese(states, 5, seed=3)
    assert [s.cheese for s in placed] != [s.cheese for s in place_cheese(states, 5, seed=4)]
    uniform = lambda x: torch.zeros(len(x), 15)  # noqa: E731
    in_rollout = run_rollouts(uniform, states, config=_config(max_steps=25, cheese_region=5, seed=3))
    beforehand = run_rollouts(uniform, placed, config=_config(max_steps=25, seed=3))
    assert [e.cheese for e in in_rollout] == [s.cheese for s in placed]
    assert [(e.outcome, e.steps) for e in in_rollout] == [(e.outcome, e.steps) for e in beforehand]
    assert all(grid.in_top_right_region(s.cheese, s.maze_size, 5) for s in placed)


def test_comparison_table_headers_sit_over_their_columns(seeded_states: list[MazeState]) -> None:
    cheese = run_rollouts(ShortestPathPolicy("cheese"), seeded_states[:4], config=_config(max_steps=60))
    corner = run_rollouts(ShortestPathPolicy("top_right"), seeded_states[:4], config=_config(max_steps=60))
    lines = str(Comparison(cheese, corner)).splitlines()
    header = next(line for line in lines if "baseline" in line)
    row = lines[lines.index(header) + 1]  # "  cheese         4 (1.000)     2 (0.500)   ..."
    for name, value in zip(("baseline", "treatment"), re.finditer(r"\(\d\.\d{3}\)", row)):
        assert header.index(name) + len(name) == value.end(), (header, row)


def test_comparison_refuses_unpaired_results_naming_the_first_mismatch(seeded_states: list[MazeState]) -> None:
    from mazeinterp.rollout import NoopPolicy

    def run(mazes, **changes):
        return run_rollouts(NoopPolicy(), mazes, config=_config(max_steps=2, **changes))

    base = run(seeded_states[:3])
    with pytest.raises(ValueError, match=r"episode 0: level_seed is 0 in the baseline, 100 in the treatment"):
        Comparison(run([0, 1, 2]), run([100, 200, 300]))  # indices 0…2 in both: used to pass as paired
    moved = list(seeded_states[:3])
    n = moved[1].maze_size
    moved[1] = moved[1].with_cheese((0, n - 1))
    with pytest.raises(ValueError, match=r"episode 1: cheese is \(\d+, \d+\) in the baseline, \(0, \d+\)"):
        Comparison(base, run(moved))
    with pytest.raises(ValueError, match=r"config.seed is 0 in the baseline, 1 in the treatment"):
        Comparison(base, run(seeded_states[:3], seed=1))
    with pytest.raises(ValueError, match="3 baseline episodes, 2 treatment"):
        Comparison(base, run(seeded_states[:2]))
    assert Comparison(base, run(seeded_states[:3], batch_size=1)).difference().estimate == 0.0
