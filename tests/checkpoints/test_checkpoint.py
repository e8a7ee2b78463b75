"""Tests of mazeinterp.checkpoints.registry: published format, our format, registry, every error."""

from __future__ import annotations

import hashlib
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mazeinterp.checkpoints import registry as checkpoint
from mazeinterp.checkpoints.registry import (
    CheckpointError,
    CheckpointHashError,
    CheckpointKeyError,
    CheckpointNotFoundError,
    CheckpointShapeError,
    NotACheckpointError,
    UnsupportedScaleError,
    load_policy,
    resolve_checkpoint,
    save_policy,
)
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.core.numerics import reference_numerics


def published_shapes(scale: int) -> dict[str, tuple[int, ...]]:
    """The key set and shapes of a published checkpoint's model_state_dict, written out by hand."""
    c1, c2, c3 = 16 * scale, 32 * scale, 32 * scale
    shapes: dict[str, tuple[int, ...]] = {}
    for block, (c_in, c_out) in zip((1, 2, 3), ((3, c1), (c1, c2), (c2, c3))):
        shapes[f"embedder.block{block}.conv.weight"] = (c_out, c_in, 3, 3)
        shapes[f"embedder.block{block}.conv.bias"] = (c_out,)
        for res in (1, 2):
            for conv in (1, 2):
                shapes[f"embedder.block{block}.res{res}.conv{conv}.weight"] = (c_out, c_out, 3, 3)
                shapes[f"embedder.block{block}.res{res}.conv{conv}.bias"] = (c_out,)
    shapes["embedder.fc.weight"] = (256, c3 * 8 * 8)
    shapes["embedder.fc.bias"] = (256,)
    shapes["fc_policy.weight"] = (15, 256)
    shapes["fc_policy.bias"] = (15,)
    shapes["fc_value.weight"] = (1, 256)
    shapes["fc_value.bias"] = (1,)
    assert len(shapes) == 36
    return shapes


def random_state_dict(scale: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the published shapes, scaled by 1/sqrt(fan-in) so activations stay O(1)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in published_shapes(scale).items():
        fan_in = math.prod(shape[1:]) if len(shape) > 1 else 16
        state[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    return state


def fake_optimizer_state() -> dict:
    return {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4), "exp_avg_sq": torch.ones(4)}},
        "param_groups": [
            {"lr": 5e-4, "betas": (0.9, 0.999), "eps": 1e-5, "weight_decay": 0, "amsgrad": False, "params": [0]}
        ],
    }


def write_published(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save({"model_state_dict": state, "optimizer_state_dict": fake_optimizer_state()}, path)
    return path


def reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor,
                      dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """The IMPALA forward pass written directly with torch.nn.functional on contiguous tensors, in ``dtype``
    (float64 by default; in float32 it is the published research code's computation)."""
    sd = {k: v.to(dtype) for k, v in state.items()}
    h = x.to(dtype)
    for block in (1, 2, 3):
        p = f"embedder.block{block}."
        h = F.conv2d(h, sd[p + "conv.weight"], sd[p + "conv.bias"], padding=1)
        h = F.max_pool2d(h, kernel_size=3, stride=2, padding=1)
        for res in (1, 2):
            q = f"{p}res{res}."
            y = F.conv2d(F.relu(h), sd[q + "conv1.weight"], sd[q + "conv1.bias"], padding=1)
            y = F.conv2d(F.relu(y), sd[q + "conv2.weight"], sd[q + "conv2.bias"], padding=1)
            h = h + y
    h = F.relu(h).flatten(1)
    h = F.relu(F.linear(h, sd["embedder.fc.weight"], sd["embedder.fc.bias"]))
    logits = F.linear(h, sd["fc_policy.weight"], sd["fc_policy.bias"])
    value = F.linear(h, sd["fc_value.weight"], sd["fc_value.bias"])[:, 0]
    return logits, value


@pytest.mark.parametrize("scale", [1, 4])
def test_published_checkpoint_matches_reference_forward(tmp_path: Path, scale: int) -> None:
    state = random_state_dict(scale, seed=scale)
    path = write_published(tmp_path / f"published_scale{scale}.pth", state)
    model = load_policy(path)
    assert isinstance(model, ImpalaPolicy)
    assert model.scale == scale
    assert not model.training
    assert model.metadata == {}
    assert model.source == path
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, value = model(x)
    ref_logits, ref_value = reference_forward(state, x)
    assert logits.shape == (3, 15) and value.shape == (3,)
    assert ref_logits.abs().max() > 1e-3
    torch.testing.assert_close(logits.double(), ref_logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(value.double(), ref_value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [1, 4])
def test_reference_numerics_equal_the_published_computation_bit_for_bit(tmp_path: Path, scale: int) -> None:
    """The fast path (default) stays within 1e-5 of float64 (the test above); the reference path is exact."""
    state = random_state_dict(scale, seed=scale)
    model = load_policy(write_published(tmp_path / f"published_scale{scale}.pth", state))
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref_logits, ref_value = reference_forward(state, x, dtype=torch.float32)
    with torch.no_grad():
        with reference_numerics():
            logits, value = model(x)
        fast_logits, _ = model(x)
    assert torch.equal(logits, ref_logits) and torch.equal(value, ref_value)
    assert not torch.equal(fast_logits, ref_logits)  # the fast path is a different computation


def test_bare_state_dict_loads(tmp_path: Path) -> None:
    state = random_state_dict(1)
    path = tmp_path / "bare.pt"
    torch.save(state, path)
    model = load_policy(str(path), device="cpu")
    assert model.scale == 1
    assert model.metadata == {}
    torch.testing.assert_close(model.state_dict()["fc_policy.weight"], state["fc_policy.weight"])


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointNotFoundError, match="nope.pth") as info:
        load_policy(path)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, CheckpointError)


