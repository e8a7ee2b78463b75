"""scripts/evaluate_agent.py plays only the standard mazes that count, with the episodes of a full run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate_agent.py"


def _script():
    spec = importlib.util.spec_from_file_location("evaluate_agent", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_counted_mazes_keep_their_episodes(model) -> None:
    seeds = range(1_000_000, 1_000_040)
    config = RolloutConfig(seed=0, max_steps=40, progress=False, record_trajectories=True)
    full = run_rollouts(model, seeds, config=config).filter(decision_square_only=True, cheese_outside_region=5)
    script = _script()
    counted = script.counted_positions(load_mazes(seeds))
    assert 5 < len(counted) < 35  # a real selection, neither everything nor nothing
    assert [seeds[i] for i in counted] == [ep.level_seed for ep in full.episodes]
    only = script.counted_standard_rollouts(model, seeds, config)
    assert len({ep.trajectory for ep in full.episodes}) == len(counted)  # the sampled walks differ
    assert [(ep.level_seed, ep.outcome, ep.steps, ep.trajectory) for ep in only.episodes] == \
        [(ep.level_seed, ep.outcome, ep.steps, ep.trajectory) for ep in full.episodes]
