"""Every shipped agent is a real, trained network (not random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mazeinterp.checkpoints import registry as checkpoint
from mazeinterp.maze.env import MazeEnv, StateRenderer
from mazeinterp.core.model import ImpalaPolicy, move_probs, obs_to_tensor
from mazeinterp.rollout import RolloutConfig, run_rollouts
from mazeinterp.train.oracle import labelled_frames

# Per agent: (cheese region it was trained on, oracle agreement, mazes of these 16 solved), the last two
# set below what was measured at export on 16 mazes of the agent's own training distribution.
# maze-s1-r5-v5: agreement 0.95, 15 of 16 solved. maze-s1-r1: agreement 0.95, 14 of 16 solved.
# maze-s1-r15: agreement 0.96, 14 of 16 solved.
# A random network: 0.0 (it always picks no-op), 2 of 16.
BARS = {
    "maze-s1-r5-v5": (5, 0.9, 12),
    "maze-s1-r1": (1, 0.9, 12),
    "maze-s1-r15": (15, 0.9, 12),
}


def test_the_default_agent_is_shipped_and_every_agent_has_bars() -> None:
    assert checkpoint.DEFAULT_AGENT in checkpoint.SHIPPED
    assert set(BARS) == set(checkpoint.SHIPPED)


@pytest.fixture(scope="module", params=sorted(checkpoint.SHIPPED))
def named_agent(request) -> tuple[str, ImpalaPolicy]:
    return request.param, checkpoint.load_policy(request.param)


@pytest.fixture(scope="module")
def training_mazes(named_agent):
    """16 fixed mazes of the agent's own training distribution (its cheese region)."""
    region = BARS[named_agent[0]][0]
    with MazeEnv.from_seeds(range(900, 916), cheese_region=region, seed=0) as env:
        return env.get_states()


def _oracle_agreement(policy: ImpalaPolicy, states) -> float:
    renderer = StateRenderer(batch_size=128)
    obs, moves = labelled_frames(states[:6], renderer)
    renderer.close()
    with torch.inference_mode():
        chosen = move_probs(policy(obs_to_tensor(obs))[0]).argmax(-1).numpy()
    return float(np.mean(chosen == moves))


def test_every_shipped_agent_records_its_training(named_agent) -> None:
    name, agent = named_agent
    assert agent.metadata.get("trainer") in {"imitate", "ppo"}
    assert agent.metadata.get("config", {}).get("cheese_region") == BARS[name][0]


def test_agent_moves_like_the_oracle_far_above_chance(named_agent, training_mazes) -> None:
    name, agent = named_agent
    torch.manual_seed(0)
    random_agreement = _oracle_agreement(ImpalaPolicy(scale=agent.scale).eval(), training_mazes)
    agreement = _oracle_agreement(agent, training_mazes)
    assert agreement >= BARS[name][1] > random_agreement + 0.2


def test_agent_solves_fixed_training_mazes(named_agent, training_mazes) -> None:
    name, agent = named_agent
    result = run_rollouts(agent, training_mazes, config=RolloutConfig(seed=0, progress=False))
    assert result.summary().counts["cheese"] >= BARS[name][2]