def test_unknown_name_lists_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(checkpoint.SHIPPED, "maze-a", "maze_a.pth")
    with pytest.raises(CheckpointNotFoundError, match="maze-a"):
        resolve_checkpoint("no-such-agent")


def test_registry_name_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_published(tmp_path / "tiny.pth", random_state_dict(1))
    monkeypatch.setattr(checkpoint, "checkpoints_dir", lambda: tmp_path)
    monkeypatch.setitem(checkpoint.SHIPPED, "tiny", "tiny.pth")
    digest = hashlib.sha256((tmp_path / "tiny.pth").read_bytes()).hexdigest()
    monkeypatch.setitem(checkpoint.SHIPPED_SHA256, "tiny", digest)
    assert resolve_checkpoint("tiny") == tmp_path / "tiny.pth"
    assert load_policy("tiny").source == tmp_path / "tiny.pth"


def test_a_shipped_name_refuses_a_tampered_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = checkpoint.checkpoints_dir() / checkpoint.SHIPPED[checkpoint.DEFAULT_AGENT]
    tampered = bytearray(shipped.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    (tmp_path / shipped.name).write_bytes(bytes(tampered))
    monkeypatch.setattr(checkpoint, "checkpoints_dir", lambda: tmp_path)
    expected = checkpoint.SHIPPED_SHA256[checkpoint.DEFAULT_AGENT]
    found = hashlib.sha256(bytes(tampered)).hexdigest()
    with pytest.raises(CheckpointHashError, match=f"sha256 {found}, but the registry records {expected}") as info:
        load_policy(checkpoint.DEFAULT_AGENT)
    assert (info.value.expected, info.value.found) == (expected, found)
    (tmp_path / shipped.name).write_bytes(shipped.read_bytes())  # an intact copy loads
    assert load_policy(checkpoint.DEFAULT_AGENT).source == tmp_path / shipped.name


def test_every_shipped_file_has_its_recorded_hash() -> None:
    assert set(checkpoint.SHIPPED_SHA256) == set(checkpoint.SHIPPED)
    for name, file in checkpoint.SHIPPED.items():
        path = checkpoint.checkpoints_dir() / file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == checkpoint.SHIPPED_SHA256[name], name


def test_a_shipped_name_without_a_recorded_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_published(tmp_path / "tiny.pth", random_state_dict(1))
    monkeypatch.setattr(checkpoint, "checkpoints_dir", lambda: tmp_path)
    monkeypatch.setitem(checkpoint.SHIPPED, "tiny", "tiny.pth")
    with pytest.raises(CheckpointHashError, match="'tiny' has no sha256 in the registry"):
        load_policy("tiny")
    assert load_policy(tmp_path / "tiny.pth").scale == 1  # by its path, a file is the user's own: no check


def test_registered_but_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "checkpoints_dir", lambda: tmp_path)
    monkeypatch.setitem(checkpoint.SHIPPED, "gone", "gone.pth")
    with pytest.raises(CheckpointNotFoundError, match="gone.pth"):
        resolve_checkpoint("gone")


def test_registry_defaults() -> None:
    assert checkpoint.checkpoints_dir().name == "checkpoints"
    assert checkpoint.checkpoints_dir().parent == Path(checkpoint.__file__).resolve().parents[2]
    assert checkpoint.DEFAULT_AGENT is None or checkpoint.DEFAULT_AGENT in checkpoint.SHIPPED


def test_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NotACheckpointError, match=str(tmp_path)):
        load_policy(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"model_state_dict = not really\n", bytes(range(256)) * 4, b""],
    ids=["text", "garbage", "empty"],
)
def test_unreadable_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(NotACheckpointError, match="bad.pth"):
        load_policy(path)


