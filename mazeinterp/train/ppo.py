"""PPO for the procgen maze policy, in one readable module (in the spirit of CleanRL's ``ppo_procgen.py``).

The defaults of :class:`PPOConfig` are the published maze settings (those of the papers
named in ``docs/replication.md``):
512 envs × 256 steps, 3 epochs of 16 minibatches (8,192 samples each),
γ 0.999, λ 0.95, Adam lr 5e-4 (eps 1e-5, linearly annealed), clip 0.2 (policy
and value), value coefficient 0.5, entropy 0.01, grad-norm clip 0.5, normalized
advantages and rewards, hard mode, unlimited levels, cheese in the top-right
5×5 region, IMPALA scale 4, 80M steps.

One update:

1. **Rollout** -- ``num_steps`` steps of ``num_envs`` :class:`~mazeinterp.maze.env.MazeEnv`
   envs, actions sampled from the policy. Observations stay uint8 NHWC in the
   buffer (on the training device); they become float NCHW per forward pass,
   through :func:`mazeinterp.core.model.obs_to_tensor`. Rewards are divided by the
   running std of the discounted return and clipped to ±``reward_clip``
   (OpenAI baselines' ``VecNormalize(ob=False)``, as in the training code of the
   published agent). Episodes that end on the 500-step time-out count as terminal.
2. **GAE** -- :func:`compute_gae`.
3. **Optimization** -- ``update_epochs`` passes over the batch in
   ``num_minibatches`` shuffled minibatches: clipped policy loss, clipped value
   loss, entropy bonus (:func:`ppo_loss`, :func:`ppo_update`).

Every update appends a row to ``out_dir/log.csv`` (see :data:`LOG_COLUMNS`).
Every ``checkpoint_every`` updates ``out_dir/checkpoint_latest.pt`` is
rewritten: the model in our format (:func:`mazeinterp.checkpoints.registry.save_policy`),
the optimizer state, and in its metadata the config, step counters, reward
normalizer, episode trackers, the envs' procgen states and every RNG state, so
``train_ppo(config, resume=True)`` continues exactly where it stopped (on CPU,
bit for bit). The run ends with ``out_dir/checkpoint_final.pt`` (model,
optimizer, config and counters; without the bulky env states).

Library use::

    from mazeinterp.train.ppo import PPOConfig, train_ppo
    path = train_ppo(PPOConfig(num_envs=64, total_timesteps=2_000_000, out_dir="runs/ppo-small"))

Command line::

    python -m mazeinterp.train.ppo --num-envs 64 --total-timesteps 2000000 --out runs/ppo-small
    python -m mazeinterp.train.ppo --out runs/ppo-small --resume   # after an interruption
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mazeinterp.checkpoints.registry import load_policy, save_policy
from mazeinterp.runtime.values import check_positive_int
from mazeinterp.maze.grid import TOP_RIGHT_REGION_SIZE
from mazeinterp.core.model import ImpalaPolicy, obs_to_tensor
from mazeinterp.core.numerics import numerics_mode, reference_unless
from mazeinterp.train.common import (
    CsvLog,
    RunSetupError,
    RunningMeanStd,
    add_config_arguments,
    choose_device,
    config_from_namespace,
    field_docs,
    module_main,
    restore_rng_states,
    rng_states,
    seed_everything,
)

__all__ = [
    "LOG_COLUMNS",
    "EpisodeTracker",
    "PPOBatch",
    "PPOConfig",
    "PPOTrainer",
    "RewardNormalizer",
    "add_ppo_arguments",
    "compute_gae",
    "config_from_args",
    "field_docs",
    "main",
    "policy_forward",
    "run_from_args",
    "ppo_loss",
    "ppo_update",
    "train_ppo",
]

LATEST = "checkpoint_latest.pt"
"""File name (inside ``out_dir``) of the resumable checkpoint."""
FINAL = "checkpoint_final.pt"
"""File name (inside ``out_dir``) of the checkpoint written at the end of the run."""
DISTRIBUTION_MODES = ("easy", "hard")
"""procgen distribution modes that have a maze (the others end procgen's process)."""

LOG = "log.csv"
"""File name (inside ``out_dir``) of the per-update CSV log."""


# ----------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters and bookkeeping of one PPO run; defaults are the published maze settings."""

    # --- run ---------------------------------------------------------------------------
    seed: int = 1
    """Seeds torch, numpy, Python's random, procgen's level stream and the cheese-region draws (once, at the start)."""
    out_dir: str = "runs/ppo"
    """Folder for log.csv, checkpoint_latest.pt and checkpoint_final.pt."""
    total_timesteps: int = 80_000_000
    """Env steps of the whole run (summed over envs); the run does total_timesteps // (num_envs * num_steps) updates."""

    # --- environment -------------------------------------------------------------------
    num_envs: int = 512
    """Parallel procgen envs."""
    num_steps: int = 256
    """Steps per env per rollout; a batch is num_envs * num_steps samples."""
    distribution_mode: str = "hard"
    """procgen distribution mode ("hard": mazes up to 25×25)."""
    num_levels: int = 0
    """Number of distinct procgen levels (0 = unlimited)."""
    start_level: int = 0
    """First procgen level seed."""
    cheese_region: int | None = TOP_RIGHT_REGION_SIZE
    """Cheese drawn on an open cell of the top-right n×n corner at every episode start (None = stock procgen)."""
    env_threads: int = 4
    """procgen worker threads stepping the envs."""

    # --- model -------------------------------------------------------------------------
    scale: int = 4
    """IMPALA channel multiplier: widths (16, 32, 32)·scale (published agent: 4)."""
    init_checkpoint: str | None = None
    """Start from the weights of this checkpoint (file or shipped name), e.g. an imitation warm start; the optimizer starts fresh."""

    # --- algorithm ---------------------------------------------------------------------
    learning_rate: float = 5e-4
    """Adam learning rate."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run (as CleanRL and the published agent's trainer do)."""
    gamma: float = 0.999
    """Discount factor (also of the returns whose std normalizes rewards)."""
    gae_lambda: float = 0.95
    """λ of generalized advantage estimation."""
    update_epochs: int = 3
    """Passes over each batch."""
    num_minibatches: int = 16
    """Minibatches per pass; must divide num_envs * num_steps (published: 131072 / 16 = 8192)."""
    norm_adv: bool = True
    """Normalize advantages to mean 0, std 1 within each minibatch."""
    clip_coef: float = 0.2
    """PPO clip range of the probability ratio (and of the value change, with clip_vloss)."""
    clip_vloss: bool = True
    """Clip the value loss around the rollout's values, as in CleanRL and the published agent's trainer."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this value."""
    target_kl: float | None = None
    """Stop an update's epochs early once the approximate KL exceeds this (None = never)."""
    norm_reward: bool = True
    """Divide rewards by the running std of the discounted return (baselines' VecNormalize(ob=False))."""
    reward_clip: float = 10.0
    """Clip normalized rewards to ±reward_clip."""

    # --- hardware ----------------------------------------------------------------------
    device: str = "auto"
    """Training device: "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:N"."""
    mixed_precision: bool = True
    """bf16 autocast for forward passes on CUDA (ignored on CPU)."""
    channels_last: bool = True
    """True: the package's numerics (channels-last activations unless the reference numerics are switched on,
    see :mod:`mazeinterp.core.numerics`); False: train with the reference numerics (contiguous layout)."""
    torch_threads: int | None = None
    """torch's intra-op CPU threads, set at the start of the run (None = torch's default); 1 helps on a busy machine."""

    # --- bookkeeping -------------------------------------------------------------------
    checkpoint_every: int = 10
    """Rewrite out_dir/checkpoint_latest.pt every this many updates (and after the last one)."""
    snapshot_every: int = 0
    """Also keep a model-only snapshot out_dir/snapshots/step_<global_step>.pt every this many updates (0 = never)."""

    def __post_init__(self) -> None:
        positive = ("total_timesteps", "num_envs", "num_steps", "env_threads", "scale", "update_epochs",
                    "num_minibatches", "checkpoint_every")
        for name in positive:
            check_positive_int(getattr(self, name), f"PPOConfig.{name}")
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"num_minibatches ({self.num_minibatches}) must divide num_envs * num_steps ({self.batch_size})"
            )
        if self.total_timesteps < self.batch_size:
            raise ValueError(
                f"total_timesteps ({self.total_timesteps}) is less than one batch "
                f"(num_envs * num_steps = {self.batch_size})"
            )
        check_positive_int(self.cheese_region, "cheese_region", or_none=True)
        if self.distribution_mode not in DISTRIBUTION_MODES:
            raise ValueError(f"distribution_mode must be one of {', '.join(DISTRIBUTION_MODES)}, "
                             f"got {self.distribution_mode!r}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("gamma and gae_lambda must lie in [0, 1]")
        if self.learning_rate <= 0 or self.clip_coef <= 0 or self.max_grad_norm <= 0:
            raise ValueError("learning_rate, clip_coef and max_grad_norm must be positive")
        if self.snapshot_every < 0 or self.num_levels < 0 or self.start_level < 0:
            raise ValueError("snapshot_every, num_levels and start_level must be >= 0")
        check_positive_int(self.torch_threads, "torch_threads", or_none=True)

    @property
    def batch_size(self) -> int:
        """Samples per update: num_envs * num_steps."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Samples per gradient step: batch_size // num_minibatches."""
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Updates of the whole run: total_timesteps // batch_size."""
        return self.total_timesteps // self.batch_size

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (stored in checkpoint metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PPOConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown PPOConfig fields: {unknown}")
        return cls(**values)


# Fields that may differ between a run and its resumption; every other field must match.
_RESUMABLE_CHANGES = frozenset({
    "total_timesteps", "out_dir", "device", "mixed_precision", "channels_last", "env_threads",
    "checkpoint_every", "snapshot_every", "init_checkpoint", "torch_threads",
})


# ----------------------------------------------------------------------------------------
# Reward normalization, GAE, loss
# ----------------------------------------------------------------------------------------


class RewardNormalizer:
    """Scale rewards by the running std of each env's discounted return (baselines' ``VecNormalize(ob=False)``).

    Per step: ``ret = ret * gamma + reward``; the running statistics absorb
    ``ret`` (one sample per env); the reward is divided by
    ``sqrt(var + epsilon)`` and clipped to ±``clip``; ``ret`` is zeroed where an
    episode ended.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon
        self.rms = RunningMeanStd(shape=())
        self.returns = np.zeros(num_envs, dtype=np.float64)

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Normalized rewards (float32, shape (num_envs,)) of one step; ``done``: episodes that ended on it."""
        self.returns = self.returns * self.gamma + reward
        self.rms.update(self.returns)
        scaled = np.clip(reward / np.sqrt(self.rms.var + self.epsilon), -self.clip, self.clip)
        self.returns[np.asarray(done, dtype=bool)] = 0.0
        return scaled.astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state for checkpoints."""
        return {"rms": self.rms.state_dict(), "returns": torch.from_numpy(self.returns.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        self.rms.load_state_dict(state["rms"])
        returns = np.asarray(state["returns"], dtype=np.float64)
        if returns.shape != self.returns.shape:
            raise ValueError(f"reward normalizer state is for {returns.shape[0]} envs, not {self.returns.shape[0]}")
        self.returns = returns.copy()


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    next_value: Tensor,
    next_done: Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimates and value targets of a rollout.

    Shapes: ``rewards``, ``values``, ``dones`` (T, N); ``next_value``,
    ``next_done`` (N,) → ``(advantages, returns)``, both (T, N) float32.

    ``rewards[t]`` is the reward of the action taken at step ``t``;
    ``dones[t]`` is 1 where the observation of step ``t`` starts a new episode
    (the previous step ended one), ``next_done`` the same for the observation
    after the last step; ``next_value`` is its value. An episode end cuts the
    bootstrap: ``delta_t = r_t + gamma * V_{t+1} * (1 - done_{t+1}) - V_t``,
    ``A_t = delta_t + gamma * lambda * (1 - done_{t+1}) * A_{t+1}``,
    ``returns = A + V``.
    """
    num_steps = rewards.shape[0]
    rewards, values = rewards.float(), values.float()
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            not_done, following = 1.0 - next_done.float(), next_value.float()
        else:
            not_done, following = 1.0 - dones[t + 1].float(), values[t + 1]
        delta = rewards[t] + gamma * following * not_done - values[t]
        last = delta + gamma * gae_lambda * not_done * last
        advantages[t] = last
    return advantages, advantages + values


@dataclass
class PPOBatch:
    """One batch of flattened rollout samples (all tensors on one device, first dimension B).

    Attributes:
        obs: (B, 64, 64, 3) uint8 observations, NHWC as procgen gives them.
        actions: (B,) int64 procgen actions.
        logprobs: (B,) float32 log-probabilities of ``actions`` under the rollout policy.
        values: (B,) float32 values predicted during the rollout.
        advantages: (B,) float32 GAE advantages.
        returns: (B,) float32 value targets (advantages + values).
    """

    obs: Tensor
    actions: Tensor
    logprobs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor

    def __len__(self) -> int:
        return self.actions.shape[0]

    def __getitem__(self, index: Tensor | slice) -> PPOBatch:
        """The samples at ``index`` (an index tensor or slice), as a new batch."""
        return PPOBatch(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})


def policy_forward(
    model: ImpalaPolicy, obs: Tensor, *, mixed_precision: bool = False
) -> tuple[Tensor, Tensor]:
    """Run the policy on uint8 observations: obs (B, 64, 64, 3) → (logits (B, 15), value (B,)), float32.

    The input is converted by :func:`~mazeinterp.core.model.obs_to_tensor` on the
    observations' device. ``mixed_precision`` runs the network under bf16
    autocast (CUDA only; ignored elsewhere); outputs are cast back to float32.
    """
    x = obs_to_tensor(obs)
    amp = mixed_precision and x.device.type == "cuda"
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits, value = model(x)
    return logits.float(), value.float()


def ppo_loss(
    model: ImpalaPolicy, batch: PPOBatch, config: PPOConfig, *, mixed_precision: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO loss of one minibatch, and its parts (detached 0-d tensors).

    ``loss = policy_loss - ent_coef * entropy + vf_coef * value_loss`` with the
    clipped surrogate policy loss, the (optionally clipped, as in CleanRL)
    squared-error value loss halved, and the mean policy entropy. The stats
    dict has ``loss``, ``policy_loss``, ``value_loss``, ``entropy``,
    ``approx_kl`` (the low-variance estimator ``(r - 1) - log r``) and
    ``clipfrac`` (fraction of ratios outside the clip range).
    """
    logits, new_value = policy_forward(model, batch.obs, mixed_precision=mixed_precision)
    log_probs = F.log_softmax(logits, dim=-1)
    new_logprob = log_probs.gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
    log_ratio = new_logprob - batch.logprobs
    ratio = log_ratio.exp()

    advantages = batch.advantages
    if config.norm_adv and len(batch) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clip = config.clip_coef
    policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()

    value_error = (new_value - batch.returns).square()
    if config.clip_vloss:
        clipped = batch.values + (new_value - batch.values).clamp(-clip, clip)
        value_error = torch.max(value_error, (clipped - batch.returns).square())
    value_loss = 0.5 * value_error.mean()

    loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
    with torch.no_grad():
        stats = {
            "loss": loss.detach(),
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy.detach(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clipfrac": ((ratio - 1).abs() > clip).float().mean(),
        }
    return loss, stats


def ppo_update(
    model: ImpalaPolicy, optimizer: torch.optim.Optimizer, batch: PPOBatch, config: PPOConfig, *,
    mixed_precision: bool = False,
) -> dict[str, float]:
    """Optimize ``model`` on one batch: ``update_epochs`` passes of ``num_minibatches`` shuffled minibatches.

    Minibatch order comes from torch's global CPU generator (so seeding and
    restoring it makes updates reproducible). Returns the mean of each
    :func:`ppo_loss` stat over the gradient steps taken, plus ``grad_norm``
    (mean pre-clip norm) and ``epochs`` (fewer than ``update_epochs`` if
    ``target_kl`` stopped early).
    """
    size = len(batch)
    minibatch = max(1, size // config.num_minibatches)
    totals: dict[str, Tensor] = {}
    steps = epochs = 0
    params = [p for p in model.parameters() if p.requires_grad]
    for _ in range(config.update_epochs):
        order = torch.randperm(size).to(batch.actions.device, non_blocking=True)
        for start in range(0, size - minibatch + 1, minibatch):
            loss, stats = ppo_loss(model, batch[order[start : start + minibatch]], config,
                                   mixed_precision=mixed_precision)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm).detach()
            optimizer.step()
            for key, value in stats.items():
                totals[key] = totals[key] + value if key in totals else value.clone()
            steps += 1
        epochs += 1
        if config.target_kl is not None and (totals["approx_kl"] / steps).item() > config.target_kl:
            break
    result = {key: (value / steps).item() for key, value in totals.items()}
    result["epochs"] = float(epochs)
    return result


class EpisodeTracker:
    """Running raw return and length of each env's episode; collects the episodes that end.

    ``solve_rate`` counts an episode as solved when its return is positive: the
    maze pays 10 on reaching the cheese and nothing else.
    """

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self._finished: list[tuple[float, int]] = []

    def step(self, reward: np.ndarray, done: np.ndarray) -> None:
        """Add one step's rewards; ``done``: envs whose episode ended on this step."""
        self.returns += reward
        self.lengths += 1
        done = np.asarray(done, dtype=bool)
        if done.any():
            self._finished.extend(zip(self.returns[done].tolist(), self.lengths[done].tolist()))
            self.returns[done] = 0.0
            self.lengths[done] = 0

    def summary(self) -> dict[str, float]:
        """``episodes``, ``mean_return``, ``solve_rate``, ``mean_episode_length`` of the episodes
        finished since the last call (NaN means when none), and forget them."""
        finished, self._finished = self._finished, []
        if not finished:
            return {"episodes": 0, "mean_return": math.nan, "solve_rate": math.nan, "mean_episode_length": math.nan}
        returns = np.array([r for r, _ in finished])
        lengths = np.array([n for _, n in finished])
        return {"episodes": len(finished), "mean_return": float(returns.mean()),
                "solve_rate": float((returns > 0).mean()), "mean_episode_length": float(lengths.mean())}

    def state_dict(self) -> dict[str, Any]:
        """The unfinished episodes' returns and lengths, for checkpoints."""
        return {"returns": torch.from_numpy(self.returns.copy()), "lengths": torch.from_numpy(self.lengths.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        self.returns = np.asarray(state["returns"], dtype=np.float64).copy()
        self.lengths = np.asarray(state["lengths"], dtype=np.int64).copy()
        self._finished = []


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    """``1 - Var(target - predicted) / Var(target)`` (NaN when the target is constant)."""
    var = target.float().var()
    return float("nan") if var.item() == 0 else (1 - (target - predicted).float().var() / var).item()


# ----------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------

LOG_COLUMNS = (
    "update", "global_step", "episodes", "mean_return", "solve_rate", "mean_episode_length",
    "loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "grad_norm",
    "explained_variance", "learning_rate", "reward_std", "epochs", "rollout_s", "optimize_s",
    "steps_per_second", "elapsed_s",
)
"""Columns of ``log.csv``, one row per update. ``mean_return``, ``solve_rate``
(fraction with reward > 0, i.e. the cheese was reached) and
``mean_episode_length`` are over the episodes that finished during the
update's rollout (``episodes`` of them; NaN when none did); returns are raw
env rewards. ``reward_std`` is the reward normalizer's current divisor."""


class PPOTrainer:
    """The state of one PPO run and the steps that advance it.

    :func:`train_ppo` is the usual entry point; use the trainer directly to
    step through a run (``collect`` → ``optimize``) or to inspect its state.

    Args:
        config: the run's hyperparameters.
        resume: continue from ``out_dir/checkpoint_latest.pt`` (config fields
            other than those in ``_RESUMABLE_CHANGES`` must match the stored ones).

    Raises:
        FileExistsError: a fresh run (``resume=False``) would overwrite a run in ``out_dir``.
        FileNotFoundError: ``resume=True`` but ``out_dir`` has no ``checkpoint_latest.pt``.
        ValueError: the config differs from the resumed run's, or the init checkpoint's scale differs.
    """

    def __init__(self, config: PPOConfig, *, resume: bool = False) -> None:
        from mazeinterp.maze.env import MazeEnv  # procgen is heavy: imported only when training

        self.config = config
        self.out_dir = Path(config.out_dir)
        self.device = choose_device(config.device)
        self.amp = config.mixed_precision and self.device.type == "cuda"
        self.channels_last = config.channels_last
        latest = self.out_dir / LATEST
        stored: dict[str, Any] | None = None
        if resume:
            if not latest.is_file():
                raise FileNotFoundError(f"cannot resume: {latest} does not exist (start without resume)")
            stored = torch.load(latest, map_location="cpu", weights_only=True)
            self._check_resumable(stored["metadata"])
        elif latest.exists() or (self.out_dir / LOG).exists():
            raise FileExistsError(
                f"{self.out_dir} already holds a run ({LATEST} or {LOG}); resume it with resume=True "
                "(--resume) or choose another out_dir"
            )

        if config.torch_threads is not None:
            torch.set_num_threads(config.torch_threads)
        seed_everything(config.seed)
        if stored is not None:
            self.model = load_policy(latest, device=self.device)
        elif config.init_checkpoint:
            self.model = load_policy(config.init_checkpoint, device=self.device)
            if self.model.scale != config.scale:
                raise RunSetupError(
                    f"init_checkpoint {config.init_checkpoint} has scale {self.model.scale}, "
                    f"but the config asks for scale {config.scale}"
                )
        else:
            self.model = ImpalaPolicy(scale=config.scale).to(self.device)
        self.model.train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate, eps=config.adam_eps)
        self.normalizer = RewardNormalizer(config.num_envs, config.gamma, config.reward_clip)

        self.cheese_rng = np.random.default_rng(config.seed)
        """The stream of cheese-region draws (shared with the env; its state is checkpointed)."""
        self.env = MazeEnv(
            config.num_envs, cheese_region=config.cheese_region, seed=config.seed,
            distribution_mode=config.distribution_mode, start_level=config.start_level,
            num_levels=config.num_levels, num_threads=config.env_threads, cheese_rng=self.cheese_rng,
        )
        self.update = 0
        """Updates completed."""
        self.global_step = 0
        """Env steps taken (summed over envs)."""
        self.elapsed_s = 0.0
        """Wall time spent training, over all sessions of the run."""
        self.next_done = np.zeros(config.num_envs, dtype=bool)
        self.episodes = EpisodeTracker(config.num_envs)
        if stored is not None:
            self._restore(stored)

        # Rollout buffers live on the training device; observations stay uint8.
        steps, envs = config.num_steps, config.num_envs
        self.obs = torch.zeros((steps, envs, 64, 64, 3), dtype=torch.uint8, device=self.device)
        self.actions = torch.zeros((steps, envs), dtype=torch.long, device=self.device)
        self.logprobs = torch.zeros((steps, envs), device=self.device)
        self.values = torch.zeros((steps, envs), device=self.device)
        self.rewards = np.zeros((steps, envs), dtype=np.float32)
        self.dones = np.zeros((steps, envs), dtype=bool)
        pin = self.device.type == "cuda"
        self._host_obs = torch.empty((envs, 64, 64, 3), dtype=torch.uint8, pin_memory=pin)
        self.next_obs = torch.empty((envs, 64, 64, 3), dtype=torch.uint8, device=self.device)
        self._load_obs(self.env.observe()[1])
        self.log = CsvLog(self.out_dir / LOG)
        if stored is not None:
            self.log.keep_rows(lambda row: int(row["update"]) <= self.update)

    # ----- resume ----------------------------------------------------------------------

    def _check_resumable(self, metadata: dict[str, Any]) -> None:
        if metadata.get("trainer") != "ppo" or "resume" not in metadata:
            raise RunSetupError(f"{self.out_dir / LATEST} is not a resumable PPO checkpoint")
        stored = metadata["config"]
        current = self.config.to_dict()
        differ = {k: (stored.get(k), v) for k, v in current.items()
                  if k not in _RESUMABLE_CHANGES and stored.get(k) != v}
        if differ:
            detail = ", ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in differ.items())
            raise RunSetupError(f"cannot resume {self.out_dir}: config differs from the stored run ({detail})")

    def _restore(self, stored: dict[str, Any]) -> None:
        metadata = stored["metadata"]
        state = metadata["resume"]
        self.optimizer.load_state_dict(stored["optimizer_state_dict"])
        self.normalizer.load_state_dict(metadata["reward_normalizer"])
        self.update = int(metadata["update"])
        self.global_step = int(metadata["global_step"])
        self.elapsed_s = float(metadata["wall_time_s"])
        env_states = state["env_states"]
        if len(env_states) != self.config.num_envs:
            raise ValueError(f"checkpoint holds {len(env_states)} env states for {self.config.num_envs} envs")
        for index, blob in enumerate(env_states):
            self.env.set_state(index, blob.numpy().tobytes())
        self.cheese_rng.bit_generator.state = state["cheese_rng"]
        self.next_done = state["next_done"].numpy().astype(bool)
        self.episodes.load_state_dict(state["episodes"])
        restore_rng_states(state["rng"])

    def _metadata(self, *, resumable: bool) -> dict[str, Any]:
        with reference_unless(self.channels_last):
            numerics = numerics_mode()
        metadata: dict[str, Any] = {
            "trainer": "ppo",
            "config": self.config.to_dict(),
            "update": self.update,
            "global_step": self.global_step,
            "wall_time_s": self.elapsed_s,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": str(self.device),
            "torch_version": str(torch.__version__),
            "numerics": numerics,
            "reward_normalizer": self.normalizer.state_dict(),
        }
        if resumable:
            metadata["resume"] = {
                "env_states": [torch.frombuffer(bytearray(self.env.get_state_bytes(i)), dtype=torch.uint8)
                               for i in range(self.config.num_envs)],
                "cheese_rng": self.cheese_rng.bit_generator.state,
                "next_done": torch.from_numpy(self.next_done.copy()),
                "episodes": self.episodes.state_dict(),
                "rng": rng_states(),
            }
        return metadata

    def save(self, path: str | Path, *, resumable: bool = True, optimizer: bool = True) -> Path:
        """Write a checkpoint of the current state (between updates); return its path.

        ``resumable`` adds the env, episode-tracker and RNG states that
        ``resume=True`` needs; ``optimizer`` adds the optimizer state.
        """
        return save_policy(
            self.model, path, metadata=self._metadata(resumable=resumable),
            optimizer_state=self.optimizer.state_dict() if optimizer else None, overwrite=True,
        )

    # ----- one update ------------------------------------------------------------------

    def _load_obs(self, obs: np.ndarray) -> None:
        """Copy env observations into ``next_obs`` on the device (through pinned memory on CUDA)."""
        np.copyto(self._host_obs.numpy(), obs)
        self.next_obs.copy_(self._host_obs, non_blocking=True)

    @torch.no_grad()
    def collect(self) -> dict[str, float]:
        """Fill the rollout buffers with ``num_steps`` steps of every env; return episode statistics."""
        cfg = self.config
        for step in range(cfg.num_steps):
            self.obs[step].copy_(self.next_obs)
            self.dones[step] = self.next_done
            logits, value = policy_forward(self.model, self.next_obs, mixed_precision=self.amp)
            log_probs = F.log_softmax(logits, dim=-1)
            action = torch.multinomial(log_probs.exp(), 1).squeeze(1)
            self.actions[step] = action
            self.logprobs[step] = log_probs.gather(1, action.unsqueeze(1)).squeeze(1)
            self.values[step] = value

            reward, obs, first = self.env.step(action.cpu().numpy())
            self._load_obs(obs)
            self.episodes.step(reward, first)
            self.rewards[step] = self.normalizer(reward, first) if cfg.norm_reward else reward
            self.next_done = first
        self.global_step += cfg.batch_size
        return self.episodes.summary()

    def batch(self) -> PPOBatch:
        """GAE over the current rollout buffers, flattened into one :class:`PPOBatch`."""
        cfg = self.config
        with torch.no_grad():
            _, next_value = policy_forward(self.model, self.next_obs, mixed_precision=self.amp)
            rewards = torch.from_numpy(self.rewards).to(self.device)
            dones = torch.from_numpy(self.dones).to(self.device)
            next_done = torch.from_numpy(self.next_done).to(self.device)
            advantages, returns = compute_gae(rewards, self.values, dones, next_value, next_done,
                                              cfg.gamma, cfg.gae_lambda)
        return PPOBatch(
            obs=self.obs.reshape(-1, 64, 64, 3), actions=self.actions.reshape(-1),
            logprobs=self.logprobs.reshape(-1), values=self.values.reshape(-1),
            advantages=advantages.reshape(-1), returns=returns.reshape(-1),
        )

    def learning_rate(self) -> float:
        """Learning rate of the next update (annealed linearly to 0 if ``anneal_lr``)."""
        cfg = self.config
        if not cfg.anneal_lr:
            return cfg.learning_rate
        return cfg.learning_rate * max(0.0, 1.0 - self.update / cfg.num_updates)

    def optimize(self) -> dict[str, float]:
        """GAE and PPO epochs on the collected rollout; returns loss statistics."""
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.batch()
        stats = ppo_update(self.model, self.optimizer, batch, self.config, mixed_precision=self.amp)
        stats["explained_variance"] = explained_variance(batch.values, batch.returns)
        stats["learning_rate"] = lr
        self.update += 1
        return stats

    def step(self) -> dict[str, Any]:
        """One full update (rollout, GAE, optimization) and its log row (also appended to ``log.csv``)."""
        start = time.perf_counter()
        with reference_unless(self.channels_last):
            episodes = self.collect()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            collected = time.perf_counter()
            losses = self.optimize()
        done = time.perf_counter()
        self.elapsed_s += done - start
        row = {
            "update": self.update, "global_step": self.global_step, **episodes, **losses,
            "reward_std": float(np.sqrt(self.normalizer.rms.var + self.normalizer.epsilon)),
            "rollout_s": collected - start, "optimize_s": done - collected,
            "steps_per_second": self.config.batch_size / (done - start), "elapsed_s": self.elapsed_s,
        }
        row = {key: row[key] for key in LOG_COLUMNS}
        self.log.append(row)
        return row

    # ----- the run ---------------------------------------------------------------------

    def run(self, *, progress: bool = True, max_updates: int | None = None) -> Path:
        """Train until ``num_updates`` (or ``max_updates`` more updates); return the last checkpoint written.

        Writes ``checkpoint_latest.pt`` every ``checkpoint_every`` updates and
        at the end; at the end of the run also ``checkpoint_final.pt``, whose
        path is returned. Stopped early by ``max_updates``, it returns the
        latest checkpoint's path instead.
        """
        from tqdm import tqdm

        cfg = self.config
        target = cfg.num_updates if max_updates is None else min(cfg.num_updates, self.update + max_updates)
        latest = self.out_dir / LATEST
        bar = tqdm(total=cfg.num_updates, initial=self.update, disable=not progress, unit="update",
                   dynamic_ncols=True, desc="ppo")
        try:
            while self.update < target:
                row = self.step()
                bar.update(1)
                bar.set_postfix(step=f"{self.global_step:.3g}", ret=f"{row['mean_return']:.2f}",
                                solve=f"{row['solve_rate']:.2f}", sps=f"{row['steps_per_second']:.0f}")
                if self.update % cfg.checkpoint_every == 0 or self.update == target:
                    self.save(latest)
                if cfg.snapshot_every and self.update % cfg.snapshot_every == 0:
                    self.save(self.out_dir / "snapshots" / f"step_{self.global_step:011d}.pt",
                              resumable=False, optimizer=False)
        finally:
            bar.close()
        if self.update >= cfg.num_updates:
            if not latest.exists():
                self.save(latest)
            return self.save(self.out_dir / FINAL, resumable=False)
        return latest

    def close(self) -> None:
        """Free the envs."""
        self.env.close()


def train_ppo(config: PPOConfig, *, progress: bool = True, resume: bool = False) -> Path:
    """Train a maze policy with PPO; return the path of the final checkpoint.

    ``resume=True`` continues the run in ``config.out_dir`` from its
    ``checkpoint_latest.pt`` (same model, optimizer, normalizer, counters, env
    and RNG states); ``config.total_timesteps`` may be raised to train longer.
    See :class:`PPOTrainer` for the errors raised.
    """
    trainer = PPOTrainer(config, resume=resume)
    try:
        return trainer.run(progress=progress)
    finally:
        trainer.close()


# ----------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------


def add_ppo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one ``--flag`` per :class:`PPOConfig` field (help = the field's docstring), plus ``--resume`` and ``--no-progress``."""
    add_config_arguments(parser, PPOConfig, "PPO hyperparameters (defaults: the published maze settings)")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue the run in --out from its {LATEST}")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> PPOConfig:
    """The :class:`PPOConfig` of parsed arguments (from a parser set up by :func:`add_ppo_arguments`)."""
    return config_from_namespace(PPOConfig, args)


def run_from_args(args: argparse.Namespace) -> Path:
    """Train with the parsed arguments of :func:`add_ppo_arguments`; returns the final checkpoint's path.

    Raises ValueError / FileExistsError / FileNotFoundError for a bad config or a refused resume.
    """
    trainer = PPOTrainer(config_from_args(args), resume=args.resume)
    try:
        path = trainer.run(progress=args.progress)
    finally:
        trainer.close()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m mazeinterp.train.ppo [flags]`` (defaults: the published settings)."""
    return module_main("python -m mazeinterp.train.ppo",
                       "Train the IMPALA maze policy with PPO (defaults: the published settings).",
                       add_ppo_arguments, run_from_args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
