"""Tests of the PPO trainer (mazeinterp.train.ppo) and the shared trainer utilities (mazeinterp.train.common).

Budgets are tiny: scale-1 networks, 4 envs × 8 steps, a few updates.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math

import numpy as np
import pytest
import torch

from mazeinterp.checkpoints.registry import load_policy
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.train.common import (
    CsvLog,
    RunningMeanStd,
    choose_device,
    restore_rng_states,
    rng_states,
    seed_everything,
)
from mazeinterp.train.ppo import (
    FINAL,
    LATEST,
    LOG,
    LOG_COLUMNS,
    EpisodeTracker,
    PPOBatch,
    PPOConfig,
    PPOTrainer,
    RewardNormalizer,
    add_ppo_arguments,
    compute_gae,
    config_from_args,
    field_docs,
    policy_forward,
    ppo_loss,
    ppo_update,
    train_ppo,
)



def tiny_config(out_dir, **overrides) -> PPOConfig:
    """3 updates of 4 envs × 8 steps at scale 1, one epoch of 2 minibatches."""
    values = dict(
        out_dir=str(out_dir), num_envs=4, num_steps=8, total_timesteps=3 * 32, scale=1,
        update_epochs=1, num_minibatches=2, env_threads=1, device="cpu", checkpoint_every=1, seed=3,
    )
    values.update(overrides)
    return PPOConfig(**values)


# ----- config ------------------------------------------------------------------------------


def test_config_defaults_are_the_published_maze_settings():
    c = PPOConfig()
    assert (c.num_envs, c.num_steps, c.total_timesteps) == (512, 256, 80_000_000)
    assert (c.update_epochs, c.num_minibatches, c.minibatch_size) == (3, 16, 8192)
    assert (c.gamma, c.gae_lambda, c.learning_rate, c.adam_eps) == (0.999, 0.95, 5e-4, 1e-5)
    assert (c.clip_coef, c.vf_coef, c.ent_coef, c.max_grad_norm) == (0.2, 0.5, 0.01, 0.5)
    assert c.norm_adv and c.norm_reward and c.clip_vloss and c.anneal_lr
    assert (c.distribution_mode, c.num_levels, c.cheese_region, c.scale) == ("hard", 0, 5, 4)
    assert c.init_checkpoint is None and c.device == "auto"
    assert c.num_updates == 80_000_000 // (512 * 256)


def test_every_config_field_has_a_docstring():
    docs = field_docs(PPOConfig)
    missing = [f.name for f in dataclasses.fields(PPOConfig) if not docs.get(f.name)]
    assert missing == []


@pytest.mark.parametrize("bad", [dict(num_minibatches=3), dict(num_envs=0), dict(total_timesteps=10),
                                 dict(cheese_region=0), dict(gamma=1.5)])
def test_config_rejects_bad_values(tmp_path, bad):
    with pytest.raises(ValueError):
        tiny_config(tmp_path, **bad)


def test_arguments_round_trip_to_the_config():
    parser = add_ppo_arguments(argparse.ArgumentParser())
    assert config_from_args(parser.parse_args([])) == PPOConfig()
    args = parser.parse_args([
        "--num-envs", "8", "--learning-rate", "1e-3", "--no-norm-adv", "--cheese-region", "none",
        "--target-kl", "0.02", "--init-checkpoint", "x.pt", "--resume", "--no-progress",
    ])
    config = config_from_args(args)
    assert (config.num_envs, config.learning_rate, config.norm_adv) == (8, 1e-3, False)
    assert (config.cheese_region, config.target_kl, config.init_checkpoint) == (None, 0.02, "x.pt")
    assert args.resume and not args.progress
    assert "Parallel procgen envs" in parser.format_help()


# ----- common ------------------------------------------------------------------------------


def test_running_mean_std_matches_numpy_and_round_trips():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 2))
    rms = RunningMeanStd(shape=(2,), epsilon=0.0 + 1e-12)
    for chunk in np.array_split(data, 7):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-9)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-6)
    other = RunningMeanStd(shape=(2,))
    other.load_state_dict(rms.state_dict())
    np.testing.assert_array_equal(other.mean, rms.mean)
    assert other.count == rms.count


def test_csv_log_writes_header_once_and_appends(tmp_path):
    path = tmp_path / "sub" / "log.csv"
    log = CsvLog(path)
    log.append({"a": 1, "b": 0.5})
    log.append({"a": 2, "b": float("nan")})
    CsvLog(path).append({"a": 3})  # a reopened log keeps the header
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows == [["a", "b"], ["1", "0.5"], ["2", "nan"], ["3", ""]]
    with pytest.raises(ValueError, match="c"):
        log.append({"a": 4, "c": 1})
    assert CsvLog(path).keep_rows(lambda row: int(row["a"]) <= 2) == 1
    assert [r["a"] for r in CsvLog(path).rows()] == ["1", "2"]


def test_seeding_and_rng_state_round_trip():
    seed_everything(5)
    first = (torch.rand(3), np.random.rand(3))
    seed_everything(5)
    assert torch.equal(torch.rand(3), first[0]) and np.array_equal(np.random.rand(3), first[1])
    states = rng_states()
    after = (torch.rand(3), np.random.rand(3))
    torch.rand(10), np.random.rand(10)
    restore_rng_states(states)
    assert torch.equal(torch.rand(3), after[0]) and np.array_equal(np.random.rand(3), after[1])


def test_choose_device():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            choose_device("cuda")
    with pytest.raises(ValueError):
        choose_device("tpu-9")


# ----- algorithm pieces --------------------------------------------------------------------


def test_gae_matches_a_hand_computed_example():
    # One env, 3 steps; the episode ends after step 1 (the obs of step 2 is a new episode's first).
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [2.0], [0.0]])
    values = torch.tensor([[0.5], [1.0], [2.0]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])
    next_value, next_done = torch.tensor([3.0]), torch.tensor([0.0])
    adv, ret = compute_gae(rewards, values, dones, next_value, next_done, gamma, lam)
    d2 = 0.0 + 0.9 * 3.0 - 2.0  # 0.7, bootstraps from next_value
    d1 = 2.0 + 0.0 - 1.0  # 1.0, episode ended: no bootstrap
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    a2 = d2
    a1 = d1  # the cut also stops the advantage recursion
    a0 = d0 + 0.9 * 0.5 * a1  # 1.85
    torch.testing.assert_close(adv, torch.tensor([[a0], [a1], [a2]]))
    torch.testing.assert_close(ret, adv + values)


def test_gae_with_lambda_one_and_no_dones_is_the_discounted_return():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    values = torch.zeros(3, 2)
    _, ret = compute_gae(rewards, values, torch.zeros(3, 2), torch.zeros(2), torch.zeros(2), 0.5, 1.0)
    torch.testing.assert_close(ret[:, 0], torch.tensor([1 + 0.25 * 3, 0.5 * 3, 3.0]))
    torch.testing.assert_close(ret[:, 1], torch.tensor([0.5 * 2, 2.0, 0.0]))


def test_reward_normalizer_divides_by_running_return_std_and_resets_on_done():
    norm = RewardNormalizer(num_envs=2, gamma=0.5, clip=10.0)
    out = norm(np.array([1.0, 0.0]), np.array([False, True]))
    # returns [1, 0]; rms over {1, 0} with pseudo-count 1e-4 → var ≈ 0.25
    np.testing.assert_allclose(out, [1.0 / math.sqrt(norm.rms.var + 1e-8), 0.0], rtol=1e-6)
    np.testing.assert_allclose(norm.returns, [1.0, 0.0])
    out = norm(np.array([0.0, 0.0]), np.array([True, False]))
    np.testing.assert_allclose(norm.returns, [0.0, 0.0])  # env 0's return 0.5 was reset after use
    clipped = RewardNormalizer(num_envs=1, gamma=0.9, clip=2.0)
    for _ in range(50):
        clipped(np.array([0.0]), np.array([False]))
    assert clipped(np.array([10.0]), np.array([True]))[0] == pytest.approx(2.0)


def test_episode_tracker_reports_finished_episodes_only():
    tracker = EpisodeTracker(num_envs=3)
    tracker.step(np.array([0.0, 0.0, 0.0]), np.array([False, False, False]))
    tracker.step(np.array([10.0, 0.0, 0.0]), np.array([True, True, False]))  # env 0 solved, env 1 timed out
    tracker.step(np.array([0.0, 10.0, 0.0]), np.array([False, True, False]))  # env 1 solved in 1 step
    summary = tracker.summary()
    assert summary == {"episodes": 3, "mean_return": pytest.approx(20 / 3), "solve_rate": pytest.approx(2 / 3),
                       "mean_episode_length": pytest.approx((2 + 2 + 1) / 3)}
    empty = tracker.summary()  # nothing finished since
    assert empty["episodes"] == 0 and math.isnan(empty["solve_rate"])
    restored = EpisodeTracker(num_envs=3)
    restored.load_state_dict(tracker.state_dict())
    np.testing.assert_array_equal(restored.lengths, [1, 0, 3])


def fixed_batch(model: ImpalaPolicy, size: int = 16, seed: int = 0) -> PPOBatch:
    """Random frames with actions, log-probs and values of ``model``; value targets 3·A away from the values."""
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (size, 64, 64, 3), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        logits, values = policy_forward(model, obs)
        actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)
        logprobs = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
    advantages = torch.randn(size, generator=generator)
    return PPOBatch(obs=obs, actions=actions, logprobs=logprobs, values=values,
                    advantages=advantages, returns=values + 3 * advantages)


def test_ppo_loss_falls_when_optimizing_a_fixed_batch():
    # The trainer's own update loop at the published learning rate.
    torch.manual_seed(2)
    model = ImpalaPolicy(scale=1)
    config = PPOConfig(learning_rate=5e-4, update_epochs=10, num_minibatches=1)
    batch = fixed_batch(model, seed=2)
    before, _ = ppo_loss(model, batch, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    stats = ppo_update(model, optimizer, batch, config)
    after, after_stats = ppo_loss(model, batch, config)
    assert after.item() < before.item() - 0.08, (before.item(), after.item())
    assert stats["epochs"] == 10 and math.isfinite(stats["grad_norm"])
    assert set(after_stats) == {"loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac"}
    assert after_stats["approx_kl"].item() > 0  # the policy moved away from the rollout policy


def test_ppo_loss_at_the_rollout_policy():
    torch.manual_seed(1)
    model = ImpalaPolicy(scale=1)
    batch = fixed_batch(model, size=8, seed=1)
    config = PPOConfig(norm_adv=False)
    loss, stats = ppo_loss(model, batch, config)
    # ratio = 1 → policy loss = -mean(A); values = rollout values → value loss = 0.5 mean((3A)²).
    assert stats["approx_kl"].abs().item() < 1e-6 and stats["clipfrac"].item() == 0.0
    assert stats["policy_loss"].item() == pytest.approx(-batch.advantages.mean().item(), abs=1e-5)
    assert stats["value_loss"].item() == pytest.approx(0.5 * (3 * batch.advantages).square().mean().item(), rel=1e-4)


# ----- the trainer end to end ----------------------------------------------------------------


def _params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _optimizer_states_equal(a: dict, b: dict) -> bool:
    if a["param_groups"] != b["param_groups"] or a["state"].keys() != b["state"].keys():
        return False
    return all(torch.equal(a["state"][i][k], b["state"][i][k]) for i in a["state"] for k in a["state"][i])


def test_training_runs_logs_checkpoints_and_resumes_exactly(tmp_path):
    # Uninterrupted run: 3 updates.
    config = tiny_config(tmp_path / "a")
    final = train_ppo(config, progress=False)
    assert final == tmp_path / "a" / FINAL and (tmp_path / "a" / LATEST).is_file()
    with (tmp_path / "a" / LOG).open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["update"]) for r in rows] == [1, 2, 3]
    assert [int(r["global_step"]) for r in rows] == [32, 64, 96]
    assert tuple(rows[0]) == LOG_COLUMNS
    for row in rows:
        assert math.isfinite(float(row["loss"])) and float(row["steps_per_second"]) > 0
    model_a = load_policy(final)
    meta = model_a.metadata
    assert (meta["trainer"], meta["update"], meta["global_step"], meta["scale"]) == ("ppo", 3, 96, 1)
    assert PPOConfig.from_dict(meta["config"]) == config and meta["wall_time_s"] > 0
    assert "resume" not in meta  # the final checkpoint is lean; checkpoint_latest.pt is resumable
    raw = torch.load(final, weights_only=True)
    assert raw["optimizer_state_dict"]["state"]

    # Interrupted run: 2 updates, then a new trainer resumes from checkpoint_latest.pt.
    config_b = tiny_config(tmp_path / "b")
    trainer = PPOTrainer(config_b)
    trainer.run(progress=False, max_updates=2)
    assert not (tmp_path / "b" / FINAL).exists()
    before = {"model": trainer.model, "optimizer": trainer.optimizer.state_dict(),
              "rms": trainer.normalizer.rms.state_dict(), "returns": trainer.normalizer.returns.copy(),
              "obs": trainer.next_obs.clone(), "done": trainer.next_done.copy(), "rng": torch.get_rng_state(),
              "lengths": trainer.episodes.lengths.copy()}
    trainer.close()
    with pytest.raises(FileExistsError):
        PPOTrainer(config_b)  # a fresh run never overwrites an existing one
    with pytest.raises(ValueError, match="gamma"):
        PPOTrainer(tiny_config(tmp_path / "b", gamma=0.99), resume=True)

    resumed = PPOTrainer(config_b, resume=True)
    assert (resumed.update, resumed.global_step) == (2, 64)
    assert _params_equal(resumed.model, before["model"])
    assert _optimizer_states_equal(resumed.optimizer.state_dict(), before["optimizer"])
    assert resumed.normalizer.rms.count == before["rms"]["count"]
    assert torch.equal(torch.as_tensor(resumed.normalizer.rms.var), before["rms"]["var"])
    np.testing.assert_array_equal(resumed.normalizer.returns, before["returns"])
    assert torch.equal(resumed.next_obs, before["obs"])
    np.testing.assert_array_equal(resumed.next_done, before["done"])
    np.testing.assert_array_equal(resumed.episodes.lengths, before["lengths"])
    assert torch.equal(torch.get_rng_state(), before["rng"])
    final_b = resumed.run(progress=False)
    resumed.close()

    # The update after the resume is the update of the uninterrupted run, bit for bit.
    model_b = load_policy(final_b)
    assert _params_equal(model_a, model_b)
    with (tmp_path / "b" / LOG).open() as handle:
        rows_b = list(csv.DictReader(handle))
    assert [int(r["update"]) for r in rows_b] == [1, 2, 3]
    for ra, rb in zip(rows, rows_b):
        assert ra["loss"] == rb["loss"] and ra["episodes"] == rb["episodes"]


def test_init_checkpoint_warm_start_and_scale_check(tmp_path):
    from mazeinterp.checkpoints.registry import save_policy

    torch.manual_seed(7)
    warm = ImpalaPolicy(scale=1)
    path = save_policy(warm, tmp_path / "warm.pt", metadata={"trainer": "imitate"})
    trainer = PPOTrainer(tiny_config(tmp_path / "run", init_checkpoint=str(path)))
    try:
        assert _params_equal(trainer.model, warm)
    finally:
        trainer.close()
    with pytest.raises(ValueError, match="scale"):
        PPOTrainer(tiny_config(tmp_path / "run2", init_checkpoint=str(path), scale=2))
