"""The progressive explorer: an edit answers at once with the mouse's numbers and a partial field, refining adds
cells nearest the edit first until the fields equal one library call bit for bit, a newer edit drops older
pending work, and the widget refines synchronously or in a thread that stops."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mazeinterp.core.hooks import run_states_with_cache
from mazeinterp.core.interventions import AddVector, ZeroAblate
from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.analysis.steering import DEFAULT_STEERING_HOOK, cheese_vector
from mazeinterp.analysis.vfield import field_difference, move_probs_for_states, vector_field
from mazeinterp.viz.widgets import Explorer, ExplorerWidget, InterventionSettings, draw_explorer, explore

HOOK = DEFAULT_STEERING_HOOK
SETTINGS = InterventionSettings(vector="cheese", ablate=(1,))


def _free_cells(state: MazeState) -> list[grid.Cell]:
    return [(int(r), int(c)) for r, c in np.argwhere(state.open_cells) if (r, c) not in (state.mouse, state.cheese)]


def _ivs(model, state: MazeState) -> list:
    """SETTINGS' interventions, built independently of the explorer."""
    return [ZeroAblate(HOOK, channels=[1]), AddVector(HOOK, cheese_vector(model, state, HOOK), -1.0)]


def _rows_of(field, cells) -> np.ndarray:
    return np.stack([field.prob_at(cell) for cell in cells]) if cells else np.zeros((0, 5))


def test_first_view_after_a_cheese_move_has_the_mouse_numbers_and_a_partial_field(model, state):
    ex = Explorer(model, state, settings=SETTINGS, progressive=True)
    cheese = _free_cells(state)[-1]
    view = ex.place_cheese(cheese)
    moved = view.state
    assert moved.cheese == cheese
    assert np.array_equal(view.mouse_probs, move_probs_for_states(model, [moved])[0])
    assert np.array_equal(view.edited_mouse_probs, move_probs_for_states(model, [moved], _ivs(model, moved))[0])
    _, cache = run_states_with_cache(model, [moved], [HOOK], interventions=_ivs(model, moved))
    assert np.array_equal(view.activation, cache[HOOK][0, 0].numpy().astype(np.float64))
    # a maze never seen: no field cell yet, every cell pending, nearest to the new cheese first
    assert len(view.field) == len(view.edited_field) == len(view.difference) == 0
    assert not view.complete and view.cells_done == 0
    assert sorted(view.pending) == sorted(vector_field(model, moved).cells) and view.n_cells == len(view.pending)
    distances = [(r - cheese[0]) ** 2 + (c - cheese[1]) ** 2 for r, c in view.pending]
    assert distances == sorted(distances) and distances[0] == 1
    assert ex.pending() == view.n_cells


