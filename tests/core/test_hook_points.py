"""The hook-point table and the checks of a user's hook point and channels."""

from __future__ import annotations

import pytest

from mazeinterp.analysis.channels import behaviour_attribution
from mazeinterp.cli.common import CliError, checked_layer
from mazeinterp.core.hook_points import (
    UnknownHookPointError,
    check_channels,
    check_hook_point,
    check_layer,
    check_pixels,
    hook_point_rows,
    hook_shape,
    unknown_hook_point,
)
from mazeinterp.core.interventions import ZeroAblate, validate
from mazeinterp.sweep.config import SweepConfig, SweepConfigError, conditions
from mazeinterp.core.model import ImpalaPolicy


@pytest.fixture(scope="module")
def policy() -> ImpalaPolicy:
    return ImpalaPolicy(scale=2)


def test_a_known_hook_point_gives_its_shape(policy: ImpalaPolicy) -> None:
    # scale 2: block widths 32/64/64; block 2 works at 16×16, relu3 at 8×8
    assert check_hook_point(policy, "embedder.block2.res1.resadd_out") == (64, 16, 16)
    assert check_hook_point(policy, "embedder.relu3_out", need_map=True) == (64, 8, 8)
    assert check_hook_point(policy, "fc_policy_out") == (15,)


def test_bad_hook_points_are_named(policy: ImpalaPolicy) -> None:
    with pytest.raises(ValueError, match=r"unknown hook point 'embedder\.block9_out'.*did you mean embedder\.block3_out"):
        check_hook_point(policy, "embedder.block9_out")
    with pytest.raises(ValueError) as error:
        check_hook_point(policy, "fc_policy_out", need_map=True)
    assert str(error.value) == "hook point 'fc_policy_out' has shape (15,); this needs a (C, H, W) map"


def test_channels_are_checked_against_the_layer_and_deduplicated() -> None:
    shape = (64, 8, 8)
    assert check_channels("embedder.relu3_out", shape, [5, 0, 63, 5, 0]) == [5, 0, 63]
    for bad in (64, -1):
        with pytest.raises(ValueError) as error:
            check_channels("embedder.relu3_out", shape, [1, bad, 70])
        assert str(error.value) == (f"channel {bad} is out of range for hook point 'embedder.relu3_out', "
                                    "which has 64 channels (0..63)")


def test_hook_point_rows_list_every_hook_point_in_forward_order(policy: ImpalaPolicy) -> None:
    rows = hook_point_rows(policy)
    assert [r["hook_point"] for r in rows] == list(policy.hook_points())
    by_name = {r["hook_point"]: r for r in rows}
    assert by_name["embedder.block1.conv_out"] == {"hook_point": "embedder.block1.conv_out", "shape": "32x64x64",
                                                   "channels": 32, "resolution": 64}
    assert by_name["embedder.fc_out"] == {"hook_point": "embedder.fc_out", "shape": "256", "channels": 256,
                                          "resolution": None}
    assert rows[-1]["hook_point"] in ("fc_policy_out", "fc_value_out")


def test_an_unknown_hook_point_is_both_a_key_error_and_a_value_error(policy: ImpalaPolicy) -> None:
    with pytest.raises(UnknownHookPointError) as error:
        hook_shape(policy.hook_points(), "embedder.relu3")
    assert isinstance(error.value, KeyError) and isinstance(error.value, ValueError)
    # str() is the message itself, not KeyError's quoted repr
    assert str(error.value).startswith("unknown hook point 'embedder.relu3' (")
    assert str(error.value).endswith("did you mean embedder.relu3_out, embedder.relufc_out, embedder_out, "
                                     "embedder.fc_out, embedder.block3_out?")
    assert "did you mean" not in str(unknown_hook_point("zzz", ["embedder.relu3_out"]))


def test_every_entry_point_gives_the_same_message_for_the_same_mistake(policy: ImpalaPolicy) -> None:
    """The model, the command line's check, interventions, channel finders and sweeps share one rule."""
    typo = "embedder.block2.res1.resad_out"
    with pytest.raises(UnknownHookPointError) as reference:
        policy.module_for_hook(typo)
    expected = str(reference.value)
    assert "did you mean embedder.block2.res1.resadd_out" in expected
    with pytest.raises(UnknownHookPointError) as via_check:
        check_hook_point(policy, typo)
    with pytest.raises(CliError) as via_cli:
        checked_layer(policy, typo, [0])
    with pytest.raises(UnknownHookPointError) as via_intervention:
        validate(policy, ZeroAblate(typo, channels=[0]))
    with pytest.raises(UnknownHookPointError) as via_channels:
        behaviour_attribution(policy, [], hook=typo)
    with pytest.raises(SweepConfigError) as via_sweep:
        conditions(SweepConfig(hooks=(typo,)), policy.hook_points())
    assert str(via_check.value) == str(via_cli.value) == expected
    assert str(via_intervention.value) == f"ZeroAblate({typo}, channels=[0]): {expected}"
    assert str(via_channels.value) == expected
    assert str(via_sweep.value) == f"hooks: {expected} (see `mazeinterp info`)"


