"""scripts/failure_report.py: losses by maze side, misleading cells on and off the path, replays of lost mazes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mazeinterp.maze import grid
from mazeinterp.maze.moves import Move
from mazeinterp.rollout import NoopPolicy, RolloutConfig, load_mazes, run_rollouts
from mazeinterp.rollout.sources import place_stream_cheese

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "failure_report.py"

# the path from the start (4, 0) climbs the left column, crosses row 2, climbs to row 0 and runs left to the
# cheese; row 4 right of the start is a dead end off the path
SNAKE = """
C....
####.
.....
.####
.....
"""


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("failure_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["failure_report"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["failure_report"]


def _probs(moves: list[Move]) -> np.ndarray:
    return np.eye(len(Move))[[int(m) for m in moves]]


def test_misleading_cells_are_the_wrong_most_probable_moves_split_by_the_path(script) -> None:
    open_cells, cheese = grid.parse_ascii(SNAKE)
    walk = [(4, 0), (4, 1), (4, 2), (4, 1), (4, 0), (3, 0), (2, 0), (2, 1)]
    chosen = [Move.RIGHT, Move.RIGHT, Move.LEFT, Move.RIGHT, Move.UP, Move.UP, Move.LEFT, Move.RIGHT]
    # oracle: (4, 0) UP, (4, 1) and (4, 2) LEFT, (3, 0) UP, (2, 0) and (2, 1) RIGHT
    cells = script.misleading_cells(walk, _probs(chosen), open_cells, cheese)
    assert cells == {(4, 0): True, (4, 1): False, (2, 0): True}
    # the cheese's own cell has no oracle move and never counts
    assert script.misleading_cells([(0, 1), (0, 0)], _probs([Move.LEFT, Move.NOOP]), open_cells, cheese) == {}


def test_side_table_counts_mazes_and_cheese_per_side(script) -> None:
    episodes = [SimpleNamespace(maze_size=s, outcome=o) for s, o in
                [(5, "cheese"), (5, "neither"), (3, "cheese"), (9, "top_right"), (5, "cheese")]]
    rows = script.side_table(episodes)
    assert [(r.side, r.mazes, r.reached) for r in rows] == [(3, 1, 1), (5, 3, 2), (9, 1, 0)]
    # Wilson, z = 1.96: centre (2/3 + z²/6) / (1 + z²/3) = 0.5731, half-width 0.3654
    assert rows[1].interval == pytest.approx((0.2077, 0.9385), abs=1e-4)


def test_a_policy_that_never_moves_loses_everywhere_on_its_start_cell(script) -> None:
    report = script.failure_report(NoopPolicy(), range(8), 15, max_steps=20)
    assert (report.mazes, report.reached, report.lost_seeds, report.trapped) == (8, 0, tuple(range(8)), 8)
    assert sum(row.mazes for row in report.by_side) == 8 and all(row.reached == 0 for row in report.by_side)
    # the start cell, where NOOP is never the oracle's move, lies on every shortest path
    assert (report.misleading_on_path, report.misleading_off_path) == (8, 0)
    assert report.replays == {1: 0, 2: 0}
    text = script.format_report(report)
    assert "0 of 8 mazes" in text and "replayed with action seed 2 (same cheese cells): 0 of 8" in text


def test_replays_keep_the_cheese_cells_and_count_the_recoveries(script, model) -> None:
    seeds, region = range(24), 15
    report = script.failure_report(model, seeds, region, max_steps=12, replay_seeds=(1,))
    # the main run's episodes are those of playing the seeds themselves
    by_seed = run_rollouts(model, seeds, config=RolloutConfig(seed=0, cheese_region=region, max_steps=12,
                                                             progress=False))
    assert report.lost_seeds == tuple(e.level_seed for e in by_seed.episodes if e.outcome != "cheese")
    assert 0 < len(report.lost_seeds) < len(seeds)
    starts = load_mazes(seeds)
    lost = [place_stream_cheese(seed, starts[seed], region, 0) for seed in report.lost_seeds]
    again = run_rollouts(model, lost, config=RolloutConfig(seed=1, max_steps=12, progress=False))
    expected = sum(e.outcome == "cheese" for e in again.episodes)
    assert 0 < expected and report.replays == {1: expected}


def test_an_existing_json_file_is_refused_before_any_rollout(script, tmp_path, monkeypatch, capsys) -> None:
    earlier = tmp_path / "report.json"
    earlier.write_text('{"kept": true}\n')
    monkeypatch.setattr(sys, "argv", ["failure_report.py", "--checkpoint", str(tmp_path / "none.pt"),
                                      "--region", "15", "--json", str(earlier)])
    with pytest.raises(SystemExit) as exit_info:
        script.main()
    assert exit_info.value.code == 2
    assert f"{earlier} already exists; name a new file" in capsys.readouterr().err
    assert earlier.read_text() == '{"kept": true}\n'


def test_main_prints_the_report_and_writes_it_as_json(script, model, tmp_path, monkeypatch, capsys) -> None:
    from mazeinterp.checkpoints.registry import save_policy

    checkpoint = tmp_path / "tiny.pt"
    save_policy(model, checkpoint)
    out = tmp_path / "reports" / "r.json"
    monkeypatch.setattr(sys, "argv", ["failure_report.py", "--checkpoint", str(checkpoint), "--region", "15",
                                      "--n", "3", "--replays", "1", "--json", str(out)])
    script.main()
    written = json.loads(out.read_text())
    assert (written["checkpoint"], written["mazes"], written["region"]) == (str(checkpoint), 3, 15)
    assert sum(row["mazes"] for row in written["by_side"]) == 3
    assert list(written["replays"]) == ["1"] and len(written["lost_seeds"]) == 3 - written["reached"]
    assert f"({written['reached']} of 3 mazes)" in capsys.readouterr().out
