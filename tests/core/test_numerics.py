"""The fast and reference numerics: the switch, the layout of every forward pass, caches and edits."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pytest
import torch

from mazeinterp import cli
from mazeinterp.checkpoints.registry import save_policy
from mazeinterp.core.hooks import forward_from, intervene, run_with_cache
from mazeinterp.core.interventions import Intervention
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.core.numerics import (
    ENV_VAR,
    as_network_input,
    is_reference,
    memory_format,
    numerics_mode,
    numerics_record,
    reference_numerics,
    reference_unless,
)
from mazeinterp.rollout import RolloutConfig, run_rollouts

HOOK = "embedder.block2.res1.resadd_out"


@pytest.fixture(autouse=True)
def fast_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture()
def x() -> torch.Tensor:
    return torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def _conv_layouts(model: ImpalaPolicy, x: torch.Tensor) -> set[bool]:
    """Whether each convolution's output in one forward pass of ``x`` was channels-last."""
    seen: list[bool] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.is_contiguous(
        memory_format=torch.channels_last) and not out.is_contiguous()))
        for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == 15
    return set(seen)


@pytest.mark.parametrize(("text", "reference"), [("1", True), ("TRUE", True), (" on ", True), ("yes", True),
                                                 ("", False), ("0", False), ("off", False), ("No", False)])
def test_environment_variable_words(monkeypatch: pytest.MonkeyPatch, text: str, reference: bool) -> None:
    monkeypatch.setenv(ENV_VAR, text)
    assert is_reference() is reference
    assert numerics_mode() == ("reference" if reference else "fast")


def test_bad_environment_variable_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "maybe")
    with pytest.raises(ValueError, match=f"{ENV_VAR}='maybe' is not one of"):
        is_reference()


def test_context_manager_sets_and_restores_even_on_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert numerics_mode() == "fast" and ENV_VAR not in os.environ
    with pytest.raises(RuntimeError, match="boom"), reference_numerics():
        assert numerics_mode() == "reference"
        raise RuntimeError("boom")
    assert ENV_VAR not in os.environ
    monkeypatch.setenv(ENV_VAR, "1")
    with reference_numerics(False):
        assert numerics_mode() == "fast"
        with reference_unless(channels_last=True):
            assert numerics_mode() == "fast"
        with reference_unless(channels_last=False):
            assert numerics_mode() == "reference"
    assert os.environ[ENV_VAR] == "1"


def test_memory_format_by_device_and_switch() -> None:
    assert memory_format("cpu") == torch.channels_last
    assert memory_format("meta") == torch.contiguous_format  # only CPU and CUDA take the fast layout
    assert numerics_record() == {"numerics": "fast", "memory_format": "channels_last"}
    with reference_numerics():
        assert memory_format("cpu") == torch.contiguous_format
        assert numerics_record("cpu") == {"numerics": "reference", "memory_format": "contiguous"}
    flat = torch.rand(2, 5)
    assert as_network_input(flat) is flat
    x = torch.rand(2, 3, 4, 4)
    y = as_network_input(x)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    assert as_network_input(y) is y  # no copy once laid out


def test_forward_pass_layout_follows_the_switch(model: ImpalaPolicy, x: torch.Tensor) -> None:
    assert _conv_layouts(model, x) == {True}
    assert all(p.is_contiguous() for p in model.parameters())  # the weights are never converted
    with reference_numerics():
        assert _conv_layouts(model, x) == {False}


def test_fast_path_is_close_to_reference_and_reference_is_repeatable(x: torch.Tensor) -> None:
    torch.manual_seed(4)
    model = ImpalaPolicy(scale=4).eval()
    with torch.no_grad():
        fast = model(x)
        with reference_numerics():
            ref = model(x)
            again = model(x.contiguous(memory_format=torch.channels_last))  # input layout does not matter
    assert torch.equal(ref[0], again[0]) and torch.equal(ref[1], again[1])
    assert not torch.equal(fast[0], ref[0])  # a different kernel: rounding differs
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(fast[1], ref[1], rtol=0, atol=1e-5)