class _Payload:
    """A class that weights_only loading must refuse to instantiate."""


@pytest.mark.parametrize(
    "obj",
    [
        [1, 2, 3],
        torch.zeros(3),
        {},
        {"model_state_dict": {"embedder.fc.weight": 1}},
        {"model_state_dict": [torch.zeros(2)]},
        {"model_state_dict": {"embedder.fc.weight": torch.zeros(2)}, "metadata": [1]},
    ],
    ids=["list", "tensor", "empty-dict", "non-tensor-value", "list-state", "bad-metadata"],
)
def test_not_a_state_dict(tmp_path: Path, obj: object) -> None:
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    with pytest.raises(NotACheckpointError, match="odd.pth"):
        load_policy(path)


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "code.pth"
    with path.open("wb") as handle:
        pickle.dump({"model_state_dict": _Payload()}, handle, protocol=2)
    with pytest.raises(NotACheckpointError, match="code.pth.*_Payload.*only tensors and plain data"):
        load_policy(path)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    path = write_published(tmp_path / "cut.pth", random_state_dict(1))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(NotACheckpointError, match="cut.pth"):
        load_policy(path)


def test_missing_keys(tmp_path: Path) -> None:
    state = random_state_dict(1)
    del state["fc_value.bias"], state["embedder.block2.res1.conv2.weight"]
    path = write_published(tmp_path / "missing.pth", state)
    with pytest.raises(CheckpointKeyError, match="missing.pth") as info:
        load_policy(path)
    assert info.value.missing == ["embedder.block2.res1.conv2.weight", "fc_value.bias"]
    assert info.value.unexpected == []
    assert "embedder.block2.res1.conv2.weight" in str(info.value)
    assert "fc_value.bias" in str(info.value)


def test_unexpected_keys(tmp_path: Path) -> None:
    state = random_state_dict(1)
    state["embedder.extra.weight"] = torch.zeros(2)
    state["aux.bias"] = torch.zeros(2)
    path = write_published(tmp_path / "extra.pth", state)
    with pytest.raises(CheckpointKeyError, match="extra.pth") as info:
        load_policy(path)
    assert info.value.missing == []
    assert info.value.unexpected == ["aux.bias", "embedder.extra.weight"]
    assert "embedder.extra.weight" in str(info.value)


def test_wrapper_prefix_gives_a_short_message_with_a_hint(tmp_path: Path) -> None:
    state = {f"module.{key}": value for key, value in random_state_dict(1).items()}
    path = write_published(tmp_path / "wrapped.pth", state)
    with pytest.raises(CheckpointKeyError, match="wrapped.pth") as info:
        load_policy(path)
    message = str(info.value)
    assert len(info.value.missing) == len(state) and len(info.value.unexpected) == len(state)
    assert f"{len(state)} missing (" in message and f"and {len(state) - 4} more" in message
    assert "every key starts with 'module.'" in message
    assert len(message) < 800


def test_wrong_shape(tmp_path: Path) -> None:
    state = random_state_dict(1)
    state["fc_policy.weight"] = torch.zeros(14, 256)
    path = write_published(tmp_path / "shape.pth", state)
    with pytest.raises(CheckpointShapeError, match="shape.pth") as info:
        load_policy(path)
    message = str(info.value)
    assert "fc_policy.weight" in message
    assert "(15, 256)" in message and "(14, 256)" in message
    assert (info.value.key, info.value.expected, info.value.found) == ("fc_policy.weight", (15, 256), (14, 256))


def test_unsupported_scale(tmp_path: Path) -> None:
    state = random_state_dict(1)
    state["embedder.block1.conv.weight"] = torch.zeros(24, 3, 3, 3)
    path = write_published(tmp_path / "scale.pth", state)
    with pytest.raises(UnsupportedScaleError, match="scale.pth.*24"):
        load_policy(path)


def test_metadata_scale_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "ours.pt"
    torch.save({"model_state_dict": random_state_dict(1), "metadata": {"scale": 2}}, path)
    with pytest.raises(UnsupportedScaleError, match="ours.pt"):
        load_policy(path)


def test_errors_pickle_with_attributes() -> None:
    err = CheckpointKeyError("x", path="p", missing=["a"], unexpected=["b"])
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.path, copy.missing, copy.unexpected) == ("x", "p", ["a"], ["b"])


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(1, 3, 64, 64))[1].sum().backward()
    optimizer.step()
    metadata = {"seed": 3, "steps": 1, "notes": "unit test", "path": tmp_path, "widths": (32, 64, 64)}
    path = save_policy(model, tmp_path / "sub" / "agent.pt", metadata=metadata, optimizer_state=optimizer.state_dict())
    assert path == tmp_path / "sub" / "agent.pt"
    assert [p.name for p in path.parent.iterdir()] == ["agent.pt"]

    loaded = load_policy(path)
    assert loaded.scale == 2
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    assert loaded.metadata["seed"] == 3
    assert loaded.metadata["notes"] == "unit test"
    assert loaded.metadata["path"] == str(tmp_path)
    assert loaded.metadata["scale"] == 2
    assert loaded.metadata["format_version"] == checkpoint.FORMAT_VERSION
    assert isinstance(loaded.metadata["mazeinterp_version"], str)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"model_state_dict", "metadata", "optimizer_state_dict"}
    assert raw["optimizer_state_dict"]["param_groups"][0]["lr"] == 1e-3


