"""The shipped default agent is a real, trained network (not random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mazeinterp import checkpoint
from mazeinterp.maze.env import MazeEnv, StateRenderer
from mazeinterp.model import ImpalaPolicy, move_probs, obs_to_tensor
from mazeinterp.rollout import RolloutConfig, run_rollouts
from mazeinterp.train.oracle import labelled_frames

# Measured for the interim agent when it was exported: agreement 0.76 (a random network: 0.0,
# it always picks no-op), 6 of these 16 mazes solved (a random network: 2). The bars sit below.
MIN_ORACLE_AGREEMENT = 0.7
MIN_SOLVED_OF_16 = 4


@pytest.fixture(scope="module")
def agent() -> ImpalaPolicy:
    assert checkpoint.DEFAULT_AGENT in checkpoint.SHIPPED
    return checkpoint.load_policy(checkpoint.DEFAULT_AGENT)


@pytest.fixture(scope="module")
def training_mazes():
    with MazeEnv.from_seeds(range(900, 916), cheese_region=5, seed=0) as env:
        return env.get_states()


def _oracle_agreement(policy: ImpalaPolicy, states) -> float:
    renderer = StateRenderer(batch_size=128)
    obs, moves = labelled_frames(states[:6], renderer)
    renderer.close()
    with torch.inference_mode():
        chosen = move_probs(policy(obs_to_tensor(obs))[0]).argmax(-1).numpy()
    return float(np.mean(chosen == moves))


def test_every_shipped_name_loads(agent: ImpalaPolicy) -> None:
    for name in checkpoint.SHIPPED:
        policy = checkpoint.load_policy(name)
        assert policy.metadata.get("trainer") in {"imitate", "ppo"}
        assert policy.metadata.get("config", {}).get("cheese_region") == 5


def test_agent_moves_like_the_oracle_far_above_chance(agent: ImpalaPolicy, training_mazes) -> None:
    torch.manual_seed(0)
    random_agreement = _oracle_agreement(ImpalaPolicy(scale=agent.scale).eval(), training_mazes)
    agreement = _oracle_agreement(agent, training_mazes)
    assert agreement >= MIN_ORACLE_AGREEMENT > random_agreement + 0.2


def test_agent_solves_fixed_training_mazes(agent: ImpalaPolicy, training_mazes) -> None:
    result = run_rollouts(agent, training_mazes, config=RolloutConfig(seed=0, progress=False))
    assert result.summary().counts["cheese"] >= MIN_SOLVED_OF_16
