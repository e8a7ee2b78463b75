"""Non-finite numbers never become results: interventions refuse them when made, and every forward pass that
feeds a decision refuses logits with NaN or inf, naming the checkpoint and the interventions."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mazeinterp.core.finite import FLOAT32_MAX, NonFiniteOutputError, check_logits, finite_number
from mazeinterp.runtime.values import check_positive_int
from mazeinterp.core.interventions import AddVector, Clamp, MeanAblate, Patch, ResampleAblate, Scale
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.rollout import RolloutConfig, run_rollouts

HOOK = "embedder.block2.res1.resadd_out"  # (32, 16, 16) at scale 1
# every hidden unit set to 1e38 overflows logits whose weights are all 1: 256 · 1e38 > float32's largest
OVERFLOW = Clamp("embedder.relufc_out", 1e38)


@pytest.fixture(scope="module")
def ones_policy() -> ImpalaPolicy:
    """A scale-1 policy whose policy head sums the hidden units (every weight 1, bias 0)."""
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=1).eval()
    with torch.no_grad():
        model.fc_policy.weight.fill_(1.0)
        model.fc_policy.bias.zero_()
    model.source = Path("ones.pt")
    return model


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e308, -4e38])
def test_number_interventions_refuse_non_finite_values(bad: float) -> None:
    with pytest.raises(ValueError, match="factor must be a finite number"):
        Scale(HOOK, bad)
    with pytest.raises(ValueError, match="value must be a finite number"):
        Clamp(HOOK, bad)
    with pytest.raises(ValueError, match="coefficient must be a finite number"):
        AddVector(HOOK, torch.ones(32), bad)


def test_finite_numbers_pass_unchanged() -> None:
    assert finite_number(-1, "c") == -1.0 and finite_number(np.float64(2.5), "c") == 2.5
    assert finite_number(FLOAT32_MAX, "c") == FLOAT32_MAX
    assert Scale(HOOK, 1e30).factor == 1e30 and Clamp(HOOK, -5.5).value == -5.5
    with pytest.raises(TypeError, match="factor must be a number, got 'x'"):
        Scale(HOOK, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_tensor_interventions_refuse_non_finite_entries(bad: float) -> None:
    t = torch.zeros(32, 16, 16)
    t[3, 4, 5] = bad
    with pytest.raises(ValueError, match=r"vector holds 1 NaN or inf value\(s\) of 8192"):
        AddVector(HOOK, t)
    with pytest.raises(ValueError, match="mean holds 1 NaN or inf"):
        MeanAblate(HOOK, t)
    with pytest.raises(ValueError, match="source holds 1 NaN or inf"):
        Patch(HOOK, t)
    with pytest.raises(ValueError, match="sources holds 1 NaN or inf"):
        ResampleAblate(HOOK, t[None])
    with pytest.raises(ValueError, match="value holds 1 NaN or inf"):
        Clamp(HOOK, t.numpy())


def test_check_logits_names_the_checkpoint_and_the_interventions(ones_policy: ImpalaPolicy) -> None:
    good = torch.zeros(3, 15)
    assert check_logits(good, ones_policy) is good
    scripted = torch.zeros(3, 15)
    scripted[0, 1:] = -math.inf  # impossible actions beside a finite maximum: a hand-written policy's logits
    assert check_logits(scripted, ones_policy, impossible_actions=True) is scripted
    with pytest.raises(NonFiniteOutputError, match="in 1 of 3 input"):
        check_logits(scripted, ones_policy)  # from a network, -inf is an overflow
    for row in (torch.full((1, 15), -math.inf), torch.full((1, 15), math.inf)):
        with pytest.raises(NonFiniteOutputError, match="in 1 of 1 input"):
            check_logits(row, ones_policy, impossible_actions=True)
    bad = torch.zeros(3, 15)
    bad[1, 4] = math.nan
    bad[2, 0] = math.inf
    with pytest.raises(NonFiniteOutputError,
                       match=r"NaN or inf in 2 of 3 input\(s\) \(checkpoint ones.pt with Scale\(fc_value_out, "
                             r"factor=2.0\)\)"):
        check_logits(bad, ones_policy, [Scale("fc_value_out", 2.0)])
    with pytest.raises(NonFiniteOutputError, match="an unsaved ImpalaPolicy with no interventions"):
        check_logits(bad, ImpalaPolicy(scale=1))


def test_rollouts_refuse_overflowing_interventions(ones_policy: ImpalaPolicy) -> None:
    with pytest.raises(NonFiniteOutputError, match=r"checkpoint ones.pt with Clamp\(embedder.relufc_out, value=1e\+38"):
        run_rollouts(ones_policy, [0, 1], [OVERFLOW], RolloutConfig(max_steps=5, progress=False))


def test_rollouts_refuse_weights_that_overflow(ones_policy: ImpalaPolicy) -> None:
    broken = ImpalaPolicy(scale=1).eval()
    broken.load_state_dict(ones_policy.state_dict())
    with torch.no_grad():
        broken.embedder.fc.weight.zero_()
        broken.embedder.fc.bias.fill_(1.0)
        broken.fc_policy.weight.fill_(3e38)  # finite weights, infinite logits
    with pytest.raises(NonFiniteOutputError, match="unsaved ImpalaPolicy with no interventions"):
        run_rollouts(broken, [0], config=RolloutConfig(max_steps=5, progress=False, greedy=True))


def test_vector_fields_and_exact_outcomes_refuse_non_finite_logits(ones_policy: ImpalaPolicy,
                                                                   seeded_states: list[MazeState]) -> None:
    from mazeinterp.analysis.vfield import move_probs_for_states, outcome_probabilities, vector_field

    state = seeded_states[0]
    with pytest.raises(NonFiniteOutputError, match="ones.pt with Clamp"):
        move_probs_for_states(ones_policy, [state], [OVERFLOW], progress=False)
    with pytest.raises(NonFiniteOutputError, match="ones.pt"):
        vector_field(ones_policy, state, [OVERFLOW])
    with pytest.raises(NonFiniteOutputError, match="ones.pt"):
        outcome_probabilities(ones_policy, [state], [OVERFLOW], progress=False)


def test_the_explorer_refuses_non_finite_logits_and_huge_coefficients(ones_policy: ImpalaPolicy,
                                                                      seeded_states: list[MazeState]) -> None:
    from mazeinterp.viz.explorer import Explorer, InterventionSettings

    state = next(s for s in seeded_states if s.maze_size <= 7)
    explorer = Explorer(ones_policy, state, hook=HOOK)
    before = explorer.view
    for bad in (math.nan, 1e308, math.inf):
        with pytest.raises(ValueError, match="coefficient must be a finite number"):
            explorer.set_interventions(vector="cheese", coefficient=bad)
        with pytest.raises(ValueError, match="clamp_value must be a finite number"):
            InterventionSettings(clamp_value=bad)
    assert explorer.view is before
    huge = ImpalaPolicy(scale=1).eval()
    huge.load_state_dict(ones_policy.state_dict())
    with torch.no_grad():
        huge.embedder.fc.weight.zero_()
        huge.embedder.fc.bias.fill_(1e37)  # every hidden unit 1e37: the logits sum to inf
    with pytest.raises(NonFiniteOutputError, match="unsaved ImpalaPolicy"):
        Explorer(huge, state)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_the_explorer_refuses_a_batch_size_that_is_not_a_positive_int(model, seeded_states, batch_size) -> None:
    from mazeinterp.viz.explorer import Explorer

    with pytest.raises(ValueError, match=f"Explorer: batch_size must be a positive int, got {batch_size!r}"):
        Explorer(model, seeded_states[0], batch_size=batch_size)


def test_channel_tables_refuse_non_finite_logits(ones_policy: ImpalaPolicy, seeded_states: list[MazeState]) -> None:
    from mazeinterp.analysis.channels import behaviour_attribution, directional_channels

    huge = ImpalaPolicy(scale=1).eval()
    huge.load_state_dict(ones_policy.state_dict())
    with torch.no_grad():
        huge.embedder.fc.weight.zero_()
        huge.embedder.fc.bias.fill_(1e37)
    with pytest.raises(NonFiniteOutputError, match="unsaved ImpalaPolicy"):
        behaviour_attribution(huge, seeded_states[:4], HOOK, channels=[0, 1], progress=False)
    with pytest.raises(NonFiniteOutputError, match="unsaved ImpalaPolicy"):
        directional_channels(huge, seeded_states[:4], progress=False)


def test_the_widget_shows_a_non_finite_clamp_value_as_an_error_and_changes_nothing(model, seeded_states) -> None:
    pytest.importorskip("ipywidgets")
    from mazeinterp.viz.explorer import Explorer
    from mazeinterp.viz.widgets import ExplorerWidget

    state = next(s for s in seeded_states if s.maze_size <= 7)
    widget = ExplorerWidget(Explorer(model, state), background=False)
    try:
        before = widget.explorer.view
        for bad in (1e308, math.nan):
            widget.clamp_value.value = bad
            assert "clamp_value must be a finite number" in widget.status.value
            assert widget.explorer.view is before
    finally:
        widget.close()


def test_rollouts_refuse_a_network_logit_of_minus_inf_beside_finite_ones(ones_policy: ImpalaPolicy) -> None:
    # what an overflowing edit of the shipped agent gave: some logits -inf, the rest finite
    model = ImpalaPolicy(scale=1).eval()
    model.load_state_dict(ones_policy.state_dict())
    with torch.no_grad():
        model.fc_policy.weight.zero_()
        model.fc_policy.weight[0].fill_(-1.0)  # action 0: -(sum of hidden units) = -inf under OVERFLOW
    model.source = Path("minus.pt")
    with pytest.raises(NonFiniteOutputError, match="in 1 of 1 input.*minus.pt with Clamp"):
        run_rollouts(model, [0], [OVERFLOW], RolloutConfig(max_steps=5, progress=False))


def test_one_positive_int_check_for_every_setting() -> None:
    assert check_positive_int(1, "n") == 1
    assert check_positive_int(np.int64(7), "n") == 7 and isinstance(check_positive_int(np.int64(7), "n"), np.int64)
    assert check_positive_int(None, "threads", or_none=True) is None
    for bad in (0, -3, 2.0, 1.5, True, "4", None, np.float64(3.0)):
        with pytest.raises(ValueError, match=rf"^scale must be a positive int, got {re.escape(repr(bad))}$"):
            check_positive_int(bad, "scale")
    with pytest.raises(ValueError, match=r"^threads must be a positive int or None, got 0$"):
        check_positive_int(0, "threads", or_none=True)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ImpalaPolicy(scale=0), "scale must be a positive int, got 0"),
    (lambda: ImpalaPolicy(scale=1, num_actions=True), "num_actions must be a positive int, got True"),
    (lambda: RolloutConfig(batch_size=0), "RolloutConfig.batch_size must be a positive int, got 0"),
    (lambda: RolloutConfig(region_size=-1), "RolloutConfig.region_size must be a positive int, got -1"),
    (lambda: RolloutConfig(cheese_region=0), "RolloutConfig.cheese_region must be a positive int or None, got 0"),
    (lambda: RolloutConfig(threads=2.0), "RolloutConfig.threads must be a positive int or None, got 2.0"),
])
def test_settings_share_the_positive_int_message(make, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()
    assert ImpalaPolicy(scale=np.int64(1)).scale == 1 and type(ImpalaPolicy(scale=np.int64(1)).scale) is int
