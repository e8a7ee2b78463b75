"""Numbers that cannot give a result and requests that cannot fit end in one line and exit 2, before any work:
huge coefficients, step caps, level seeds, too few mazes, broken checkpoints, bad sweep files, Ray addresses."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

from mazeinterp import cli
from mazeinterp.checkpoints.registry import save_policy
from mazeinterp.core.model import ImpalaPolicy


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint: Path) -> Path:
    """The shared tiny checkpoint (conftest), under this file's short name."""
    return tiny_checkpoint


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Finite weights (fc_policy 3e38) whose logits are inf for every input."""
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in ImpalaPolicy(scale=1).state_dict().items()}
    state["fc_policy.weight"].fill_(3e38)
    state["embedder.fc.weight"].zero_()
    state["embedder.fc.bias"].fill_(1.0)
    path = tmp_path_factory.mktemp("ckpt") / "overflow.pt"
    torch.save({"model_state_dict": state, "optimizer_state_dict": {}}, path)
    return path


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI; assert exit 2 and exactly one stderr line; return that line."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (argv, code, err)
    assert lines[0].startswith(f"mazeinterp {argv[0]}: error: "), lines[0]
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_numbers_are_one_line_and_exit_2_before_any_work(capsys, tiny: Path, tmp_path: Path) -> None:
    ck = ["--checkpoint", str(tiny)]
    out = ["--out", str(tmp_path / "o")]
    cases = [
        (["steer", *ck, *out, "--coefficient", "1e308"], "expected a number within float32's range"),
        (["vfield", *ck, *out, "--vector", "cheese", "--coefficient=-1e308"], "within float32's range"),
        (["rollout", *ck, *out, "--max-steps", "10000000000"], "procgen's limit of 2147483646 steps"),
        (["render", *out, "--seeds", "-1"], "level seeds must lie in 0 … 2147483646, got -1"),
        (["render", *out, "--seeds", "0", "2147483647"], "got 2147483647"),
        (["channels", *ck, *out, "--method", "probe", "--n-mazes", "1"], "the probe needs at least 4 mazes, got 1"),
        (["rollout", *ck, *out, "--n-mazes", "2000000000"], "--n-mazes: maze states: 2000000000 mazes would need at least"),
    ]
    for argv, reason in cases:
        assert reason in _error_line(capsys, argv), argv
    assert not (tmp_path / "o").exists(), "nothing was written"


def test_rollouts_that_cannot_fit_in_memory_are_one_line(capsys, tiny: Path, tmp_path: Path) -> None:
    line = _error_line(capsys, ["rollout", "--checkpoint", str(tiny), "--out", str(tmp_path / "o"),
                                "--max-steps", "2000000000", "--batch-size", "64"])
    assert "64 envs × 2000000000 steps would need at least" in line and "lower max_steps or batch_size" in line


def test_broken_checkpoints_are_one_line(capsys, overflowing: Path, tmp_path: Path) -> None:
    line = _error_line(capsys, ["rollout", "--checkpoint", str(overflowing), "--out", str(tmp_path / "o"),
                                "--n-mazes", "1", "--max-steps", "3"])
    assert "overflow.pt: the weights are finite, but the policy's outputs on a probe input are not" in line
    huge = tmp_path / "huge.pt"
    with open(huge, "wb") as f:
        f.truncate(20 * 2**30)  # sparse
    line = _error_line(capsys, ["info", "--checkpoint", str(huge), "--out", str(tmp_path / "i")])
    assert "huge.pt is 20.0 GiB, larger than any checkpoint" in line


def _toml(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sweep_files_that_cannot_run_are_one_line(capsys, tiny: Path, tmp_path: Path) -> None:
    base = f'checkpoint = "{tiny}"\nn_mazes = 2\nshard_size = 2\nchannels = [1]\n'
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    cases = [
        (binary, "binary.toml: not a TOML text file (byte 128 is not UTF-8)"),
        (folder, "folder.toml: cannot read the sweep config (Is a directory)"),
        (_toml(tmp_path, "steps.toml", base + "max_steps = 10000000000\n"),
         "steps.toml: max_steps: 10000000000 is above procgen's limit"),
        (_toml(tmp_path, "memory.toml", base + "max_steps = 2000000000\n"),
         "memory.toml: max_steps and batch_size: 64 envs × 2000000000 steps would need at least"),
        (_toml(tmp_path, "refs.toml", base + "reference_mazes = 1000000000\n"),
         "refs.toml: reference_mazes: 1000000000 mazes would need at least"),
        (_toml(tmp_path, "coef.toml", base + "coefficients = [1e308]\n"),
         "coef.toml: coefficients: expected a non-empty list of finite numbers within float32's range"),
        (_toml(tmp_path, "mazes.toml", base.replace("n_mazes = 2", "n_mazes = 1073741823")),
         "mazes.toml: n_mazes: 1073741823 mazes would need at least"),
    ]
    for path, reason in cases:
        line = _error_line(capsys, ["sweep", str(path), "--out", str(tmp_path / "s"), "--workers", "0"])
        assert reason in line, line
    assert not (tmp_path / "s").exists()


def test_a_ray_client_address_with_no_server_is_one_line(capsys, tiny: Path, tmp_path: Path) -> None:
    toml = _toml(tmp_path, "s.toml", f'checkpoint = "{tiny}"\nn_mazes = 2\nshard_size = 2\nchannels = [1]\n')
    address = f"ray://127.0.0.1:{_closed_port()}"
    line = _error_line(capsys, ["sweep", str(toml), "--out", str(tmp_path / "s"), "--ray-address", address])
    assert f"no Ray client server answers at {address}" in line
    line = _error_line(capsys, ["sweep", str(toml), "--out", str(tmp_path / "s"), "--ray-address", "ray://"])
    assert "a ray:// address needs a host and a port (ray://HOST:10001), got 'ray://'" in line
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_ray_auto_with_no_cluster_is_one_line(capsys, tiny: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))  # no cluster file of another run
    toml = _toml(tmp_path, "s.toml", f'checkpoint = "{tiny}"\nn_mazes = 2\nshard_size = 2\nchannels = [1]\n')
    line = _error_line(capsys, ["sweep", str(toml), "--out", str(tmp_path / "s"), "--ray-address", "auto"])
    assert "cannot connect to Ray at 'auto'" in line
    assert not (tmp_path / "s").exists()
    assert os.environ.get("RAY_ADDRESS") is None


def test_a_sweep_whose_edit_overflows_is_one_line_naming_the_checkpoint(capsys, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ImpalaPolicy(scale=1)
    with torch.no_grad():
        model.embedder.fc.weight.fill_(1.0)  # every hidden unit sums relu3_out: one channel at 3e38 overflows it
    checkpoint = save_policy(model, tmp_path / "sums.pt")
    toml = _toml(tmp_path, "clamp.toml", f'checkpoint = "{checkpoint}"\nn_mazes = 2\nshard_size = 2\nchannels = [1]\n'
                                         'hooks = ["embedder.relu3_out"]\nkinds = ["clamp"]\ncoefficients = [3e38]\n'
                                         'max_steps = 5\n')
    line = _error_line(capsys, ["sweep", str(toml), "--out", str(tmp_path / "s"), "--workers", "0"])
    assert "the policy's logits hold NaN or inf" in line and f"(checkpoint {checkpoint} with " in line