def test_reference_numerics_refuse_channels_last_weights(x: torch.Tensor) -> None:
    model = ImpalaPolicy(scale=1).eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        model(x)  # the fast path takes any weights
        with reference_numerics(), pytest.raises(ValueError, match="contiguous convolution weights"):
            model(x)
        with reference_numerics(), pytest.raises(ValueError, match="contiguous convolution weights"):
            forward_from(model, "embedder.relu3_out", torch.zeros(1, 32, 8, 8))


def test_caches_are_nchw_with_the_values_of_the_reference_pass(model: ImpalaPolicy, x: torch.Tensor) -> None:
    names = ["embedder.block1.conv_out", HOOK, "embedder.flatten_out"]
    (logits, _), cache = run_with_cache(model, x, names)
    with reference_numerics():
        (ref_logits, _), ref_cache = run_with_cache(model, x, names)
    for name in names:
        assert cache[name].is_contiguous() and cache[name].shape == ref_cache[name].shape
        cache[name].view(len(x), -1)  # what user code does with a cache; channels-last would refuse the view
        torch.testing.assert_close(cache[name], ref_cache[name], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-5)


class _Relayout(Intervention):
    """An edit that changes no value but hands back a contiguous (NCHW) tensor."""

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        return act.contiguous()


def test_an_edit_that_changes_nothing_changes_nothing_bit_for_bit(model: ImpalaPolicy, x: torch.Tensor) -> None:
    """An edit's output is put back into the pass's layout, so later layers run the same kernels."""
    with torch.no_grad():
        plain = model(x)
        with intervene(model, [_Relayout(HOOK)]):
            edited = model(x)
    assert torch.equal(plain[0], edited[0]) and torch.equal(plain[1], edited[1])


def test_forward_from_a_cache_equals_the_full_fast_pass(model: ImpalaPolicy, x: torch.Tensor) -> None:
    (logits, value), cache = run_with_cache(model, x, [HOOK])
    with torch.no_grad():
        resumed = forward_from(model, HOOK, cache[HOOK])
    assert torch.equal(resumed[0], logits) and torch.equal(resumed[1], value)


def test_rollout_channels_last_false_runs_the_reference_path(model: ImpalaPolicy) -> None:
    layouts: list[bool] = []
    handle = model.embedder.block1.conv.register_forward_hook(
        lambda _m, _i, out: layouts.append(out.is_contiguous()))
    try:
        for channels_last in (True, False):
            config = RolloutConfig(max_steps=2, batch_size=2, seed=0, progress=False, channels_last=channels_last)
            run_rollouts(model, [0, 1], config=config)
    finally:
        handle.remove()
    assert layouts[0] is False and layouts[-1] is True
    assert ENV_VAR not in os.environ  # the run's switch is put back


def _main(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


def test_cli_switch_is_recorded_in_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pt"
    save_policy(ImpalaPolicy(scale=1), checkpoint)
    argv = ["rollout", "--checkpoint", str(checkpoint), "--n-mazes", "1", "--max-steps", "2", "--no-progress"]
    for flags, expected in (([], ("fast", "channels_last")), (["--reference-numerics"], ("reference", "contiguous"))):
        out = tmp_path / (expected[0])
        code, _, err = _main([*argv, *flags, "--out", str(out)])
        assert code == 0, err
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["numerics"], summary["memory_format"]) == expected
    assert ENV_VAR not in os.environ
    monkeypatch.setenv(ENV_VAR, "perhaps")
    code, _, err = _main([*argv, "--out", str(tmp_path / "bad")])
    assert code == cli.EXIT_BAD_INPUT
    assert err.strip() == f"mazeinterp rollout: error: environment variable {ENV_VAR}='perhaps' is not one of " \
                          "1/0, true/false, yes/no, on/off"
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("command", ["rollout", "vfield", "ablate", "steer", "channels", "stats", "sweep",
                                     "train ppo", "train imitate"])
def test_every_network_command_takes_the_switch(command: str) -> None:
    extra = {"sweep": ["x.toml"], "ablate": ["--channels", "1"]}.get(command, [])
    args = cli.build_parser().parse_args([*command.split(), *extra, "--reference-numerics"])
    assert args.reference_numerics is True
