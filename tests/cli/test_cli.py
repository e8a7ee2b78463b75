"""CLI smoke tests on a tiny synthetic checkpoint (scale 1, random weights).

* Through the console script (subprocesses, started in parallel): ``info``,
  ``rollout`` and the bad-argument runs by default; every subcommand in the
  test marked ``slow`` (``pytest -m slow``), since each process pays ~4 s of
  CPU for torch and procgen's first env.
* Every subcommand through :func:`mazeinterp.cli.main` in this process, with
  its files checked; the cheaper error paths in-process too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mazeinterp import cli

GYM_NOTICE = ("Gym has been unmaintained", "Please upgrade to Gymnasium", "Users of this version of Gym",
              "See the migration guide")


def _script() -> list[str]:
    exe = shutil.which("mazeinterp", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "mazeinterp.cli"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _stderr_lines(text: str) -> list[str]:
    """stderr without gym's import notice and progress-bar residue."""
    return [line for line in text.strip().splitlines()
            if line.strip() and not line.startswith(GYM_NOTICE) and "it/s]" not in line and "maze/s]" not in line]


COMMON = ["--n-mazes", "3", "--start-level", "2"]
RUNS: dict[str, tuple[list[str], list[str]]] = {
    # name: (arguments after the checkpoint, files expected in --out)
    "info": (["info"], ["summary.json", "hook_points.csv"]),
    "rollout": (["rollout", *COMMON, "--max-steps", "6", "--region-size", "3", "--plots"],
                ["summary.json", "episodes.csv", "outcomes.png", "trajectories.png"]),
    "vfield": (["vfield", "--n-mazes", "1", "--channels", "0", "1", "--plots"],
               ["summary.json", "cells.csv", "vfield_level0.png"]),
    "ablate": (["ablate", *COMMON, "--max-steps", "6", "--channels", "3", "--layer", "embedder.relu3_out"],
               ["summary.json", "episodes.csv"]),
    "steer": (["steer", *COMMON, "--max-steps", "6", "--coefficient", "-2", "--plots"],
              ["summary.json", "episodes.csv", "outcomes.png", "vfield_first_maze.png"]),
    "channels": (["channels", "--n-mazes", "4", "--top", "5", "--plots"],
                 ["summary.json", "channels.csv", "channels_first_maze.png", "top_channel.png"]),
    "stats": (["stats", "--n-mazes", "12", "--max-steps", "25", "--features", "cheese_top_right_path",
               "cheese_top_right_euclidean", "--plots"],
              ["summary.json", "episodes.csv", "coefficients.csv", "outcomes.png", "coefficients.png"]),
}
BAD_RUNS: dict[str, tuple[list[str], str]] = {
    "missing_checkpoint": (["rollout", "--checkpoint", "/nonexistent/agent.pt"], "no checkpoint file"),
    "unknown_layer": (["ablate", "--channels", "1", "--layer", "embedder.block9_out"], "unknown hook point"),
}


def _launch(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=cwd)


def _run_all(root: Path, checkpoint: Path, names: list[str], bad: list[str]) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Start the console-script runs at once (in parallel), then wait for all of them."""
    procs = {}
    for name in names:
        argv = RUNS[name][0]
        out = root / name
        cmd = [*_script(), argv[0], "--checkpoint", str(checkpoint), *argv[1:], "--out", str(out)]
        procs[name] = (_launch(cmd, root), out, cmd)
    for name in bad:
        argv = BAD_RUNS[name][0]
        out = root / name
        extra = [] if "--checkpoint" in argv else ["--checkpoint", str(checkpoint)]
        procs[name] = (_launch([*_script(), argv[0], *extra, *argv[1:], "--out", str(out)], root), out, None)
    results = {}
    for name, (proc, out, cmd) in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        results[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), out)
    return results


def _check_run(name: str, done: subprocess.CompletedProcess, out: Path) -> None:
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    for filename in RUNS[name][1]:
        path = out / filename
        assert path.is_file() and path.stat().st_size > 0, f"{name} did not write {filename}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == name and summary["scale"] == 1
    assert "wrote" in done.stdout


# The console script itself: two subcommands and the error paths by default (each process pays
# ~2 s for torch and ~2 s for procgen's first env); every subcommand in the slow test below.
SCRIPT_DEFAULT = ["info", "rollout"]


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):
    return _run_all(tmp_path_factory.mktemp("script"), tiny_checkpoint, SCRIPT_DEFAULT, list(BAD_RUNS))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):
    """Every subcommand through :func:`mazeinterp.cli.main` in this process (imports and envs shared)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("main")
    results = {}
    for name, (argv, _) in RUNS.items():
        out = root / name
        stdout, stderr = io.StringIO(), io.StringIO()
        full = [argv[0], "--checkpoint", str(tiny_checkpoint), *argv[1:], "--out", str(out)]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(full)
        results[name] = (subprocess.CompletedProcess(full, code, stdout.getvalue(), stderr.getvalue()), out)
    return results


