"""The hook-point table and the checks of a user's hook point and channels."""

from __future__ import annotations

import pytest

from mazeinterp.hook_points import check_channels, check_hook_point, hook_point_rows
from mazeinterp.model import ImpalaPolicy


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
    assert str(error.value) == "layer 'fc_policy_out' has shape (15,); this needs a (C, H, W) map layer"


def test_channels_are_checked_against_the_layer_and_deduplicated() -> None:
    shape = (64, 8, 8)
    assert check_channels("embedder.relu3_out", shape, [5, 0, 63, 5, 0]) == [5, 0, 63]
    for bad in (64, -1):
        with pytest.raises(ValueError) as error:
            check_channels("embedder.relu3_out", shape, [1, bad, 70])
        assert str(error.value) == (f"channel {bad} is out of range for layer 'embedder.relu3_out', "
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
