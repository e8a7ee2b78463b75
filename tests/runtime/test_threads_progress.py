"""Thread counts of forward passes, and progress reports that keep a long run from looking dead."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

import mazeinterp.runtime.progress
from mazeinterp.runtime.progress import LineProgress, progress_bar
from mazeinterp.rollout import NoopPolicy, RolloutConfig, run_rollouts
from mazeinterp.runtime.threads import available_cpus, busy_cpus, default_threads, torch_threads


def test_default_threads_is_one_for_small_batches_and_a_few_for_large_ones() -> None:
    assert default_threads(1) == default_threads(16) == 1
    assert default_threads(256, busy=0) == min(4, available_cpus())


def test_default_threads_leaves_out_the_cores_other_processes_hold() -> None:
    cpus = available_cpus()
    assert default_threads(256, busy=cpus) == 1
    assert default_threads(256, busy=cpus + 5) == 1
    assert default_threads(256, busy=1) == max(1, min(4, cpus - 1))
    assert default_threads(8, busy=0) == 1


def test_busy_cpus_counts_a_process_that_holds_a_core() -> None:
    import multiprocessing as mp

    if not Path("/proc/loadavg").exists():
        pytest.skip("no /proc/loadavg on this platform")
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    spinner = ctx.Process(target=_spin_until_killed, args=(ready,), daemon=True)
    spinner.start()
    try:
        assert ready.wait(30)
        assert busy_cpus(samples=5, interval_s=0.01) >= 1
    finally:
        spinner.terminate()
        spinner.join()


def test_torch_threads_restores_the_count_even_on_error() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(2):
        assert torch.get_num_threads() == 2
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive int"):
        RolloutConfig(threads=0)


@pytest.mark.parametrize("threads, expected", [(None, 1), (2, 2)])
def test_rollouts_run_the_network_on_the_chosen_threads(seeded_states, threads, expected) -> None:
    seen: list[int] = []

    def policy(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return torch.zeros(len(x), 15)

    outside = 3 - expected  # the caller's own setting differs from the one expected inside
    with torch_threads(outside):
        run_rollouts(policy, seeded_states[:3], config=RolloutConfig(max_steps=3, threads=threads, progress=False))
        assert torch.get_num_threads() == outside
    assert seen and set(seen) == {expected}


def test_line_progress_reports_count_rate_and_time() -> None:
    stream = io.StringIO()
    with LineProgress(total=3, desc="rollouts", unit="maze", interval=0.0, stream=stream) as bar:
        bar.set_postfix_str("12.5 frames/s", refresh=False)
        bar.update(2)
        bar.update(1)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("rollouts: 2/3 mazes, 12.5 frames/s, ") and lines[0].endswith(" s")
    assert lines[-1].startswith("rollouts: 3/3 mazes")
    quiet = io.StringIO()
    with LineProgress(total=3, interval=60.0, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == "", "a loop shorter than the interval stays silent"


def test_rollout_progress_off_a_terminal_is_stderr_lines(seeded_states, capsys, monkeypatch) -> None:
    monkeypatch.setattr(mazeinterp.runtime.progress, "INTERVAL_S", 0.0)
    run_rollouts(NoopPolicy(), seeded_states[:2], config=RolloutConfig(max_steps=3))
    err = capsys.readouterr().err
    assert "rollouts: 0/2 mazes" in err and "rollouts: 2/2 mazes" in err and "frames/s" in err
    run_rollouts(NoopPolicy(), seeded_states[:2], config=RolloutConfig(max_steps=3, progress=False))
    assert capsys.readouterr().err == ""
    assert progress_bar(total=1, enabled=False).disable


def _spin_until_killed(ready) -> None:
    ready.set()
    while True:
        pass
