"""Plots are written and are not blank; vector fields of a planted model point where they should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mazeinterp.viz import plots
from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import ImpalaPolicy, Move
from mazeinterp.rollout import OutcomeSummary, RolloutConfig, ShortestPathPolicy, run_rollouts



def _assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 1000
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) > 50
    assert pixels[..., :3].std() > 0.02, f"{path} looks blank"


def _planted_up_model() -> ImpalaPolicy:
    """Scale-1 model whose policy ignores its input and goes UP with probability ≈ 1."""
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=1)
    with torch.no_grad():
        model.fc_policy.weight.zero_()
        model.fc_policy.bias.zero_()
        model.fc_policy.bias[5] = 30.0  # action 5 = UP
    return model.eval()


@pytest.fixture(scope="module")
def small_state(seeded_states: list[MazeState]) -> MazeState:
    return next(s for s in seeded_states if s.maze_size == 7 and grid.decision_square(s.open_cells, s.cheese))


def test_maze_with_paths_and_trajectory(tmp_path: Path, small_state: MazeState) -> None:
    result = run_rollouts(ShortestPathPolicy("top_right"), [small_state],
                          config=RolloutConfig(progress=False, record_trajectories=True))
    fig, axes = plots.new_figure(ncols=2)
    plots.draw_maze(axes[0, 0], small_state, trajectory=result.episodes[0].trajectory, title="plain grid")
    from mazeinterp.core.hooks import render_states

    obs = render_states([small_state])[0]
    plots.draw_maze(axes[0, 1], small_state, obs, trajectory=result.episodes[0].trajectory)
    _assert_png(plots.save_figure(fig, tmp_path / "maze.png"))


def test_vector_field_of_a_planted_model(tmp_path: Path, small_state: MazeState) -> None:
    from mazeinterp.core.interventions import Scale
    from mazeinterp.analysis.vfield import field_difference, vector_field

    model = _planted_up_model()
    field = vector_field(model, small_state)
    assert len(field) == int(small_state.open_cells.sum()) - 1  # every open cell but the cheese's
    np.testing.assert_allclose(field.arrows, np.tile([-1.0, 0.0], (len(field), 1)), atol=1e-6)
    assert (field.most_likely_moves() == Move.UP).all()
    # scaling the logits to zero gives the uniform policy over 15 actions: no net displacement
    uniform = vector_field(model, small_state, [Scale("fc_policy_out", 0.0)])
    np.testing.assert_allclose(uniform.probs[0], [3 / 15, 1 / 15, 1 / 15, 3 / 15, 7 / 15], atol=1e-6)
    np.testing.assert_allclose(uniform.arrows, 0.0, atol=1e-6)
    diff = field_difference(field, uniform)
    np.testing.assert_allclose(diff.arrows, np.tile([1.0, 0.0], (len(diff), 1)), atol=1e-6)

    fig, axes = plots.new_figure(ncols=2)
    plots.draw_vector_field(axes[0, 0], field, paths=True, title="planted: always up")
    quiver = axes[0, 0].collections[-1]
    # plot coordinates: x = column, y = row (downwards) → an up arrow has U = 0 and V < 0
    np.testing.assert_allclose(quiver.U, 0.0, atol=1e-5)
    assert (np.asarray(quiver.V) < -1.0).all()
    plots.draw_field_difference(axes[0, 1], diff)
    assert (np.asarray(axes[0, 1].collections[-1].V) > 1.0).all()
    _assert_png(plots.save_figure(fig, tmp_path / "vfield.png"))


def test_channel_grid_and_heatmap(tmp_path: Path, small_state: MazeState) -> None:
    from mazeinterp.core.hooks import run_states_with_cache

    model = _planted_up_model()
    hook = "embedder.block2.res1.resadd_out"
    _, cache = run_states_with_cache(model, [small_state], [hook], stop_early=True)
    acts = cache[hook][0]
    fig = plots.plot_channel_grid(acts, title=hook)
    assert len(fig.axes) >= acts.shape[0]
    _assert_png(plots.save_figure(fig, tmp_path / "channels.png"))
    fig, axes = plots.new_figure()
    plots.draw_channel_heatmap(axes[0, 0], small_state, acts[3], title="channel 3")
    _assert_png(plots.save_figure(fig, tmp_path / "heatmap.png"))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        plots.plot_channel_grid(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        plots.draw_channel_heatmap(axes[0, 0], small_state, np.zeros((2, 4, 4)))


def test_outcome_bars(tmp_path: Path) -> None:
    from mazeinterp.maze.outcomes import Trap
    from mazeinterp.rollout import Episode

    def episodes(outcomes: str) -> list[Episode]:
        names = {"c": "cheese", "t": "top_right", "n": "neither"}
        return [Episode(index=i, level_seed=i, maze_size=9, cheese=(1, 1), has_decision_square=True,
                        decision_square=(2, 2), outcome=names[o], steps=5, start=(8, 0),
                        region_step=4 if o == "t" else None,
                        trap=Trap(((0, 0), (0, 1)), 0.9) if o == "n" else None)
                for i, o in enumerate(outcomes)]

    conditions = {"baseline": OutcomeSummary.of(episodes("cccctttn")),
                  "ablated": OutcomeSummary.of(episodes("cttttttn"))}
    fig, axes = plots.new_figure()
    plots.draw_outcome_bars(axes[0, 0], conditions, title="outcomes")
    heights = sorted(round(p.get_height(), 3) for p in axes[0, 0].patches)
    events = [0.375, 0.125, 0.75, 0.125]  # region first (the top-right episodes) and trapped, per condition
    assert heights == sorted([0.5, 0.375, 0.125, 0.125, 0.75, 0.125] + events)
    legend = [t.get_text() for t in axes[0, 0].get_legend().get_texts()]
    assert legend == ["cheese", "top_right", "neither", "top-right 5×5 first", "trapped"]
    # the legend stands beside the axes, so it covers no bar or interval
    fig.canvas.draw()
    box = axes[0, 0].get_legend().get_window_extent()
    assert box.x0 >= axes[0, 0].get_window_extent().x1
    fig, axes = plots.new_figure()
    plots.draw_outcome_bars(axes[0, 0], conditions, events=False)
    assert len(axes[0, 0].patches) == 6
    _assert_png(plots.save_figure(fig, tmp_path / "bars.png"))
    with pytest.raises(ValueError, match="at least one"):
        plots.draw_outcome_bars(axes[0, 0], {})


def test_crop_to_maze_shows_the_inner_maze_and_its_border() -> None:
    fig, axes = plots.new_figure()
    ax = axes[0, 0]
    ax.imshow(np.zeros((64, 64, 3)))
    plots.crop_to_maze(ax, maze_size=5, pad_cells=1.0)
    cell = 64 / 25
    # a 5×5 maze sits in world cells 10…14; one cell of border on each side: cells 9…15
    assert ax.get_xlim() == pytest.approx((9 * cell - 0.5, 16 * cell - 0.5))
    assert ax.get_ylim() == pytest.approx((16 * cell - 0.5, 9 * cell - 0.5))
def test_small_mazes_are_cropped_and_the_lines_are_named(seeded_states: list[MazeState]) -> None:
    small = next(s for s in seeded_states if s.maze_size == 3)
    fig, axes = plots.new_figure()
    ax = plots.draw_maze(axes[0, 0], small, trajectory=[small.mouse])
    # a 3×3 maze plus its ring of walls is 5 of the 25 world cells: 5 · 64/25 = 12.8 pixels wide
    assert ax.get_xlim()[1] - ax.get_xlim()[0] == pytest.approx(12.8)
    assert ax.get_ylim()[0] > ax.get_ylim()[1], "image orientation: row 0 at the top"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"path to top-right", "path to cheese", "trajectory", "cheese"} <= set(labels)
    # the cheese is ringed on its cell, whatever the wall texture around it
    ring = next(c for c in ax.collections if c.get_label() == "cheese")
    assert np.allclose(ring.get_offsets(), plots.cell_centre_xy([small.cheese], small.maze_size))
    # the trajectory's legend key shows on the white figure: its white line has a dark edge
    key = next(h for h, t in zip(ax.get_legend().legend_handles, labels) if t == "trajectory")
    import matplotlib.colors

    assert matplotlib.colors.to_hex(key.get_color()) == "#ffffff" and key.get_path_effects()
    edge = key.get_path_effects()[0]._gc["foreground"]
    assert sum(matplotlib.colors.to_rgb(edge)) < 0.5
    assert plots.maze_view_limits(25) == ((-0.5, 63.5), (63.5, -0.5))
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_channel_grid_has_a_colour_bar_and_the_maze_outline(seeded_states: list[MazeState]) -> None:
    state = seeded_states[0]
    fig = plots.plot_channel_grid(np.random.default_rng(0).normal(size=(4, 16, 16)), state=state)
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 1
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 4 and all(ax.collections for ax in maps), "each map carries the wall outline"
    import matplotlib.pyplot as plt

    plt.close(fig)


# ----- whole figures of results ---------------------------------------------------------


def _hand_rollout(outcomes: str) -> "RolloutResult":
    """Episodes with the given outcomes (c / t / n) on 9×9 mazes; the even ones have a decision square."""
    from mazeinterp.rollout import Episode, RolloutResult

    names = {"c": "cheese", "t": "top_right", "n": "neither"}
    episodes = tuple(Episode(index=i, level_seed=i, maze_size=9, cheese=(1, 1), has_decision_square=i % 2 == 0,
                             decision_square=(2, 2) if i % 2 == 0 else None, outcome=names[o], steps=5,
                             start=(8, 0)) for i, o in enumerate(outcomes))
    return RolloutResult(episodes, RolloutConfig())


def _bar_heights(ax, conditions: int, outcomes: int = 3) -> list[list[float]]:
    """Heights of the first ``outcomes`` bar groups, one list per outcome, in condition order."""
    heights = [round(p.get_height(), 3) for p in ax.patches]
    return [heights[j * conditions:(j + 1) * conditions] for j in range(outcomes)]


def test_comparison_outcomes_show_both_rollouts_on_all_mazes_and_decision_squares() -> None:
    from mazeinterp.rollout import Comparison

    comparison = Comparison(_hand_rollout("cccctttn"), _hand_rollout("cttttttn"))
    fig = plots.plot_comparison_outcomes(comparison, title="edit")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "baseline\nall\n(n=8)", "edited\nall\n(n=8)", "baseline\ndecision sq.\n(n=4)", "edited\ndecision sq.\n(n=4)"]
    # by hand: all 8 mazes, then the even ones (baseline c c t t, edited c t t t)
    assert _bar_heights(ax, 4) == [[0.5, 0.125, 0.5, 0.25], [0.375, 0.75, 0.5, 0.75], [0.125, 0.125, 0.0, 0.0]]
    assert ax.get_title() == "edit"


def test_rollout_outcomes_use_short_labels() -> None:
    fig = plots.plot_rollout_outcomes(_hand_rollout("cccctttn"))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:2] == ["all mazes\n(n=8)", "decision square\n(n=4)"]
    assert all("with decision square" not in label for label in labels)
    assert _bar_heights(ax, len(labels))[0][:2] == [0.5, 0.5] and ax.get_title() == "outcomes"


def test_trajectories_draw_at_most_eight_mazes_with_their_paths(seeded_states: list[MazeState]) -> None:
    from mazeinterp.rollout import Episode

    states = seeded_states[:10]
    episodes = [Episode(index=i, level_seed=s.level_seed, maze_size=s.maze_size, cheese=s.cheese,
                        has_decision_square=False, decision_square=None, outcome="neither", steps=i,
                        start=s.mouse, trajectory=(s.mouse,)) for i, s in enumerate(states)]
    fig = plots.plot_trajectories(episodes, states)
    drawn = [ax for ax in fig.axes if ax.get_title()]
    assert len(fig.axes) == 8 and len(drawn) == 8
    assert drawn[3].get_title() == f"level {states[3].level_seed}: neither in 3 steps"
    assert drawn[1].get_title() == f"level {states[1].level_seed}: neither in 1 step"
    line = next(l for l in drawn[3].get_lines() if l.get_label() == "trajectory")
    assert np.allclose(np.c_[line.get_xdata(), line.get_ydata()],
                       plots.cell_centre_xy([states[3].mouse], states[3].maze_size))
    fig = plots.plot_trajectories(episodes[:3], states[:3])
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="at least one episode"):
        plots.plot_trajectories([], [])


def test_vector_field_edit_has_one_or_three_panels(small_state: MazeState) -> None:
    from mazeinterp.analysis.vfield import VectorField

    cells = [(int(r), int(c)) for r, c in np.argwhere(small_state.open_cells)][:2]
    up = VectorField(small_state, cells, np.array([[0, 0, 1, 0, 0]] * 2, dtype=float))
    left = VectorField(small_state, cells, np.array([[1, 0, 0, 0, 0]] * 2, dtype=float))
    fig = plots.plot_vector_field_edit(up)
    assert [ax.get_title() for ax in fig.axes] == [f"level {small_state.level_seed}: policy"]
    fig = plots.plot_vector_field_edit(up, left, label="ablated")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    # left − up = (0, −1) − (−1, 0) = (1, −1) per cell: length √2
    assert titles[1:] == ["ablated", "difference (largest change 1.41 cell/step)"]


def test_regression_coefficients_are_bars_largest_on_top() -> None:
    from mazeinterp.analysis.stats import CheeseRegression

    regression = CheeseRegression(features=("a", "b", "c"), coefficients={"a": 0.5, "b": -2.0, "c": 1.0},
                                  intercept=0.0, accuracy=0.75, baseline_accuracy=0.6, n_train=30, n_test=10,
                                  n_dropped=0, cheese_rate=0.5, C=1.0, seed=0)
    ax = plots.plot_regression_coefficients(regression).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "c", "b"]  # bottom to top
    assert [round(p.get_width(), 3) for p in ax.patches] == [0.5, 1.0, -2.0]
    assert ax.get_title() == "held-out accuracy 0.75 vs baseline 0.60"
    ax = plots.plot_regression_coefficients(None, "only one class").axes[0]
    assert not ax.patches and "no regression:\nonly one class" in [t.get_text() for t in ax.texts]


def test_maze_and_channel_heatmap_figures(tmp_path: Path, small_state: MazeState) -> None:
    fig = plots.plot_maze(small_state, title="a maze")
    assert fig.axes[0].get_title() == "a maze"
    _assert_png(plots.save_figure(fig, tmp_path / "maze.png"))
    fig = plots.plot_channel_heatmap(small_state, np.eye(8), title="channel 3")
    assert fig.axes[0].get_title() == "channel 3" and len(fig.axes) == 2  # the map and its colour bar
    _assert_png(plots.save_figure(fig, tmp_path / "channel.png"))
