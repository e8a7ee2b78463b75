"""PPO on ``mazeinterp/Maze-v0`` through Gymnasium's vector API, in one CleanRL-style file.

What it shows: the maze as a Gymnasium env (``gymnasium.make_vec``), with the
published cheese region, driving the package's IMPALA policy; every finished
episode's outcome (``"cheese"``, ``"top_right"``, ``"neither"``) read from
``info``. The loop is CleanRL's ``ppo_procgen.py`` cut to its core: collect
``num_steps`` steps from ``num_envs`` envs, compute GAE advantages, then a
few epochs of clipped policy and value updates on minibatches.

Run it from the repository root (a few hundred steps take a few seconds)::

    python docs/examples/gymnasium_ppo.py --total-steps 512
    python docs/examples/gymnasium_ppo.py --checkpoint maze-s1-r5-v5 --learning-rate 0 --total-steps 4096  # evaluate

For real training use ``mazeinterp train ppo``, which batches procgen
directly (faster) and saves checkpoints; this script shows the same
algorithm on the Gymnasium interface. It prints one line per update and a
final count of outcomes; the same arguments give the same numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from dataclasses import dataclass

import gymnasium
import numpy as np
import torch
from torch import nn

import mazeinterp.maze.gym_env  # noqa: F401 -- registers mazeinterp/Maze-v0
from mazeinterp.checkpoints.registry import load_policy
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.maze.observations import obs_to_tensor


@dataclass(frozen=True)
class Args:
    """Hyperparameters (CleanRL's procgen defaults, scaled down)."""

    seed: int = 0
    """Seeds torch, the envs' level draws and their cheese."""
    num_envs: int = 8
    """Envs stepped side by side."""
    num_steps: int = 32
    """Steps per env per update."""
    total_steps: int = 512
    """Env steps in all (all envs together)."""
    cheese_region: int = 5
    """Cheese in the top-right n × n corner (5: the published training distribution)."""
    checkpoint: str | None = None
    """Start from this agent (a shipped name or a path); None: a fresh random scale-1 network."""
    learning_rate: float = 5e-4
    """Adam's step size (0 only evaluates)."""
    gamma: float = 0.999
    """Discount."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    update_epochs: int = 2
    """Passes over each batch."""
    num_minibatches: int = 4
    """Minibatches per pass."""
    clip_coef: float = 0.2
    """PPO's ratio clip."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Gradient norm clip."""


def parse_args(argv: list[str] | None = None) -> Args:
    """The :class:`Args` of the command line (one ``--flag`` per field)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Args):
        kind = str if field.name == "checkpoint" else type(field.default)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=field.default)
    args = Args(**vars(parser.parse_args(argv)))
    if args.num_envs < 1 or args.num_steps < 1 or args.total_steps < args.num_envs * args.num_steps:
        parser.error("need num_envs, num_steps >= 1 and total_steps >= num_envs * num_steps")
    return args


def train(args: Args) -> dict[str, object]:
    """Run PPO for ``args.total_steps`` steps; return the outcome counts of finished episodes and the last losses."""
    torch.manual_seed(args.seed)
    policy: ImpalaPolicy = load_policy(args.checkpoint) if args.checkpoint else ImpalaPolicy(scale=1)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate, eps=1e-5)
    envs = gymnasium.make_vec("mazeinterp/Maze-v0", num_envs=args.num_envs, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
                              cheese_region=args.cheese_region)
    n, t = args.num_envs, args.num_steps
    obs_buf = torch.zeros((t, n, 3, 64, 64))
    actions, logprobs, rewards, dones, values = (torch.zeros((t, n)) for _ in range(5))
    next_obs = obs_to_tensor(envs.reset(seed=args.seed)[0])
    next_done = torch.zeros(n)
    outcomes: Counter[str] = Counter()
    losses: dict[str, float] = {}
    for update in range(args.total_steps // (n * t)):
        for step in range(t):
            obs_buf[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                logits, value = policy(next_obs)
            dist = torch.distributions.Categorical(logits=logits)
            action = dist.sample()
            actions[step], logprobs[step], values[step] = action, dist.log_prob(action), value.flatten()
            obs, reward, terminated, truncated, info = envs.step(action.numpy())
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs, next_done = obs_to_tensor(obs), torch.as_tensor(terminated | truncated, dtype=torch.float32)
            if "final_info" in info:  # the info of the steps that ended an episode
                outcomes.update(info["final_info"]["outcome"][info["final_info"]["_outcome"]].tolist())
        with torch.no_grad():
            next_value = policy(next_obs)[1].flatten()
        advantages = torch.zeros_like(rewards)
        last = torch.zeros(n)
        for step in reversed(range(t)):
            not_done = 1.0 - (next_done if step == t - 1 else dones[step + 1])
            following = next_value if step == t - 1 else values[step + 1]
            delta = rewards[step] + args.gamma * following * not_done - values[step]
            last = delta + args.gamma * args.gae_lambda * not_done * last
            advantages[step] = last
        returns = advantages + values
        b_obs, b_actions, b_logprobs = obs_buf.reshape(-1, 3, 64, 64), actions.flatten(), logprobs.flatten()
        b_adv, b_returns = advantages.flatten(), returns.flatten()
        order = np.random.default_rng([args.seed, update]).permutation(n * t)
        size = n * t // args.num_minibatches
        for _ in range(args.update_epochs):
            for start in range(0, n * t, size):
                mb = torch.as_tensor(order[start:start + size])
                logits, value = policy(b_obs[mb])
                dist = torch.distributions.Categorical(logits=logits)
                ratio = (dist.log_prob(b_actions[mb]) - b_logprobs[mb]).exp()
                adv = (b_adv[mb] - b_adv[mb].mean()) / (b_adv[mb].std() + 1e-8)
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * ((value.flatten() - b_returns[mb]) ** 2).mean()
                entropy = dist.entropy().mean()
                loss = pg_loss - args.ent_coef * entropy + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), args.max_grad_norm)
                optimizer.step()
        losses = {"policy": pg_loss.item(), "value": v_loss.item(), "entropy": entropy.item()}
        print(f"update {update + 1}: {(update + 1) * n * t} steps, policy loss {losses['policy']:.4f}, "
              f"value loss {losses['value']:.4f}, entropy {losses['entropy']:.3f}, episodes so far {dict(outcomes)}")
    envs.close()
    return {"outcomes": dict(outcomes), "losses": losses}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, train, print the result as JSON."""
    result = train(parse_args(argv))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
