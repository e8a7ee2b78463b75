"""Checkpoints that would give non-finite outputs or exhaust memory are refused before a model is built or a
byte is read: weights that overflow, shapes of a huge scale, files larger than any checkpoint."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from mazeinterp.checkpoints import file_format as checkpoint_file

from mazeinterp.runtime import limits
from mazeinterp.checkpoints.registry import (
    CheckpointShapeError,
    CheckpointTooLargeError,
    NonFiniteWeightsError,
    load_policy,
    save_policy,
)
from mazeinterp.core.model import ImpalaPolicy


def _state(scale: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in ImpalaPolicy(scale=scale).state_dict().items()}


def test_finite_weights_whose_outputs_overflow_are_refused(tmp_path: Path) -> None:
    state = _state()
    state["fc_policy.weight"].fill_(3e38)  # finite, but any positive hidden unit sends the logits to inf
    state["embedder.fc.weight"].zero_()
    state["embedder.fc.bias"].fill_(1.0)
    path = tmp_path / "overflow.pt"
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(NonFiniteWeightsError, match=r"overflow.pt: the weights are finite, but the policy's "
                                                    r"outputs on a probe input are not \(NaN or inf\)"):
        load_policy(path)


def test_values_that_overflow_are_refused_too(tmp_path: Path) -> None:
    state = _state()
    state["fc_value.weight"].fill_(3e38)
    state["embedder.fc.weight"].zero_()
    state["embedder.fc.bias"].fill_(1.0)
    path = tmp_path / "value.pt"
    torch.save({"model_state_dict": state}, path)
    with pytest.raises(NonFiniteWeightsError, match="value.pt: the weights are finite"):
        load_policy(path)


def test_a_sound_checkpoint_still_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=2)
    path = save_policy(model, tmp_path / "ok.pt")
    loaded = load_policy(path)
    assert loaded.scale == 2 and torch.equal(loaded.fc_policy.weight, model.fc_policy.weight)


def test_shapes_of_a_huge_scale_are_checked_before_any_model_is_built(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[int, str]] = []
    real = checkpoint_file.ImpalaPolicy

    def recording(scale: int, *args, **kwargs):
        built.append((scale, torch.empty(0).device.type))
        return real(scale, *args, **kwargs)

    monkeypatch.setattr(checkpoint_file, "ImpalaPolicy", recording)
    state = _state()
    state["embedder.block1.conv.weight"] = torch.zeros(16 * 300, 3, 3, 3)  # the scale-300 first conv, the rest scale 1
    path = tmp_path / "scale300.pt"
    torch.save({"model_state_dict": state}, path)
    started = time.perf_counter()
    with pytest.raises(CheckpointShapeError, match=r"scale300.pt: embedder.block1.conv.bias has shape \(16,\), "
                                                   r"expected \(4800,\)"):
        load_policy(path)
    assert time.perf_counter() - started < 10
    assert all(device == "meta" for scale, device in built if scale == 300), built


def test_a_consistent_huge_scale_that_cannot_fit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # expanded tensors: every shape is that of scale 300, yet the file is tiny
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in ImpalaPolicy(scale=300).state_dict().items()}
    state = {k: torch.zeros(()).expand(shape) for k, shape in shapes.items()}
    path = tmp_path / "expanded.pt"
    torch.save({"model_state_dict": state}, path)
    monkeypatch.setattr(limits, "memory_limit", lambda: 2**30)
    with pytest.raises(limits.ResourceLimitError, match=r"expanded.pt: a scale-300 policy would need at least "
                                                         r"[0-9.]+ GiB of memory, more than this machine's 1.0 GiB"):
        load_policy(path)


def test_a_file_larger_than_any_checkpoint_is_refused_before_it_is_read(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.pt"
    with open(path, "wb") as f:
        f.truncate(20 * 2**30)  # a sparse 20 GB file: no disk used
    assert os.path.getsize(path) == 20 * 2**30

    def no_read(*_a, **_k):
        raise AssertionError("the file was read")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    with pytest.raises(CheckpointTooLargeError, match=r"huge.pt is 20.0 GiB, larger than any checkpoint "
                                                       r"\(the limit is 1.0 GiB"):
        load_policy(path)