@pytest.mark.parametrize("batch_size", [256, 9], ids=["one batch", "batches of 9: a 3-state last batch"])
def test_refining_to_completion_equals_one_library_call_exactly(model, state, batch_size):
    ex = Explorer(model, state, settings=SETTINGS, batch_size=batch_size, progressive=True)
    view = ex.place_cheese(_free_cells(state)[-1])
    moved = view.state
    plain = vector_field(model, moved, batch_size=batch_size)
    edited = vector_field(model, moved, _ivs(model, moved), batch_size=batch_size)
    steps = 0
    while not view.complete:
        before = view
        view = ex.refine(max_cells=3)  # smaller than a batch the backends treat alike
        steps += 1
        asked = set(before.field.cells) | set(before.pending[:3])
        if batch_size == 256:
            assert set(view.field.cells) == asked and view.cells_done == len(asked)
        else:  # a cell of the last one-call batch brings the whole batch along
            assert asked <= set(view.field.cells) and view.cells_done == len(view.field)
        # partial fields hold the final numbers of their cells
        assert np.array_equal(view.field.probs, _rows_of(plain, view.field.cells))
        assert np.array_equal(view.edited_field.probs, _rows_of(edited, view.edited_field.cells))
    assert steps <= -(-len(plain) // 3)
    assert view.field.cells == plain.cells and np.array_equal(view.field.probs, plain.probs)
    assert view.edited_field.cells == edited.cells and np.array_equal(view.edited_field.probs, edited.probs)
    assert np.array_equal(view.difference.probs, field_difference(plain, edited).probs)
    assert ex.refine() is view and ex.pending() == 0
    with pytest.raises(ValueError, match="max_cells must be at least 1"):
        ex.refine(max_cells=0)


def test_a_newer_edit_drops_older_pending_work(model, state):
    ex = Explorer(model, state, progressive=True)
    ex.finish()
    free = _free_cells(state)
    first = ex.place_cheese(free[-1])
    first = ex.refine(max_cells=8)
    assert len(first.field) == 8 and not first.complete
    start = ex.plain_cells
    view = ex.place_cheese(free[-2])
    assert view.state.cheese == free[-2] and len(view.field) == 0, "no cell of the older maze is shown"
    while not view.complete:
        view = ex.refine(max_cells=8)
        assert view.state.cheese == free[-2]
    assert ex.plain_cells - start == view.n_cells, "only the newer maze's cells were computed"
    assert np.array_equal(view.field.probs, vector_field(model, view.state).probs)
    # what the older edit computed stays cached for a return to its maze
    back = ex.place_cheese(free[-1])
    assert back.field.cells == first.field.cells and np.array_equal(back.field.probs, first.field.probs)


def test_partial_field_picture_has_arrows_on_computed_cells_only(model, state):
    from matplotlib.quiver import Quiver

    ex = Explorer(model, state, settings=SETTINGS, progressive=True)
    view = ex.refine(max_cells=6)
    fig = draw_explorer(view)
    policy_ax, edited_ax = fig.axes[0], fig.axes[1]
    quivers = [c for c in policy_ax.collections if isinstance(c, Quiver)]
    assert [q.N for q in quivers] == [6]
    assert policy_ax.get_title().endswith(f"(6/{view.n_cells} cells)")
    assert f"(6/{view.n_cells} cells)" in edited_ax.get_title()


def test_synchronous_widget_shows_the_complete_field(model, state):
    widget = ExplorerWidget(Explorer(model, state, settings=SETTINGS, progressive=True), background=False)
    try:
        cheese = _free_cells(state)[-1]
        widget.mode.value = "cheese"
        widget.cells[cheese[0]][cheese[1]].click()
        shown = widget.shown
        assert shown is widget.explorer.view and shown.complete and shown.state.cheese == cheese
        assert widget.progress.value == f"field: {shown.n_cells}/{shown.n_cells} cells"
        assert np.array_equal(shown.field.probs, vector_field(model, shown.state).probs)
        edited = vector_field(model, shown.state, _ivs(model, shown.state))
        assert np.array_equal(shown.edited_field.probs, edited.probs)
        assert widget.picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        widget.close()
    assert widget._worker is None


def test_background_widget_completes_and_its_thread_stops(model, state):
    widget = ExplorerWidget(Explorer(model, state, progressive=True), chunk_cells=4, redraw_s=0.0)
    try:
        assert widget.wait(timeout=60), "the first field did not complete"
        cheese = _free_cells(state)[-1]
        widget.mode.value = "cheese"
        widget.cells[cheese[0]][cheese[1]].click()
        assert widget.wait(timeout=60), "the field after the edit did not complete"
        shown = widget.shown
        assert shown is widget.explorer.view and shown.complete and shown.state.cheese == cheese
        assert widget.progress.value == f"field: {shown.n_cells}/{shown.n_cells} cells"
        assert np.array_equal(shown.field.probs, vector_field(model, shown.state).probs)
    finally:
        widget.close(timeout=10)
    assert not widget._worker.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "explorer-refine"]


def test_explore_makes_a_progressive_background_widget(model, state):
    widget = explore(model, state, background=False)
    try:
        assert widget.explorer.progressive and widget._worker is None and widget.shown.complete
    finally:
        widget.close()


# ---------------------------------------------------------------------- the widget follows its explorer


