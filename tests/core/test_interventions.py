"""Tests of mazeinterp.core.interventions: exact arithmetic, selection, validation, printing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mazeinterp.core.hooks import forward_from, intervene, run_with_cache
from mazeinterp.core.interventions import (
    AddVector,
    Clamp,
    MeanAblate,
    Patch,
    ResampleAblate,
    Scale,
    SetValue,
    ZeroAblate,
    as_intervention_list,
    as_tensor_copy,
    validate,
)
from mazeinterp.core.model import ImpalaPolicy

HOOK = "embedder.block2.res1.resadd_out"  # (32, 16, 16) at scale 1
VEC_HOOK = "embedder.fc_out"  # (256,)




@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def clean(model, x) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean activation at HOOK (3, 32, 16, 16) and clean logits."""
    (logits, _), cache = run_with_cache(model, x, [HOOK])
    return cache[HOOK], logits


def edited(model, x, iv) -> tuple[torch.Tensor, torch.Tensor]:
    (logits, _), cache = run_with_cache(model, x, [iv.hook], interventions=[iv])
    return cache[iv.hook], logits


def check_in_model(model, x, iv, expected: torch.Tensor) -> None:
    """The cached activation is exactly ``expected`` and the logits are the network's output on it."""
    act, logits = edited(model, x, iv)
    assert torch.equal(act, expected)
    ref_logits, _ = forward_from(model, iv.hook, expected)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-6)


def test_zero_ablate_channels(model, x, clean):
    act, _ = clean
    expected = act.clone()
    expected[:, 3] = 0.0
    expected[:, 7] = 0.0
    check_in_model(model, x, ZeroAblate(HOOK, channels=[3, 7]), expected)


def test_zero_ablate_channels_and_pixels(model, x, clean):
    act, _ = clean
    expected = act.clone()
    for c in (1, 2):
        for r, col in ((0, 0), (5, 9)):
            expected[:, c, r, col] = 0.0
    check_in_model(model, x, ZeroAblate(HOOK, channels=[1, 2], pixels=[(0, 0), (5, 9)]), expected)


def test_zero_ablate_everything(model, x):
    check_in_model(model, x, ZeroAblate(HOOK), torch.zeros(3, 32, 16, 16))


def test_mean_ablate(model, x, clean):
    act, _ = clean
    mean = torch.arange(32 * 16 * 16, dtype=torch.float32).view(32, 16, 16) / 100
    expected = act.clone()
    expected[:, 4, 2, 3] = mean[4, 2, 3]
    expected[:, 9, 2, 3] = mean[9, 2, 3]
    check_in_model(model, x, MeanAblate(HOOK, mean, channels=[4, 9], pixels=[(2, 3)]), expected)


def test_resample_ablate_pairing(model, x, clean):
    act, _ = clean
    sources = torch.randn(2, 32, 16, 16, generator=torch.Generator().manual_seed(5))
    iv = ResampleAblate(HOOK, sources, seed=11, channels=[6])
    perm = torch.randperm(2, generator=torch.Generator().manual_seed(11))
    index = perm[torch.arange(3) % 2]
    assert torch.equal(iv.source_index(3), index)
    expected = act.clone()
    for b in range(3):
        expected[b, 6] = sources[index[b], 6]
    check_in_model(model, x, iv, expected)
    # reproducible: same seed → same pairing; another seed → another permutation of many sources
    many = torch.zeros(50, 1)
    assert torch.equal(ResampleAblate(VEC_HOOK, many, seed=3).source_index(50),
                       ResampleAblate(VEC_HOOK, many, seed=3).source_index(50))
    assert not torch.equal(ResampleAblate(VEC_HOOK, many, seed=3).source_index(50),
                           ResampleAblate(VEC_HOOK, many, seed=4).source_index(50))


def test_add_vector_full_and_channelwise(model, x, clean):
    act, _ = clean
    vec = torch.randn(32, 16, 16, generator=torch.Generator().manual_seed(2))
    expected = act.clone()
    expected[:, 5] = act[:, 5] + (-1.0) * vec[5]
    check_in_model(model, x, AddVector(HOOK, vec, -1.0, channels=[5]), expected)

    per_channel = torch.arange(32, dtype=torch.float32)
    expected = act + 2.0 * per_channel.view(32, 1, 1)
    check_in_model(model, x, AddVector(HOOK, per_channel, 2.0), expected)


def test_clamp_retarget_pixel(model, x, clean):
    act, _ = clean
    expected = act.clone()
    expected[:, 10, 4, 12] = 5.5
    check_in_model(model, x, Clamp(HOOK, 5.5, channels=[10], pixels=[(4, 12)]), expected)
    check_in_model(model, x, SetValue(HOOK, 5.5, channels=[10], pixels=[(4, 12)]), expected)
    assert SetValue is Clamp and repr(SetValue(HOOK, 1.0)) == f"Clamp({HOOK}, value=1.0)"


def test_patch_batched_and_single(model, x, clean):
    act, _ = clean
    other = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    _, cache = run_with_cache(model, other, [HOOK])
    source = cache[HOOK]
    expected = act.clone()
    expected[:, 2] = source[:, 2]
    check_in_model(model, x, Patch(HOOK, source, channels=[2]), expected)
    expected = act.clone()
    expected[:, :, 1, 1] = source[0, :, 1, 1]
    check_in_model(model, x, Patch(HOOK, source[0], pixels=[(1, 1)]), expected)
    with pytest.raises(ValueError, match="batch"):
        Patch(HOOK, source[:2])(act)