def test_vectors_count_features_and_take_no_pixels() -> None:
    with pytest.raises(ValueError, match=r"^channel 15 is out of range for hook point 'fc_policy_out', "
                                         r"which has 15 features \(0\.\.14\)$"):
        check_channels("fc_policy_out", (15,), [15])
    with pytest.raises(ValueError, match="is a vector of 15 features; pixels only apply to"):
        check_pixels("fc_policy_out", (15,), [(0, 0)])


def test_pixels_must_lie_inside_the_maps() -> None:
    shape = (32, 16, 16)
    check_pixels("embedder.block2.res1.resadd_out", shape, [(0, 0), (15, 15), (3, 12)])
    for bad in ((16, 0), (0, 16), (-1, 3)):
        with pytest.raises(ValueError) as error:
            check_pixels("embedder.block2.res1.resadd_out", shape, [(1, 1), bad])
        assert str(error.value) == (f"pixel {bad} is out of range for hook point "
                                    "'embedder.block2.res1.resadd_out', whose maps are 16×16")


def test_hook_shape_takes_a_vector_unless_a_map_is_needed() -> None:
    shapes = {"fc_policy_out": (15,), "embedder.relu3_out": (32, 8, 8)}
    assert hook_shape(shapes, "fc_policy_out") == (15,)
    assert hook_shape(shapes, "embedder.relu3_out") == (32, 8, 8) == hook_shape(shapes, "embedder.relu3_out",
                                                                                 need_map=True)
    with pytest.raises(ValueError, match=r"hook point 'fc_policy_out' has shape \(15,\); this needs a \(C, H, W\) map"):
        hook_shape(shapes, "fc_policy_out", need_map=True)


class _OwnError(Exception):
    """An exception of a caller's own, for ``check_layer(error=...)``."""


def test_check_layer_gives_the_shape_and_the_channels_without_repeats(policy: ImpalaPolicy) -> None:
    # scale 2: relu3 is 64 × 8 × 8
    assert check_layer(policy, "embedder.relu3_out") == ((64, 8, 8), None)
    assert check_layer(policy, "embedder.relu3_out", [9, 63, 9, 0], need_map=True) == ((64, 8, 8), [9, 63, 0])
    assert check_layer(policy.hook_points(), "fc_policy_out", [14]) == ((15,), [14])
    assert check_layer(policy, "embedder.relu3_out", []) == ((64, 8, 8), [])


def test_check_layer_raises_its_own_errors_unless_given_one(policy: ImpalaPolicy) -> None:
    with pytest.raises(UnknownHookPointError, match=r"^unknown hook point 'embedder\.relu3'"):
        check_layer(policy, "embedder.relu3")
    with pytest.raises(ValueError, match=r"^hook point 'fc_value_out' has shape \(1,\); this needs a \(C, H, W\) map$"):
        check_layer(policy, "fc_value_out", need_map=True)
    with pytest.raises(ValueError, match=r"^channel 64 is out of range for hook point 'embedder\.relu3_out', "
                                         r"which has 64 channels \(0\.\.63\)$"):
        check_layer(policy, "embedder.relu3_out", [3, 64])
    # a type, or a function that adds context; the message is the same, the original exception is dropped
    for bad in (("embedder.relu3", None), ("fc_value_out", None), ("embedder.relu3_out", [-1])):
        with pytest.raises(ValueError) as plain:
            check_layer(policy, bad[0], bad[1], need_map=True)
        with pytest.raises(_OwnError) as own:
            check_layer(policy, bad[0], bad[1], need_map=True, error=_OwnError)
        assert str(own.value) == str(plain.value) and not isinstance(own.value, ValueError)
        assert own.value.__cause__ is None and own.value.__suppress_context__
        with pytest.raises(_OwnError) as wrapped:
            check_layer(policy, bad[0], bad[1], need_map=True, error=lambda m: _OwnError(f"layer: {m}!"))
        assert str(wrapped.value) == f"layer: {plain.value}!"


def test_every_entry_point_gives_the_same_message_for_a_channel_out_of_range(policy: ImpalaPolicy) -> None:
    hook = "embedder.relu3_out"
    expected = f"channel 70 is out of range for hook point '{hook}', which has 64 channels (0..63)"
    with pytest.raises(CliError) as via_cli:
        checked_layer(policy, hook, [1, 70], need_map=True)
    with pytest.raises(ValueError) as via_channels:
        behaviour_attribution(policy, [], hook=hook, channels=[1, 70])
    with pytest.raises(SweepConfigError) as via_sweep:
        conditions(SweepConfig(hooks=(hook,), channels=(1, 70)), policy.hook_points())
    assert str(via_cli.value) == str(via_channels.value) == expected
    assert str(via_sweep.value) == f"channels: {expected}"