def test_explorer_tells_its_listeners_of_each_change_outside_its_lock(model, state):
    ex = Explorer(model, state, progressive=True)
    heard: list[tuple[int, bool, bool]] = []

    def listener(view, edited):
        # another thread can take the explorer's lock: the listener is not called under it
        other = threading.Thread(target=ex.pending)
        other.start()
        other.join(timeout=10)
        heard.append((view.revision, edited, other.is_alive()))

    ex.add_listener(listener)
    first = ex.set_interventions(vector="cheese")
    ex.refine(max_cells=4)
    with pytest.raises(ValueError, match="it is a wall"):
        ex.place_cheese(tuple(int(v) for v in np.argwhere(~state.open_cells)[0]))
    ex.finish()
    ex.finish()  # already complete: no change, nothing told
    ex.remove_listener(listener)
    ex.show(channel=2)
    assert first.revision == 1 and ex.revision == 2
    assert heard == [(1, True, False), (1, False, False), (1, False, False)]


def test_widget_follows_edits_made_on_its_explorer_by_code(model, state):
    widget = ExplorerWidget(Explorer(model, state, progressive=True), background=False)
    try:
        ex, cell = widget.explorer, _free_cells(state)[0]
        ex.set_interventions(vector="cheese", coefficient=-4.5, ablate=(5, 3), clamp_channel=6, clamp_cell=cell,
                             clamp_value=2.0)
        ex.show(hook="embedder.relu3_out", channel=30)
        ex.place_mouse(_free_cells(state)[1])
        assert (widget.vector.value, widget.coefficient.value, widget.ablate.value) == ("cheese", -4.5, "3 5")
        assert widget.coefficient.min <= -4.5, "the slider's range grows to show the value"
        assert (widget.clamp_channel.value, widget.clamp_value.value) == ("6", 2.0)
        assert (widget.hook.value, widget.channel.value, widget.channel.max) == ("embedder.relu3_out", 30, 31)
        assert f"mouse at {_free_cells(state)[1]}" in widget.probabilities.value
        assert widget.cells[cell[0]][cell[1]].style.button_color == "#d62728"
        shown = widget.shown
        assert shown is ex.view and shown.complete and shown.state.mouse == _free_cells(state)[1]
        assert ex.revision == 3, "setting the controls to the explorer's values made no edit of its own"
        # a control the user sets after that starts from the explorer's state
        widget.coefficient.value = -1.0
        assert ex.settings.ablate == (3, 5) and ex.settings.coefficient == -1.0 and ex.settings.clamps
    finally:
        widget.close()


def test_a_refused_control_value_goes_back_to_the_explorers(model, state):
    widget = ExplorerWidget(Explorer(model, state.without_cheese(), progressive=True), background=False)
    try:
        widget.vector.value = "cheese"
        assert "needs a maze with its cheese" in widget.status.value
        assert widget.vector.value is None and widget.explorer.settings.vector is None
        widget.ablate.value = "3, seven"
        assert "integers" in widget.status.value and widget.ablate.value == ""
    finally:
        widget.close()


def test_background_widget_draws_edits_and_refinements_made_by_code(model, state):
    """A notebook cell that edits the explorer and finishes it itself while the widget's thread works (Run All)."""
    widget = ExplorerWidget(Explorer(model, state, progressive=True), chunk_cells=4, redraw_s=0.0)
    try:
        ex = widget.explorer
        ex.set_interventions(vector="cheese")
        ex.show(channel=3)
        view = ex.finish()
        assert widget.wait(timeout=60), f"the picture did not follow: {widget.progress.value}"
        assert widget.shown is view and view.settings.vector == "cheese" and view.channel == 3
        assert widget.progress.value == f"field: {view.n_cells}/{view.n_cells} cells"
        assert f"field {view.n_cells}/{view.n_cells} cells" in widget.caption.value
        assert widget.vector.value == "cheese" and widget.channel.value == 3
    finally:
        widget.close(timeout=10)


def test_the_explorer_picture_is_not_on_pyplots_figure_list(model, state):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = draw_explorer(Explorer(model, state).view)
    assert plt.get_fignums() == before and len(fig.axes) >= 4