def test_scale(model, x, clean):
    act, _ = clean
    expected = act.clone()
    expected[:, 0] = act[:, 0] * 3.0
    check_in_model(model, x, Scale(HOOK, 3.0, channels=[0]), expected)


def test_vector_hook_features(model, x):
    (_, _), cache = run_with_cache(model, x, [VEC_HOOK])
    act = cache[VEC_HOOK]
    expected = act.clone()
    expected[:, [0, 255]] = -2.0
    check_in_model(model, x, Clamp(VEC_HOOK, -2.0, channels=[0, 255]), expected)


@pytest.mark.parametrize("iv", [
    ZeroAblate(HOOK, channels=[1]),
    MeanAblate(HOOK, torch.ones(32, 16, 16)),
    ResampleAblate(HOOK, torch.ones(2, 32, 16, 16)),
    AddVector(HOOK, torch.ones(32), 1.0),
    Clamp(HOOK, 1.0, pixels=[(0, 0)]),
    Patch(HOOK, torch.ones(32, 16, 16)),
    Scale(HOOK, 2.0),
])
def test_never_in_place(iv):
    act = torch.randn(4, 32, 16, 16)
    before = act.clone()
    out = iv(act)
    assert torch.equal(act, before)
    assert out.data_ptr() != act.data_ptr()
    assert out.shape == act.shape


def test_held_tensors_are_private_copies():
    vec = torch.zeros(32)
    iv = AddVector(HOOK, vec, 1.0)
    vec += 1.0
    assert torch.equal(iv.vector, torch.zeros(32))


def test_frozen_and_printable():
    iv = ZeroAblate("embedder.relu3_out", channels=[3, 7])
    assert repr(iv) == "ZeroAblate(embedder.relu3_out, channels=[3, 7])"
    assert str(iv) == repr(iv)
    with pytest.raises(dataclasses.FrozenInstanceError):
        iv.channels = (1,)  # type: ignore[misc]
    assert repr(AddVector(HOOK, torch.zeros(32, 16, 16), -1)) == (
        "AddVector(embedder.block2.res1.resadd_out, vector=(32, 16, 16), coefficient=-1.0)")
    assert repr(Clamp(HOOK, 5.5, channels=4, pixels=(4, 12))) == (
        "Clamp(embedder.block2.res1.resadd_out, value=5.5, channels=[4], pixels=[(4, 12)])")
    assert repr(Scale(HOOK, 0.5)) == "Scale(embedder.block2.res1.resadd_out, factor=0.5)"
    assert "sources=(2, 32, 16, 16), seed=0" in repr(ResampleAblate(HOOK, torch.ones(2, 32, 16, 16)))


def test_bad_selection_arguments():
    with pytest.raises(ValueError, match="empty"):
        ZeroAblate(HOOK, channels=[])
    with pytest.raises(ValueError, match="non-negative"):
        ZeroAblate(HOOK, channels=[-1])
    with pytest.raises(ValueError, match="pixels"):
        ZeroAblate(HOOK, pixels=[(1, 2, 3)])
    with pytest.raises(TypeError):
        AddVector(HOOK, [1.0, 2.0])  # type: ignore[arg-type]


def test_validate_messages(model):
    validate(model, ZeroAblate(HOOK, channels=[31], pixels=[(15, 15)]))
    message = r"channel 32 is out of range for hook point 'embedder.block2.res1.resadd_out'"
    with pytest.raises(ValueError, match=message):
        validate(model, ZeroAblate(HOOK, channels=[32]))
    with pytest.raises(ValueError, match=r"pixel \(16, 0\) is out of range"):
        validate(model, ZeroAblate(HOOK, pixels=[(16, 0)]))
    with pytest.raises(ValueError, match="did you mean embedder.relu3_out"):
        validate(model, ZeroAblate("embedder.relu3", channels=[1]))
    with pytest.raises(ValueError, match="pixels only apply"):
        validate(model, ZeroAblate(VEC_HOOK, pixels=[(0, 0)]))
    with pytest.raises(ValueError, match="256 features"):
        validate(model, ZeroAblate(VEC_HOOK, channels=[256]))
    with pytest.raises(ValueError, match="vector has shape"):
        validate(model, AddVector(HOOK, torch.zeros(16, 16)))
    with pytest.raises(ValueError, match="mean has shape"):
        validate(model, MeanAblate(HOOK, torch.zeros(32, 8, 8)))
    with pytest.raises(ValueError, match="source has shape"):
        validate(model, Patch(HOOK, torch.zeros(32, 8, 8)))


def test_intervene_validates(model, x):
    with pytest.raises(ValueError, match="channel 99"):
        with intervene(model, [ZeroAblate(HOOK, channels=[99])]):
            pass  # pragma: no cover
    assert all(not m._forward_hooks for m in model.modules())


def test_numpy_tensors_accepted(model, x, clean):
    act, _ = clean
    vec = np.ones((32, 16, 16), dtype=np.float64)
    check_in_model(model, x, AddVector(HOOK, vec, 1.0), act + 1.0)



def test_list_and_tensor_helpers_refuse_what_they_cannot_use():
    zero = ZeroAblate(HOOK)
    assert as_intervention_list(None) == [] and as_intervention_list(zero) == [zero]
    assert as_intervention_list((zero, zero)) == [zero, zero]
    with pytest.raises(TypeError, match="expected Intervention objects, got str"):
        as_intervention_list([zero, "embedder.relu3_out"])
    source = np.ones(3)
    copy = as_tensor_copy(source, "vector")
    source[0] = 5.0  # the copy does not follow the caller's array
    assert copy.dtype == torch.float32 and copy.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(TypeError, match="vector must be a torch tensor or numpy array, got list"):
        as_tensor_copy([1.0], "vector")
