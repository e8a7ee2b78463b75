"""The explorer: every number it shows equals the direct library call; edits recompute only what they change;
the widget's handlers (clicks, sliders, text boxes) drive it, and bad input changes nothing."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from mazeinterp.core.hooks import run_states_with_cache
from mazeinterp.core.interventions import AddVector, ZeroAblate
from mazeinterp.maze import grid
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import MOVES
from mazeinterp.analysis.steering import DEFAULT_STEERING_HOOK, cheese_vector, retarget, top_right_vector
from mazeinterp.analysis.vfield import field_difference, move_probs_for_states, vector_field
from mazeinterp.viz.widgets import Explorer, ExplorerWidget, InterventionSettings, probability_table

HOOK = DEFAULT_STEERING_HOOK
TOL = 1e-6


def _free_cells(state: MazeState) -> list[grid.Cell]:
    """Open cells other than the mouse's and the cheese's."""
    return [(int(r), int(c)) for r, c in np.argwhere(state.open_cells) if (r, c) not in (state.mouse, state.cheese)]


def _assert_view_matches_library(model, view, expected_ivs) -> None:
    """Every number of ``view`` against direct calls with independently built interventions."""
    state = view.state
    assert np.allclose(view.field.probs, vector_field(model, state).probs, atol=TOL)
    assert np.allclose(view.mouse_probs, move_probs_for_states(model, [state])[0], atol=TOL)
    _, cache = run_states_with_cache(model, [state], [view.hook], interventions=expected_ivs)
    assert np.allclose(view.activation, cache[view.hook][0, view.channel].numpy(), atol=TOL)
    if not expected_ivs:
        assert view.edited_field is None and view.difference is None and view.edited_mouse_probs is None
        return
    edited = vector_field(model, state, expected_ivs)
    assert view.edited_field.cells == edited.cells
    assert np.allclose(view.edited_field.probs, edited.probs, atol=TOL)
    assert np.allclose(view.difference.probs, field_difference(vector_field(model, state), edited).probs, atol=TOL)
    assert np.allclose(view.edited_mouse_probs, move_probs_for_states(model, [state], expected_ivs)[0], atol=TOL)


def test_plain_view_equals_library_calls(model, state):
    view = Explorer(model, state, hook="embedder.relu3_out", channel=5).view
    _assert_view_matches_library(model, view, [])
    assert view.activation.shape == (8, 8)


def test_intervened_view_equals_library_calls(model, state):
    ex = Explorer(model, state, hook="embedder.block1.res2.resadd_out", channel=3)
    free = _free_cells(state)
    view = ex.set_interventions(ablate=(2, 9), vector="cheese", coefficient=-2.5, clamp_channel=4,
                                clamp_cell=free[0], clamp_value=7.0)
    expected = [ZeroAblate(HOOK, channels=[2, 9]), AddVector(HOOK, cheese_vector(model, state, HOOK), -2.5),
                retarget([4], free[0], state.maze_size, 7.0, HOOK)]
    _assert_view_matches_library(model, view, expected)
    # the edit is big enough to matter: the fields differ
    assert np.abs(view.difference.probs).max() > 1e-4

    view = ex.set_interventions(ablate=(), vector="top_right", coefficient=1.5, clamp_channel=None)
    _assert_view_matches_library(model, view, [AddVector(HOOK, top_right_vector(model, state, HOOK), 1.5)])


def test_maze_edits_equal_library_calls(model, state):
    ex = Explorer(model, state, settings=InterventionSettings(vector="cheese"))
    free = _free_cells(state)
    view = ex.place_cheese(free[-1])
    assert view.state.cheese == free[-1]
    _assert_view_matches_library(model, view, [AddVector(HOOK, cheese_vector(model, view.state, HOOK), -1.0)])
    view = ex.place_mouse(free[0])
    assert view.state.mouse == free[0]
    _assert_view_matches_library(model, view, [AddVector(HOOK, cheese_vector(model, view.state, HOOK), -1.0)])
    wall = tuple(int(v) for v in np.argwhere(~state.open_cells)[0])
    view = ex.toggle_wall(wall)
    assert view.state.open_cells[wall]
    _assert_view_matches_library(model, view, [AddVector(HOOK, cheese_vector(model, view.state, HOOK), -1.0)])
    assert not ex.toggle_wall(wall).state.open_cells[wall]


def test_hook_the_network_cannot_resume_from_uses_whole_passes(model, state):
    hook = "embedder.block2.res1.conv1_out"  # inside a residual branch
    view = Explorer(model, state, settings=InterventionSettings(hook=hook, ablate=(0, 1, 2))).view
    _assert_view_matches_library(model, view, [ZeroAblate(hook, channels=[0, 1, 2])])


def test_edits_recompute_only_what_they_change(model, state):
    ex = Explorer(model, state, settings=InterventionSettings(vector="cheese"))
    k = ex.view.n_cells
    counts = lambda: (ex.plain_cells, ex.edited_cells, ex.forward_passes)  # noqa: E731
    assert counts() == (k, k, 2), "each field cell once, a plain and an edited pass at the mouse"
    ex.show(channel=7)
    ex.show(hook="embedder.relu3_out", channel=2)
    assert counts() == (k, k, 2), "watching another channel or layer reuses the forward pass"
    ex.place_mouse(_free_cells(state)[0])
    assert counts() == (k, k, 4), "moving the mouse reuses both vector fields"
    ex.set_interventions(coefficient=-3.0)
    assert counts() == (k, 2 * k, 5), "a new coefficient recomputes the edited field only"
    ex.set_interventions(coefficient=-1.0)
    assert counts() == (k, 2 * k, 5), "going back to settings seen before reuses their field and forward pass"
    ex.place_cheese(_free_cells(ex.state)[-1])
    assert counts() == (2 * k, 3 * k, 7), "moving the cheese changes the maze: both fields again"


def test_bad_edits_raise_and_change_nothing(model, state):
    ex = Explorer(model, state)
    before = ex.view
    wall = tuple(int(v) for v in np.argwhere(~state.open_cells)[0])
    with pytest.raises(ValueError, match="the mouse stands there"):
        ex.toggle_wall(state.mouse)
    with pytest.raises(ValueError, match="it is a wall"):
        ex.place_cheese(wall)
    with pytest.raises(ValueError, match="outside the 7×7"):
        ex.toggle_wall((7, 0))
    with pytest.raises(ValueError, match="channel 32 is out of range"):
        ex.set_interventions(ablate=(32,))
    with pytest.raises(ValueError, match="channel 99 is out of range for hook point"):
        ex.show(channel=99)
    with pytest.raises(ValueError, match="needs a \\(C, H, W\\) map"):
        ex.show(hook="embedder.fc_out")
    with pytest.raises(KeyError, match="did you mean"):
        ex.set_interventions(hook="embedder.block2.res1.resad_out")
    with pytest.raises(ValueError, match="unknown click mode"):
        ex.click((0, 0), "teleport")
    assert ex.view is before and ex.state == before.state
    assert ex.settings == InterventionSettings()


def test_probability_table_shows_the_view_numbers(model, state):
    # a huge clamp before the fc layers changes the probabilities visibly
    settings = InterventionSettings(hook="embedder.relu3_out", clamp_channel=0, clamp_cell=_free_cells(state)[0],
                                    clamp_value=500.0)
    view = Explorer(model, state, settings=settings).view
    assert np.abs(view.edited_mouse_probs - view.mouse_probs).max() > 0.005  # ten times the tolerance below
    table = probability_table(view)
    assert re.findall(r"<th>(\w+)</th>", table) == list(MOVES)
    rows = {name: [float(v) for v in re.findall(r"<td>([-+0-9.]+)</td>", cells)]
            for name, cells in re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", table)}
    assert rows.keys() == {"policy", "edited", "change"}
    assert np.allclose(rows["policy"], view.mouse_probs, atol=5e-4)
    assert np.allclose(rows["edited"], view.edited_mouse_probs, atol=5e-4)
    assert np.allclose(rows["change"], view.edited_mouse_probs - view.mouse_probs, atol=5e-4)


# ---------------------------------------------------------------------- the widget, driven through its handlers


@pytest.fixture()
def widget(model, state) -> ExplorerWidget:
    widget = ExplorerWidget(Explorer(model, state), background=False)
    yield widget
    widget.close()


def test_clicks_move_cheese_and_mouse_and_toggle_walls(model, widget, state):
    free = _free_cells(state)
    widget.mode.value = "cheese"
    widget.cells[free[0][0]][free[0][1]].click()
    assert widget.explorer.state.cheese == free[0]
    assert widget.cells[free[0][0]][free[0][1]].style.button_color == "#f2c200"
    widget.mode.value = "mouse"
    widget.cells[free[1][0]][free[1][1]].click()
    assert widget.explorer.state.mouse == free[1]
    view = widget.explorer.view
    assert np.allclose(view.mouse_probs, move_probs_for_states(model, [view.state])[0], atol=TOL)
    assert f"<td>{view.mouse_probs[0]:.3f}</td>" in widget.probabilities.value
    widget.mode.value = "wall"
    widget.cells[free[2][0]][free[2][1]].click()
    assert not widget.explorer.state.open_cells[free[2]]
    assert widget.picture.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_sliders_and_text_boxes_set_interventions(model, widget, state):
    widget.vector.value = "cheese"
    widget.coefficient.value = -2.0
    widget.ablate.value = "3, 5"
    widget.clamp_channel.value = "6"
    widget.mode.value = "clamp"
    target = _free_cells(state)[0]
    widget.cells[target[0]][target[1]].click()
    widget.clamp_value.value = 4.0
    assert widget.cells[target[0]][target[1]].style.button_color == "#d62728"
    view = widget.explorer.view
    assert view.settings == InterventionSettings(ablate=(3, 5), vector="cheese", coefficient=-2.0, clamp_channel=6,
                                                 clamp_cell=target, clamp_value=4.0)
    expected = [ZeroAblate(HOOK, channels=[3, 5]), AddVector(HOOK, cheese_vector(model, state, HOOK), -2.0),
                retarget([6], target, state.maze_size, 4.0, HOOK)]
    _assert_view_matches_library(model, view, expected)
    widget.clear_clamp.click()
    assert widget.explorer.settings.clamp_cell is None


def test_watched_layer_and_channel(model, widget, state):
    widget.hook.value = "embedder.relu3_out"
    widget.channel.value = 30
    view = widget.explorer.view
    assert (view.hook, view.channel) == ("embedder.relu3_out", 30)
    widget.hook.value = "embedder.block1.conv_out"  # 16 channels: channel 30 does not exist there
    assert widget.channel.max == 15 and widget.explorer.channel == 0
    _, cache = run_states_with_cache(model, [state], ["embedder.block1.conv_out"])
    assert np.allclose(widget.explorer.view.activation, cache["embedder.block1.conv_out"][0, 0].numpy(), atol=TOL)


def test_bad_input_shows_in_status_and_changes_nothing(widget, state):
    before = widget.explorer.view
    widget.ablate.value = "3, seven"
    assert "integers" in widget.status.value and widget.explorer.view is before
    widget.ablate.value = "300"
    assert "channel 300 is out of range" in widget.status.value and widget.explorer.view is before
    widget.mode.value = "wall"
    widget.cells[state.mouse[0]][state.mouse[1]].click()
    assert "mouse stands there" in widget.status.value and widget.explorer.view is before
    widget.ablate.value = "1"
    assert widget.status.value == "" and widget.explorer.settings.ablate == (1,)


def test_cheese_vector_without_cheese_is_refused(model, state):
    with pytest.raises(ValueError, match="needs a maze with its cheese"):
        Explorer(model, state.without_cheese(), settings=InterventionSettings(vector="cheese"))


def test_settings_label():
    from mazeinterp.viz.widgets import settings_label

    assert settings_label(InterventionSettings()) == "no intervention"
    label = settings_label(InterventionSettings(ablate=(7, 3), vector="top_right", coefficient=2, clamp_channel=4,
                                                clamp_cell=(1, 2)))
    assert label == "top-right vector ×2; ablate [3, 7]; clamp 4 at (1, 2) = 5.5"


def test_settings_are_normalised():
    s = InterventionSettings(ablate=[5, 2, 5], coefficient=1, clamp_cell=(np.int64(1), 2))
    assert s.ablate == (2, 5) and s.coefficient == 1.0 and s.clamp_cell == (1, 2) and not s.clamps
    with pytest.raises(ValueError, match="vector must be"):
        InterventionSettings(vector="cheeese")


def test_model_weights_are_not_touched(model, state):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Explorer(model, state, settings=InterventionSettings(vector="cheese", ablate=(1,)))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_picture_is_sharp_on_a_high_density_display(widget):
    import io

    from PIL import Image

    from mazeinterp.viz.widgets import PICTURE_DPI, draw_explorer, figure_png, picture_css_width

    png = Image.open(io.BytesIO(figure_png(draw_explorer(widget.explorer.view))))
    # drawn at twice the pixels of the CSS size it is shown at
    assert picture_css_width() == round(2 * 3.6 * 96) == 691
    assert png.size[0] == round(2 * 3.6 * PICTURE_DPI) >= 2 * picture_css_width()
    assert widget.picture.layout.width == "691px"
    assert Image.open(io.BytesIO(widget.picture.value)).size == png.size