@pytest.mark.parametrize("name", SCRIPT_DEFAULT)
def test_console_script_runs_and_writes_its_files(script_runs, name: str) -> None:
    _check_run(name, *script_runs[name])


@pytest.mark.slow
def test_every_subcommand_through_the_console_script(tmp_path: Path, tiny_checkpoint: Path) -> None:
    results = _run_all(tmp_path, tiny_checkpoint, list(RUNS), [])
    for name, (done, out) in results.items():
        _check_run(name, done, out)


@pytest.mark.parametrize("name", list(RUNS))
def test_subcommand_runs_and_writes_its_files(runs, name: str) -> None:
    _check_run(name, *runs[name])


def test_subcommand_outputs_make_sense(runs) -> None:
    info = runs["info"][0].stdout
    assert "embedder.block2.res1.resadd_out" in info and "32 × 16 × 16" in info
    rollout = json.loads((runs["rollout"][1] / "summary.json").read_text())
    assert rollout["n_mazes"] == 3 and rollout["config"]["max_steps"] == 6
    assert [s["label"] for s in rollout["summaries"]][0] == "all mazes"
    episodes = (runs["rollout"][1] / "episodes.csv").read_text().splitlines()
    assert len(episodes) == 4 and episodes[0].startswith("index,level_seed")
    assert [line.split(",")[1] for line in episodes[1:]] == ["2", "3", "4"]
    assert "95% Wilson CI" in runs["rollout"][0].stdout and "3×3 first" in runs["rollout"][0].stdout
    assert rollout["config"]["region_size"] == 3 and rollout["summaries"][0]["region_size"] == 3
    assert set(rollout["summaries"][0]["event_counts"]) == {"region_first", "trapped"}
    assert {"region_first", "region_step", "trapped", "trap_cells"} <= set(episodes[0].split(","))
    ablate = json.loads((runs["ablate"][1] / "summary.json").read_text())
    assert ablate["edit"] == "ZeroAblate(embedder.relu3_out, channels=[3])"
    assert ablate["treatment"]["interventions"] == [ablate["edit"]] and ablate["baseline"]["interventions"] == []
    assert {d["outcome"] for d in ablate["differences"]} == {"cheese", "top_right", "neither", "region_first",
                                                             "trapped"}
    assert "paired difference" in runs["ablate"][0].stdout
    steer = json.loads((runs["steer"][1] / "summary.json").read_text())
    assert "cheese vector × -2" in steer["edit"]
    channels = (runs["channels"][1] / "channels.csv").read_text().splitlines()
    assert len(channels) == 1 + 32 and channels[0].startswith("channel,score")
    stats = json.loads((runs["stats"][1] / "summary.json").read_text())
    assert "regression" in stats or "regression_error" in stats
    stats_out = runs["stats"][0].stdout + runs["stats"][0].stderr
    # the low-sample warning (3 of 12 mazes held out) is printed once, with the regression, never again on stderr
    assert "rests on only" not in runs["stats"][0].stderr
    if "regression" in stats:
        assert stats["regression"]["warning"] and stats_out.count("held-out accuracy rests on only") == 1
    assert stats_out.count("trapped: ran out of steps") == 1
    vfield = (runs["vfield"][1] / "cells.csv").read_text().splitlines()
    assert vfield[0].startswith("level_seed,row,col,p_left") and "edited_p_up" in vfield[0]


