"""Resource bounds: settings that cannot fit in memory are refused before work starts, with one line naming the
setting, the need and the limit; settings that fit pass."""

from __future__ import annotations

import pytest

from mazeinterp.runtime import limits
from mazeinterp.runtime.limits import ResourceLimitError


@pytest.fixture()
def one_gib(monkeypatch: pytest.MonkeyPatch) -> int:
    """A machine with 1 GiB of memory."""
    monkeypatch.setattr(limits, "memory_limit", lambda: 2**30)
    return 2**30


def test_the_memory_limit_is_this_machines_memory() -> None:
    from pathlib import Path

    if not Path("/proc/meminfo").is_file():
        pytest.skip("no /proc/meminfo to compare with on this system")
    with open("/proc/meminfo") as f:
        total_kib = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    # /proc/meminfo leaves out memory the kernel reserved at boot; the two agree within 10%
    assert 0.9 < total_kib * 1024 / limits.memory_limit() <= 1.0


def test_rollout_memory_counts_envs_and_steps(one_gib: int) -> None:
    # 64 envs × (2 MiB + 8 B × 1000 steps) = 128 MiB + 500 KiB: fits
    limits.check_rollout_memory(64, 1000, "rollouts")
    # 64 envs × 8 B × 4_000_000 steps = 1.9 GiB, over 1 GiB
    with pytest.raises(ResourceLimitError, match=r"^rollouts: 64 envs × 4000000 steps would need at least 2\.0 GiB "
                                                 r"of memory, more than this machine's 1\.0 GiB; lower max_steps"):
        limits.check_rollout_memory(64, 4_000_000, "rollouts")
    # 600 envs × 2 MiB = 1.2 GiB
    with pytest.raises(ResourceLimitError, match="600 envs × 1 steps would need at least 1.2 GiB"):
        limits.check_rollout_memory(600, 1, "rollouts")


def test_a_cap_beyond_procgens_timeout_is_refused_whatever_the_memory() -> None:
    limits.check_episode_steps(2**31 - 2, "x")
    with pytest.raises(ResourceLimitError, match=r"x: 2147483647 is above procgen's limit of 2147483646"):
        limits.check_episode_steps(2**31 - 1, "x")


def test_states_memory(one_gib: int) -> None:
    limits.check_states_memory(30_000, "refs", observations=True)  # 30k × (22 KiB + 12 KiB) = 0.97 GiB
    limits.check_states_memory(45_000, "refs")  # 45k × 22 KiB = 0.94 GiB
    with pytest.raises(ResourceLimitError, match=r"refs: 50000 mazes would need at least 1\.6 GiB"):
        limits.check_states_memory(50_000, "refs", observations=True)  # 50k × 34 KiB = 1.62 GiB


def test_forward_batch(one_gib: int) -> None:
    shapes = {"a": (16, 64, 64), "b": (32, 8, 8)}  # largest: 65536 floats; + the input's 12288
    assert limits.forward_bytes_per_input(shapes) == 4 * (65536 + 12288)
    limits.check_forward_batch(3000, shapes, "vfield")  # 3000 × 304 KiB = 0.87 GiB
    with pytest.raises(ResourceLimitError, match=r"vfield: a forward batch of 4000 inputs would need at least "
                                                 r"1\.2 GiB"):
        limits.check_forward_batch(4000, shapes, "vfield")
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=f"vfield: batch_size must be a positive int, got {bad!r}"):
            limits.check_forward_batch(bad, shapes, "vfield")  # type: ignore[arg-type]


def test_rollout_config_refuses_what_cannot_fit() -> None:
    from mazeinterp.rollout import RolloutConfig

    with pytest.raises(ResourceLimitError, match="RolloutConfig.max_steps: 10000000000 is above procgen's limit"):
        RolloutConfig(max_steps=10_000_000_000)
    with pytest.raises(ResourceLimitError, match=r"RolloutConfig: 64 envs × 2000000000 steps would need at least"):
        RolloutConfig(max_steps=2_000_000_000)  # 64 × 16 GB
    with pytest.raises(ResourceLimitError, match=r"RolloutConfig: 100000000 envs × 500 steps"):
        RolloutConfig(batch_size=100_000_000)
    assert RolloutConfig(max_steps=100_000).max_steps == 100_000


def test_reference_mazes_that_cannot_fit_are_refused_before_any_maze_is_made(monkeypatch) -> None:
    from mazeinterp.analysis.references import mean_ablation
    from mazeinterp.core.model import ImpalaPolicy

    def no_env(*_a, **_k):
        raise AssertionError("no env may be made")

    monkeypatch.setattr("mazeinterp.maze.env.MazeEnv.from_seeds", no_env)
    with pytest.raises(ResourceLimitError, match="reference mazes: 1000000000 mazes would need at least"):
        mean_ablation(ImpalaPolicy(1), "embedder.relu3_out", 10**9)


def test_forward_batches_that_cannot_fit_are_refused(model, seeded_states) -> None:
    from mazeinterp.viz.explorer import Explorer
    from mazeinterp.core.hooks import run_batched_with_cache
    from mazeinterp.analysis.vfield import move_probs_for_states

    huge = 10**9
    with pytest.raises(ResourceLimitError, match=f"a forward batch of {huge} inputs"):
        move_probs_for_states(model, seeded_states[:1], batch_size=huge)
    with pytest.raises(ResourceLimitError, match=f"a forward batch of {huge} inputs"):
        run_batched_with_cache(model, seeded_states[:1], ["embedder.relu3_out"], batch_size=huge)
    with pytest.raises(ResourceLimitError, match=f"a forward batch of {huge} inputs"):
        Explorer(model, seeded_states[0], batch_size=huge)
