"""The guides' examples work: the example experiment script runs end to end on the shipped
agent, and every ``mazeinterp …`` command shown in a ```bash block of docs/*.md parses."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mazeinterp.checkpoint import DEFAULT_AGENT, load_policy
from mazeinterp.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCRIPT = DOCS / "examples" / "ablation_experiment.py"

N_MAZES = 3
TOP_K = 2
TINY = ["--n-mazes", str(N_MAZES), "--max-steps", "15", "--top-k", str(TOP_K),
        "--discovery-mazes", "6", "--reference-mazes", "6"]


def _run_script(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *TINY, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("ablation") / "run"
    return _run_script(out), out


def test_example_script_writes_sensible_numbers(first_run) -> None:
    proc, out = first_run
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())

    assert result["n_mazes"] == N_MAZES
    diff = result["difference"]
    assert diff["n"] == N_MAZES
    for key in ("p_cheese_baseline", "p_cheese_ablated"):
        assert 0.0 <= result[key] <= 1.0
    assert diff["estimate"] == pytest.approx(result["p_cheese_ablated"] - result["p_cheese_baseline"])
    assert -1.0 <= diff["low"] <= diff["estimate"] <= diff["high"] <= 1.0
    for summary in (result["baseline"], result["ablated"]):
        assert summary["n"] == N_MAZES
        assert sum(summary["counts"].values()) == N_MAZES
        for outcome, p in summary["proportions"].items():
            low, high = summary["intervals"][outcome]
            assert 0.0 <= low <= p <= high <= 1.0

    n_channels = load_policy(DEFAULT_AGENT).hook_points()[result["layer"]][0]
    channels = result["channels"]
    assert len(channels) == TOP_K and len(set(channels)) == TOP_K
    assert all(isinstance(c, int) and 0 <= c < n_channels for c in channels)
    assert [row["channel"] for row in result["channel_table"]] == channels
    assert "paired difference" in proc.stdout


def test_example_script_never_overwrites(first_run) -> None:
    proc, out = first_run
    assert proc.returncode == 0, proc.stderr
    path = out / "result.json"
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns

    again = _run_script(out)
    assert again.returncode != 0
    message = again.stderr.strip().splitlines()
    assert message and "already exist" in message[-1] and "--overwrite" in message[-1], again.stderr
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def _documented_commands() -> list[str]:
    """Every line of a ```bash block in docs/*.md that starts with ``mazeinterp `` (continuations joined)."""
    commands = []
    for md in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```bash\n(.*?)```", md.read_text(), flags=re.S):
            text = re.sub(r"\\\n\s*", " ", block)
            commands += [f"{md.name}: {line.strip()}" for line in text.splitlines()
                         if line.strip().startswith("mazeinterp ")]
    return commands


COMMANDS = _documented_commands()


def test_the_guides_show_commands() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("where_and_command", COMMANDS, ids=[c[:80] for c in COMMANDS])
def test_documented_command_parses(where_and_command: str) -> None:
    command = where_and_command.split(": ", 1)[1]
    tokens = shlex.split(command, comments=True)[1:]
    parser = build_parser()
    try:
        parser.parse_args(tokens)
    except SystemExit as exc:
        if exc.code == 0 and ("--help" in tokens or "-h" in tokens):
            return
        pytest.fail(f"{where_and_command!r} does not parse (exit status {exc.code})")
