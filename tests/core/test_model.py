"""Tests of mazeinterp.core.model: architecture, hook points, observation conversion, action helpers."""

from __future__ import annotations

import fnmatch
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import mazeinterp.core.model as model_module
from mazeinterp.core.model import (
    ACTION_TO_MOVE,
    MOVE_DELTAS,
    MOVE_TO_ACTION,
    MOVES,
    ImpalaPolicy,
    Move,
    actions_to_moves,
    count_parameters,
    move_probs,
    obs_to_tensor,
)


@pytest.fixture(scope="module")
def policy1(model: ImpalaPolicy) -> ImpalaPolicy:
    """The shared tiny model (conftest's ``model``: scale 1, seed 0, eval mode), named by its scale here."""
    return model


@pytest.fixture(scope="module")
def policy4() -> ImpalaPolicy:
    torch.manual_seed(0)
    return ImpalaPolicy(scale=4).eval()


def expected_leaf_shapes(scale: int) -> dict[str, tuple[int, ...]]:
    """Hook points of every leaf op and their per-example shapes, written out by hand."""
    widths = (16 * scale, 32 * scale, 32 * scale)
    sizes = (64, 32, 16)
    shapes: dict[str, tuple[int, ...]] = {}
    for block, (c, size) in enumerate(zip(widths, sizes), start=1):
        p = f"embedder.block{block}."
        shapes[p + "conv_out"] = (c, size, size)
        shapes[p + "maxpool_out"] = (c, size // 2, size // 2)
        for res in (1, 2):
            for op in ("relu1", "conv1", "relu2", "conv2", "resadd"):
                shapes[f"{p}res{res}.{op}_out"] = (c, size // 2, size // 2)
    shapes["embedder.relu3_out"] = (widths[2], 8, 8)
    shapes["embedder.flatten_out"] = (widths[2] * 64,)
    shapes["embedder.fc_out"] = (256,)
    shapes["embedder.relufc_out"] = (256,)
    shapes["fc_policy_out"] = (15,)
    shapes["fc_value_out"] = (1,)
    assert len(shapes) == 42
    return shapes


@pytest.mark.parametrize("scale", [0, -1, 1.5, "4", True, None])
def test_scale_must_be_positive_int(scale: object) -> None:
    with pytest.raises(ValueError, match="scale"):
        ImpalaPolicy(scale=scale)  # type: ignore[arg-type]


def test_forward_shapes(policy1: ImpalaPolicy) -> None:
    logits, value = policy1(torch.rand(3, 3, 64, 64))
    assert logits.shape == (3, 15)
    assert value.shape == (3,)
    assert policy1.scale == 1


@pytest.mark.parametrize(
    "x",
    [torch.zeros(2, 64, 64, 3), torch.zeros(2, 3, 64, 64, dtype=torch.uint8), torch.zeros(3, 64, 64)],
    ids=["nhwc", "uint8", "unbatched"],
)
def test_forward_rejects_raw_observations(policy1: ImpalaPolicy, x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="obs_to_tensor"):
        policy1(x)


def test_parameter_count() -> None:
    assert count_parameters(ImpalaPolicy(scale=4)) == 3_653_136
    assert count_parameters(ImpalaPolicy(scale=1)) == 626_256


def test_state_dict_keys_follow_published_names(policy1: ImpalaPolicy) -> None:
    keys = set(policy1.state_dict())
    assert len(keys) == 36
    assert {"embedder.block3.res2.conv1.weight", "embedder.fc.bias", "fc_policy.weight", "fc_value.bias"} <= keys


@pytest.mark.parametrize("scale", [1, 4])
def test_hook_point_shapes(request: pytest.FixtureRequest, scale: int) -> None:
    policy = request.getfixturevalue(f"policy{scale}")
    points = policy.hook_points()
    expected = expected_leaf_shapes(scale)
    assert {name: points[name] for name in expected} == expected
    assert points["embedder.block2.res1_out"] == expected["embedder.block2.res1.resadd_out"]
    assert points["embedder.block3_out"] == expected["embedder.relu3_out"]


def shape_table(doc: str, scale: int) -> list[tuple[list[str], tuple[int, ...]]]:
    """The rows of the module docstring's shape table: (hook point patterns, shape at ``scale``)."""
    block = doc.split("per example; the one table")[1].split("::\n\n", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in block.splitlines():
        names, shape = re.fullmatch(r"(.*?)\s+(\d.*)", line.strip()).groups()  # type: ignore[union-attr]
        if names == "input":
            continue
        shape = re.sub(r"\s*\(.*\)$", "", shape)  # a note in brackets
        dims = tuple(eval(d.replace("s", f"*{scale}").replace("·", "*")) for d in shape.split("×"))
        patterns = []
        for name in names.split(", "):
            head, _, rest = name.partition("{")
            options = rest.rstrip("}").split(",") if rest else [""]
            patterns += [head + option + ("" if (head + option).endswith("_out") else "_out") for option in options]
        rows.append((patterns, dims))
    return rows


@pytest.mark.parametrize("scale", [1, 4])
def test_the_shape_table_matches_the_traced_shapes(request: pytest.FixtureRequest, scale: int) -> None:
    points = request.getfixturevalue(f"policy{scale}").hook_points()
    rows = shape_table(model_module.__doc__ or "", scale)
    assert len(rows) == 11
    covered = set()
    for patterns, dims in rows:
        names = {n for n in points if any(fnmatch.fnmatchcase(n, p) for p in patterns)}
        assert names, patterns
        assert {n: points[n] for n in names} == dict.fromkeys(names, dims)
        covered |= names
    # the rest are containers, whose output is that of their last op
    containers = {f"embedder.block{b}{r}_out" for b in (1, 2, 3) for r in ("", ".res1", ".res2")} | {"embedder_out"}
    assert set(points) - covered == containers
    assert covered == set(expected_leaf_shapes(scale))


def test_published_hook_shapes(policy1: ImpalaPolicy, policy4: ImpalaPolicy) -> None:
    assert policy4.hook_points()["embedder.block2.res1.resadd_out"] == (128, 16, 16)
    assert policy1.hook_points()["embedder.block2.res1.resadd_out"] == (32, 16, 16)
    assert policy4.hook_points()["embedder.relu3_out"] == (128, 8, 8)
    assert policy4.hook_points()["embedder.block1.conv_out"] == (64, 64, 64)
    assert policy4.hook_points()["embedder.block1.maxpool_out"] == (64, 32, 32)


def test_every_module_has_a_hook_point_in_forward_order(policy1: ImpalaPolicy) -> None:
    names = list(policy1.hook_points())
    leaves = [n for n, m in policy1.named_modules() if n and not list(m.children())]
    modules = [n for n, _ in policy1.named_modules() if n]
    assert set(names) == {n + "_out" for n in modules}
    assert [n for n in names if n[:-4] in leaves] == [n + "_out" for n in leaves]
    order = [
        "embedder.block1.conv_out",
        "embedder.block1.maxpool_out",
        "embedder.block1.res1.relu1_out",
        "embedder.block1.res1.resadd_out",
        "embedder.block2.conv_out",
        "embedder.relu3_out",
        "embedder.flatten_out",
        "embedder.relufc_out",
        "fc_policy_out",
        "fc_value_out",
    ]
    assert sorted(order, key=names.index) == order


def test_hook_points_leave_no_hooks(policy1: ImpalaPolicy) -> None:
    fresh = ImpalaPolicy(scale=1)
    points = fresh.hook_points()
    points.clear()
    assert fresh.hook_points()
    assert all(not m._forward_hooks for m in fresh.modules())


def test_relus_are_not_inplace(policy1: ImpalaPolicy) -> None:
    relus = [m for m in policy1.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 * 2 * 2 + 2
    assert not any(m.inplace for m in relus)


def test_module_for_hook(policy1: ImpalaPolicy) -> None:
    assert policy1.module_for_hook("embedder.block2.res1.resadd_out") is policy1.embedder.block2.res1.resadd
    assert policy1.module_for_hook("fc_policy_out") is policy1.fc_policy
    for name in policy1.hook_points():
        assert isinstance(policy1.module_for_hook(name), nn.Module)


@pytest.mark.parametrize("name", ["embedder.block2.res1.resad_out", "embedder.block2.res1.resadd", "_out", ""])
def test_module_for_hook_unknown(policy1: ImpalaPolicy, name: str) -> None:
    with pytest.raises(KeyError, match="unknown hook point"):
        policy1.module_for_hook(name)


def test_unknown_hook_suggests_close_names(policy1: ImpalaPolicy) -> None:
    with pytest.raises(KeyError, match=r"embedder\.block2\.res1\.resadd_out"):
        policy1.module_for_hook("embedder.block2.res1.resad_out")


def test_residual_add_goes_through_its_module(policy1: ImpalaPolicy) -> None:
    module = policy1.module_for_hook("embedder.block3.res2.resadd_out")
    handle = module.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    try:
        with torch.no_grad():
            logits, value = policy1(torch.rand(2, 3, 64, 64))
    finally:
        handle.remove()
    hidden = torch.relu(policy1.embedder.fc.bias)
    torch.testing.assert_close(logits, policy1.fc_policy(hidden).expand(2, -1))
    torch.testing.assert_close(value, policy1.fc_value(hidden).expand(2))


def test_obs_to_tensor_values() -> None:
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    obs[0, 0, 0] = (0, 128, 255)
    x = obs_to_tensor(obs)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32 and x.is_contiguous()
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([0.0, 128 / 255, 1.0]))
    torch.testing.assert_close(x * 255, torch.from_numpy(obs).permute(0, 3, 1, 2).float(), rtol=0, atol=1e-4)
    assert x.min() >= 0 and x.max() <= 1


def test_obs_to_tensor_single_frame_tensor_and_readonly() -> None:
    frame = np.full((64, 64, 3), 51, dtype=np.uint8)
    frame.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = obs_to_tensor(frame, device="cpu")
    assert x.shape == (1, 3, 64, 64)
    torch.testing.assert_close(x, torch.full((1, 3, 64, 64), 51 / 255))
    torch.testing.assert_close(obs_to_tensor(torch.from_numpy(frame.copy())), x)
    torch.testing.assert_close(obs_to_tensor(frame[None, :, ::-1]), x)


@pytest.mark.parametrize(
    ("obs", "fragment"),
    [
        (np.zeros((2, 64, 64, 3), dtype=np.float32), "float32"),
        (torch.zeros(2, 64, 64, 3), "torch.float32"),
        (np.zeros((2, 3, 64, 64), dtype=np.uint8), r"\(2, 3, 64, 64\)"),
        (np.zeros((64, 64), dtype=np.uint8), r"\(64, 64, 3\)"),
        (np.zeros((2, 32, 32, 3), dtype=np.uint8), r"\(B, 64, 64, 3\)"),
    ],
    ids=["float-array", "float-tensor", "nchw", "2d", "small"],
)
def test_obs_to_tensor_errors(obs: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        obs_to_tensor(obs)  # type: ignore[arg-type]


def test_obs_to_tensor_rejects_lists() -> None:
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        obs_to_tensor([[0]])  # type: ignore[arg-type]


def test_action_tables() -> None:
    assert MOVES == ("left", "down", "up", "right", "noop")
    assert [m.name.lower() for m in Move] == list(MOVES)
    assert ACTION_TO_MOVE.tolist() == [0, 0, 0, 1, 4, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4]
    assert MOVE_TO_ACTION.tolist() == [1, 3, 5, 7, 4]
    assert [ACTION_TO_MOVE[a] for a in MOVE_TO_ACTION] == list(Move)
    assert MOVE_DELTAS[Move.UP].tolist() == [-1, 0]
    assert MOVE_DELTAS[Move.DOWN].tolist() == [1, 0]
    assert MOVE_DELTAS[Move.LEFT].tolist() == [0, -1]
    assert MOVE_DELTAS[Move.RIGHT].tolist() == [0, 1]
    assert MOVE_DELTAS[Move.NOOP].tolist() == [0, 0]
    with pytest.raises(ValueError):
        ACTION_TO_MOVE[0] = 3


def test_move_probs_hand_built() -> None:
    probs = torch.zeros(2, 15)
    probs[0, [0, 1, 2]] = torch.tensor([0.1, 0.05, 0.05])
    probs[0, 3] = 0.3
    probs[0, 5] = 0.15
    probs[0, [6, 8]] = torch.tensor([0.1, 0.1])
    probs[0, [4, 14]] = torch.tensor([0.1, 0.05])
    probs[1] = 1 / 15
    logits = torch.log(probs.clamp_min(1e-30)) + 7.0
    expected = torch.tensor([[0.2, 0.3, 0.15, 0.2, 0.15], [3 / 15, 1 / 15, 1 / 15, 3 / 15, 7 / 15]])
    result = move_probs(logits)
    assert result.shape == (2, 5)
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(move_probs(logits[None]), expected[None])


def test_move_probs_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match="15"):
        move_probs(torch.zeros(2, 5))


def test_actions_to_moves() -> None:
    actions = np.arange(15).reshape(3, 5)
    moves = actions_to_moves(actions)
    assert isinstance(moves, np.ndarray) and moves.shape == (3, 5)
    assert moves.ravel().tolist() == ACTION_TO_MOVE.tolist()
    assert actions_to_moves(7) == Move.RIGHT
    assert actions_to_moves(torch.tensor([5, 3])).tolist() == [Move.UP, Move.DOWN]
    with pytest.raises(ValueError):
        actions_to_moves(np.array([15]))
    with pytest.raises(ValueError):
        actions_to_moves(torch.tensor([-1]))
