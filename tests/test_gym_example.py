"""docs/examples/gymnasium_ppo.py runs: a few hundred PPO steps on mazeinterp/Maze-v0, and an evaluation of the
shipped agent whose finished episodes carry their outcomes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from mazeinterp.maze.outcomes import OUTCOMES

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "examples" / "gymnasium_ppo.py"


def _run(*args: str) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_ppo_updates_a_fresh_network() -> None:
    result = _run("--num-envs", "4", "--num-steps", "32", "--total-steps", "256")
    losses = result["losses"]
    assert set(losses) == {"policy", "value", "entropy"} and all(math.isfinite(v) for v in losses.values())
    assert 0 < losses["entropy"] <= math.log(15) + 1e-6  # a distribution over the 15 actions


def test_evaluating_the_shipped_agent_counts_outcomes_from_info() -> None:
    result = _run("--checkpoint", "maze-s1-r5-v5", "--learning-rate", "0", "--num-envs", "2", "--num-steps", "96",
                  "--total-steps", "192", "--num-minibatches", "1", "--update-epochs", "1")
    counts = result["outcomes"]
    assert counts and set(counts) <= set(OUTCOMES) and counts.get("cheese", 0) >= 1


def test_bad_arguments_exit_2() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--num-envs", "4", "--num-steps", "32", "--total-steps", "10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "total_steps >= num_envs * num_steps" in proc.stderr
