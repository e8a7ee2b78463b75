"""Channel scans: a planted channel is found, the files and errors of ``mazeinterp scan``, the standard test mazes."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mazeinterp import cli
from mazeinterp.checkpoints.registry import save_policy
from mazeinterp.core.hooks import activations
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.rollout import load_mazes
from mazeinterp.rollout.sources import is_standard_test_maze, standard_test_mazes
from mazeinterp.analysis.scan import scan_channels

HOOK = "embedder.relu3_out"
PLANTED = 17


@pytest.fixture(scope="module")
def planted(model) -> ImpalaPolicy:
    """The random model with the fully connected layer reading (almost) only channel PLANTED of relu3.

    The policy head is scaled up so that the moves, and so P(cheese), depend on the hidden layer at all
    (a fresh policy head is nearly uniform).
    """
    out = copy.deepcopy(model)
    with torch.no_grad():
        weight = out.embedder.fc.weight.view(256, 32, 64)   # (hidden, channel, pixel) of the flattened map
        weight *= 0.02
        weight[:, PLANTED] *= 150.0
        out.fc_policy.weight *= 100.0
    return out


@pytest.fixture(scope="module")
def small_states(seeded_states):
    return [s for s in seeded_states if 5 <= s.maze_size <= 9][:3]


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_scan_finds_the_planted_channel(planted, small_states, kind: str) -> None:
    mean = activations(planted, HOOK, small_states).mean(0) if kind == "mean" else None
    result = scan_channels(planted, small_states, HOOK, kind=kind, top=4, mean=mean, progress=False)
    top = result.scores[0]
    assert top.channel == PLANTED
    assert abs(top.exact) > (0.02 if kind == "zero" else 1e-3) and np.sign(top.exact) == np.sign(top.estimate)
    others = result.verified[1:]
    assert len(others) == 3 and all(abs(s.exact) < abs(top.exact) / 5 for s in others)
    assert top.exact_low <= top.exact <= top.exact_high
    assert [s.channel for s in result.scores if s.exact is None] and len(result.scores) == 32
    assert sorted(s.channel for s in result.scores) == list(range(32))
    summary = result.summary()
    assert set(summary) == {"hook", "kind", "n_mazes", "top", "seconds", "baseline_p_cheese",
                            "baseline_p_region_first", "spearman"}
    assert summary["n_mazes"] == 3 and 0 < summary["baseline_p_cheese"] < 1


def test_exact_effects_are_paired_differences_of_the_exact_outcomes(planted, small_states) -> None:
    from mazeinterp.core.interventions import ZeroAblate
    from mazeinterp.analysis.vfield import outcome_probabilities

    result = scan_channels(planted, small_states[:2], HOOK, kind="zero", top=1, progress=False)
    channel = result.scores[0].channel
    base = outcome_probabilities(planted, small_states[:2])
    ablated = outcome_probabilities(planted, small_states[:2], [ZeroAblate(HOOK, channels=[channel])])
    assert result.scores[0].exact == pytest.approx(float(np.mean(ablated[:, 0] - base[:, 0])), abs=1e-12)
    assert result.baseline_p_cheese == pytest.approx(float(base[:, 0].mean()), abs=1e-12)
    # P(region first), the fourth column, the same way
    assert result.scores[0].region_first == pytest.approx(float(np.mean(ablated[:, 3] - base[:, 3])), abs=1e-12)
    assert result.baseline_p_region_first == pytest.approx(float(base[:, 3].mean()), abs=1e-12)
    low, high = result.scores[0].region_first_low, result.scores[0].region_first_high
    assert low <= result.scores[0].region_first <= high
    assert all(s.region_first is None for s in result.scores[1:])
    assert "spearman" not in result.summary()  # fewer than 3 verified channels


def test_bad_scans_are_refused(model, small_states) -> None:
    with pytest.raises(ValueError, match="kind must be one of mean, zero"):
        scan_channels(model, small_states, HOOK, kind="resample")
    with pytest.raises(ValueError, match="inside a residual branch"):
        scan_channels(model, small_states, "embedder.block2.res1.conv1_out")
    with pytest.raises(ValueError, match="top must be between 0 and the 32 channels"):
        scan_channels(model, small_states, HOOK, top=33)
    with pytest.raises(ValueError, match="maze 0 has no cheese"):
        scan_channels(model, [small_states[0].without_cheese()], HOOK)
    with pytest.raises(ValueError, match=r"mean has shape \(3,\)"):
        scan_channels(model, small_states, HOOK, mean=torch.zeros(3))


def test_standard_test_mazes_are_the_first_that_count_from_a_million() -> None:
    seeds, states = standard_test_mazes(3)
    assert seeds[0] >= 1_000_000 and seeds == sorted(seeds) and len(states) == 3
    every = load_mazes(range(1_000_000, seeds[-1] + 1))
    assert [1_000_000 + i for i, s in enumerate(every) if is_standard_test_maze(s)] == seeds
    assert all(s.inner_grid.tolist() == e.inner_grid.tolist() for s, e in zip(states, [every[x - 1_000_000]
                                                                                         for x in seeds]))


def test_a_cheese_in_the_corner_or_on_the_corner_path_does_not_count(hand_maze) -> None:
    assert not is_standard_test_maze(hand_maze)                      # cheese (0, 4) is in the top-right 5×5
    assert not is_standard_test_maze(hand_maze, region=1)            # ... and on the top-right path
    assert is_standard_test_maze(hand_maze.with_cheese((0, 0)), region=1)
    with pytest.raises(ValueError, match="n_mazes must be at least 1"):
        standard_test_mazes(0)


# --------------------------------------------------------------------------------------
# the command


def _main(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = int(exc.code)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def planted_checkpoint(tmp_path_factory: pytest.TempPathFactory, planted) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "planted.pt"
    save_policy(planted, path)
    return path


def test_scan_command_writes_its_table_and_summary(planted_checkpoint: Path, tmp_path: Path) -> None:
    argv = ["scan", "--checkpoint", str(planted_checkpoint), "--hook", HOOK, "--kind", "zero", "--n-mazes", "2",
            "--top", "3", "--out", str(tmp_path), "--no-progress"]
    code, out, err = _main(argv)
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "scan.csv").open()))
    assert list(rows[0]) == ["channel", "estimate", "exact", "exact_low", "exact_high", "region_first",
                             "region_first_low", "region_first_high"]
    assert len(rows) == 32 and rows[0]["channel"] == str(PLANTED)
    assert all(r["exact"] for r in rows[:3]) and not any(r["exact"] or r["exact_low"] for r in rows[3:])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"hook", "kind", "n_mazes", "top", "seconds", "baseline_p_cheese", "baseline_p_region_first",
            "spearman"} <= set(summary)
    assert summary["hook"] == HOOK and summary["kind"] == "zero" and summary["n_mazes"] == 2 and summary["top"] == 3
    assert "from 1000000 on with a decision square" in summary["mazes"] and len(summary["level_seeds"]) == 2
    assert f"   1 {PLANTED:>7}" in out and "wrote" in out.splitlines()[-1]
    # a second run into the same folder keeps the first one's files
    before = (tmp_path / "scan.csv").read_bytes()
    code, _, err = _main(argv)
    assert code == cli.EXIT_BAD_INPUT and "already exist" in err and (tmp_path / "scan.csv").read_bytes() == before


@pytest.mark.parametrize("extra, message", [
    (["--hook", "embedder.block9_out"], "unknown hook point"),
    (["--hook", "embedder.block2.res1.conv1_out"], "inside a residual branch"),
    (["--hook", HOOK, "--top", "40"], "--top 40 is more than the 32 channels"),
    (["--kind", "resample"], "invalid choice"),
    (["--start-level", "2147483640"], "level seeds must stay below"),
])
def test_scan_command_bad_input_is_one_line_and_exit_2(planted_checkpoint: Path, tmp_path: Path, extra: list[str],
                                                       message: str) -> None:
    code, _, err = _main(["scan", "--checkpoint", str(planted_checkpoint), *extra, "--out", str(tmp_path)])
    assert code == cli.EXIT_BAD_INPUT
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "scan.csv").exists()


@pytest.mark.slow
def test_workers_give_the_same_numbers(planted, small_states) -> None:
    alone = scan_channels(planted, small_states[:2], HOOK, kind="zero", top=2, progress=False)
    pooled = scan_channels(planted, small_states[:2], HOOK, kind="zero", top=2, workers=2, progress=False)
    assert pooled.rows() == alone.rows()