def test_save_refuses_overwrite(tmp_path: Path) -> None:
    path = save_policy(ImpalaPolicy(scale=1), tmp_path / "agent.pt", metadata={"run": 1})
    with pytest.raises(FileExistsError, match="agent.pt"):
        save_policy(ImpalaPolicy(scale=1), path, metadata={"run": 2})
    assert load_policy(path).metadata["run"] == 1
    save_policy(ImpalaPolicy(scale=1), path, metadata={"run": 2}, overwrite=True)
    assert load_policy(path).metadata["run"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["agent.pt"]


def test_save_rejects_non_plain_metadata(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="metadata"):
        save_policy(ImpalaPolicy(scale=1), tmp_path / "a.pt", metadata={"obj": object()})
    with pytest.raises(ValueError, match="scale"):
        save_policy(ImpalaPolicy(scale=1), tmp_path / "a.pt", metadata={"scale": 4})
    assert not list(tmp_path.iterdir())


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_a_code_running_pickle_is_refused_with_our_message_naming_the_global(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": random_state_dict(1), "extra": _RunsCode()}, path)
    with pytest.raises(checkpoint.UnsafeCheckpointError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "evil.pt" in message and "posix.getcwd" in message and caught.value.global_name == "posix.getcwd"
    assert "weights_only" not in message, "no advice to turn the safe loader off"


class _RunsTwo:
    def __reduce__(self):
        import os

        return (os.getpid, (os.getcwd,))


@pytest.mark.parametrize("protocol", [2, 4])  # 2: GLOBAL opcodes (torch.save's); 4: STACK_GLOBAL
def test_the_first_refused_global_is_named_in_any_pickle(protocol: int) -> None:
    from mazeinterp.checkpoints.file_format import unsafe_global

    # a bare pickle (not a zip archive), as an old torch.save wrote them: getpid, then getcwd (its argument)
    data = pickle.dumps({"w": [1.0, 2.0], "x": _RunsTwo()}, protocol=protocol)
    assert unsafe_global(data) == "posix.getpid"
    assert unsafe_global(pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol)) is None
    assert unsafe_global(b"not a pickle") is None


def test_globals_added_to_torchs_safe_list_are_not_refused() -> None:
    import os

    from mazeinterp.checkpoints.file_format import unsafe_global

    data = pickle.dumps(_RunsCode(), protocol=2)
    assert unsafe_global(data) == "posix.getcwd"
    with torch.serialization.safe_globals([os.getcwd]):
        assert unsafe_global(data) is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused_naming_the_key(tmp_path: Path, bad: float) -> None:
    state = random_state_dict(1)
    state["embedder.block2.res1.conv2.weight"][0, 0, 0, 0] = bad
    path = write_published(tmp_path / "nan.pth", state)
    with pytest.raises(checkpoint.NonFiniteWeightsError, match="nan.pth: embedder.block2.res1.conv2.weight") as caught:
        load_policy(path)
    assert caught.value.key == "embedder.block2.res1.conv2.weight"


def test_an_os_error_while_reading_is_a_checkpoint_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_published(tmp_path / "locked.pth", random_state_dict(1))

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(checkpoint.UnreadableCheckpointError, match="locked.pth: Permission denied") as caught:
        load_policy(path)
    assert caught.value.reason == "Permission denied" and caught.value.path == path


def test_checkpoint_errors_take_their_details_when_made() -> None:
    unreadable = checkpoint.UnreadableCheckpointError("m", path="a.pt", reason="Is a directory")
    unsafe = checkpoint.UnsafeCheckpointError("m", path="a.pt", global_name="posix.system")
    broken = checkpoint.NonFiniteWeightsError("m", path="a.pt", key="fc_value.bias")
    assert (unreadable.reason, unsafe.global_name, broken.key) == ("Is a directory", "posix.system", "fc_value.bias")
    assert (unreadable.path, unsafe.path, broken.path) == ("a.pt", "a.pt", "a.pt")
    assert isinstance(unsafe, checkpoint.NotACheckpointError)
    # a broken output rather than a broken tensor: no key
    assert checkpoint.NonFiniteWeightsError("m", path="a.pt").key is None