@pytest.mark.parametrize("name", list(BAD_RUNS))
def test_bad_arguments_give_one_line(script_runs, name: str) -> None:
    done, out = script_runs[name]
    assert done.returncode == cli.EXIT_BAD_INPUT
    lines = _stderr_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"mazeinterp {BAD_RUNS[name][0][0]}: error: ")
    assert BAD_RUNS[name][1] in lines[0]
    assert not out.exists() or not any(out.iterdir()), "nothing is written when the arguments are bad"


# ----- in-process: the cheaper error paths --------------------------------------------------


def _main(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_error_line(err: str, command: str) -> str:
    lines = _stderr_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mazeinterp {command}: error: ") or lines[0].startswith("mazeinterp ")
    return lines[0]


def test_info_prints_again_and_again_and_writes_files_only_with_out(capsys, monkeypatch, tmp_path: Path,
                                                                     tiny_checkpoint: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, out, err = _main(capsys, ["info", "--checkpoint", str(tiny_checkpoint)])
        assert code == 0, err
        assert "32 × 16 × 16" in out and "wrote" not in out
    assert list(tmp_path.iterdir()) == []
    code, out, _ = _main(capsys, ["info", "--checkpoint", str(tiny_checkpoint), "--out", "o"])
    assert code == 0 and "wrote" in out
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["hook_points.csv", "summary.json"]


def test_no_checkpoint_and_no_default_agent(capsys, monkeypatch, tmp_path: Path) -> None:
    from mazeinterp.checkpoints import registry as checkpoint
    monkeypatch.setattr(checkpoint, "DEFAULT_AGENT", None)
    code, _, err = _main(capsys, ["rollout", "--out", str(tmp_path)])
    assert code == 2 and "no --checkpoint given" in _one_error_line(err, "rollout")
    # the default comes from the registry at run time
    monkeypatch.setattr(checkpoint, "DEFAULT_AGENT", "future-agent")
    code, _, err = _main(capsys, ["info", "--out", str(tmp_path)])
    assert code == 2 and "future-agent" in _one_error_line(err, "info")


def test_usage_errors_are_one_line(capsys, tiny_checkpoint: Path, tmp_path: Path) -> None:
    code, _, err = _main(capsys, ["rollout", "--n-mazes", "0", "--checkpoint", str(tiny_checkpoint)])
    assert code == 2 and "--n-mazes" in _one_error_line(err, "rollout")
    code, _, err = _main(capsys, ["channels", "--method", "nope"])
    assert code == 2 and "invalid choice" in _one_error_line(err, "channels")
    code, _, err = _main(capsys, ["stats", "--checkpoint", str(tiny_checkpoint), "--features", "colour"])
    assert code == 2 and "unknown feature 'colour'" in _one_error_line(err, "stats")
    code, _, err = _main(capsys, ["vfield", "--checkpoint", str(tiny_checkpoint), "--channels", "1",
                                  "--vector", "cheese", "--out", str(tmp_path)])
    assert code == 2 and "either --channels" in _one_error_line(err, "vfield")
    code, _, err = _main(capsys, ["vfield", "--checkpoint", str(tiny_checkpoint), "--channels", "40",
                                  "--layer", "embedder.relu3_out", "--out", str(tmp_path)])
    assert code == 2 and "channel 40 is out of range" in _one_error_line(err, "vfield")
    code, _, err = _main(capsys, ["ablate", "--checkpoint", str(tiny_checkpoint), "--channels", "-1",
                                  "--out", str(tmp_path)])
    assert code == 2 and "channel -1 is out of range" in _one_error_line(err, "ablate")
    assert not any(tmp_path.iterdir()), "bad arguments write nothing"
    code, _, err = _main(capsys, ["steer", "--checkpoint", str(tiny_checkpoint), "--layer", "fc_policy_out",
                                  "--out", str(tmp_path)])
    assert code == 2 and "(C, H, W)" in _one_error_line(err, "steer")


def test_earlier_files_are_never_overwritten_unasked(capsys, tiny_checkpoint: Path, tmp_path: Path) -> None:
    argv = ["info", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path)]
    assert _main(capsys, argv)[0] == 0
    before = (tmp_path / "summary.json").read_text()
    (tmp_path / "hook_points.csv").write_text("precious")
    code, _, err = _main(capsys, argv)
    assert code == 2 and "--overwrite" in _one_error_line(err, "info")
    assert (tmp_path / "hook_points.csv").read_text() == "precious", "no file is touched when one exists"
    assert _main(capsys, [*argv, "--overwrite"])[0] == 0
    assert (tmp_path / "hook_points.csv").read_text() != "precious"
    assert json.loads((tmp_path / "summary.json").read_text())["command"] == json.loads(before)["command"]


def test_a_closed_pipe_ends_quietly(monkeypatch, capsys, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`mazeinterp info | head`: the reader leaves early; no traceback, the shell's SIGPIPE status."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        code = cli.main(["info", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path)])
        monkeypatch.undo()
    assert code == cli.EXIT_BROKEN_PIPE == 141
    assert capsys.readouterr().err == ""


def test_train_subcommands_run_and_reject_bad_configs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "imitate"
    code = cli.main(["train", "imitate", "--total-samples", "32", "--batch-size", "16", "--mazes-per-chunk", "1",
                     "--held-out-mazes", "1", "--eval-mazes", "0", "--out", str(out), "--no-progress"])
    assert code == 0
    assert (out / "checkpoint_final.pt").exists() and (out / "log.csv").exists()
    assert "final checkpoint" in capsys.readouterr().out
    code = cli.main(["train", "ppo", "--num-envs", "3", "--num-minibatches", "7", "--out", str(tmp_path / "p")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mazeinterp train: error: num_minibatches (7) must divide num_envs * num_steps (768)"]


# ----- every input error is one line and exit 2, before any work ----------------------------


def _bad_inputs(tmp_path: Path, checkpoint: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    ck = ["--checkpoint", str(checkpoint)]
    out = ["--out", str(tmp_path / "o")]
    return [
        (["info", *ck, "--out", str(a_file / "sub")], "a_file is a file, not a folder"),
        (["rollout", *ck, "--out", str(a_file)], "exists and is not a folder"),
        (["render", "--out", ""], "output folder is empty"),
        (["rollout", *ck, *out, "--device", "mps"], "'mps' is not available"),
        (["rollout", *ck, *out, "--device", "meta"], "'meta' cannot run the policy"),
        (["rollout", *ck, *out, "--device", "gpu7"], "unknown device 'gpu7'"),
        (["steer", *ck, *out, "--coefficient", "nan"], "expected a finite number, got 'nan'"),
        (["vfield", *ck, *out, "--vector", "cheese", "--coefficient", "inf"], "expected a finite number"),
        (["stats", *ck, *out, "--C", "0"], "greater than 0"),
        (["stats", *ck, *out, "--C", "nan"], "finite"),
        (["stats", *ck, *out, "--C", "-1"], "greater than 0"),
        (["stats", *ck, *out, "--test-fraction", "1"], "strictly between 0 and 1"),
        (["train", "ppo", "--distribution-mode", "bogus", "--out", str(tmp_path / "p")],
         "distribution_mode must be one of easy, hard, got 'bogus'"),
        (["train", "imitate", "--out", str(a_file / "x")], "is a file, not a folder"),
        (["train", "imitate", "--learning-rate", "nan", "--out-dir", str(tmp_path / "i")], "finite"),
    ]


def test_bad_inputs_are_one_line_and_exit_2_before_any_work(capsys, tiny_checkpoint: Path, tmp_path: Path) -> None:
    for argv, reason in _bad_inputs(tmp_path, tiny_checkpoint):
        code, _, err = _main(capsys, argv)
        line = _one_error_line(err, argv[0])
        assert code == cli.EXIT_BAD_INPUT and reason in line, (argv, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"], "nothing was written"


def test_an_unwritable_out_is_refused_before_any_work(capsys, tiny_checkpoint: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    for argv in (["rollout", "--checkpoint", str(tiny_checkpoint)], ["info", "--checkpoint", str(tiny_checkpoint)],
                 ["render"]):
        code, _, err = _main(capsys, [*argv, "--out", str(locked / "run")])
        assert code == 2 and f"folder {locked} is not writable" in _one_error_line(err, argv[0])
    code, _, err = _main(capsys, ["train", "imitate", "--out", str(locked)])
    assert code == 2 and f"output folder {locked} is not writable" in _one_error_line(err, "train")


def test_an_unreadable_checkpoint_is_one_line(capsys, tiny_checkpoint: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    code, _, err = _main(capsys, ["info", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o")])
    assert code == 2 and "Permission denied" in _one_error_line(err, "info")


def test_internal_errors_keep_their_traceback(tiny_checkpoint: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import mazeinterp.rollout

    def broken(*args, **kwargs):
        raise ValueError("a bug of ours")

    monkeypatch.setattr(mazeinterp.rollout, "run_rollouts", broken)
    with pytest.raises(ValueError, match="a bug of ours"):
        cli.main(["rollout", "--checkpoint", str(tiny_checkpoint), "--n-mazes", "1", "--out", str(tmp_path / "o")])


# ----- an interrupted rollout keeps its finished episodes and resumes to the same result ----


def test_an_interrupted_rollout_resumes_to_the_uninterrupted_result(capsys, tiny_checkpoint: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import mazeinterp.rollout.runner
    from mazeinterp.rollout.resume import RESUME_FILE

    argv = ["rollout", "--checkpoint", str(tiny_checkpoint), "--n-mazes", "10", "--start-level", "5",
            "--max-steps", "25", "--batch-size", "3", "--seed", "4", "--plots", "--animate", "2"]
    assert _main(capsys, [*argv, "--out", str(tmp_path / "whole")])[0] == 0

    finish = mazeinterp.rollout.runner._Runner._finish

    def finish_then_interrupt(self, slot, outcome):  # Ctrl-C arriving after the fourth finished maze
        finish(self, slot, outcome)
        if len(self.episodes) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(mazeinterp.rollout.runner._Runner, "_finish", finish_then_interrupt)
    cut = tmp_path / "cut"
    code, _, err = _main(capsys, [*argv, "--out", str(cut)])
    assert code == 130 and "--resume" in err
    partial = json.loads((cut / "summary.json").read_text())
    assert partial["partial"] is True and partial["n_mazes"] == 4 and partial["mazes_requested"] == 10
    assert len((cut / "episodes.csv").read_text().splitlines()) == 1 + 4 and (cut / RESUME_FILE).is_file()
    code, _, err = _main(capsys, [*argv, "--out", str(cut)])
    assert code == 2 and "--overwrite" in _one_error_line(err, "rollout"), "a plain rerun does not clobber it"

    code, _, err = _main(capsys, [*argv, "--out", str(cut), "--resume"])  # interrupted again, 4 more
    assert code == 130 and json.loads((cut / "summary.json").read_text())["n_mazes"] == 8
    monkeypatch.undo()
    other_seed = [("5" if a == "4" else a) for a in argv]
    code, _, err = _main(capsys, [*other_seed, "--out", str(cut), "--resume"])
    assert code == 2 and "seed was 4, now 5" in _one_error_line(err, "rollout")
    assert _main(capsys, [*argv, "--out", str(cut), "--resume"])[0] == 0
    assert not (cut / RESUME_FILE).exists()
    assert (cut / "episodes.csv").read_text() == (tmp_path / "whole" / "episodes.csv").read_text()
    whole, resumed = (json.loads((d / "summary.json").read_text()) for d in (tmp_path / "whole", cut))
    for key in ("summaries", "config", "n_mazes", "frames", "policy", "partial"):
        assert resumed[key] == whole[key], key
    code, _, err = _main(capsys, [*argv, "--out", str(tmp_path / "empty"), "--resume"])
    assert code == 2 and "nothing to resume" in _one_error_line(err, "rollout")


def test_sigterm_becomes_an_interrupt_only_inside_the_block() -> None:
    import signal

    from mazeinterp.rollout.resume import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives first
    assert signal.getsignal(signal.SIGTERM) == before
