"""CLI: the render command's files, --threads, --no-progress and the subcommands' help."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import matplotlib.image
import pytest
import torch

from mazeinterp import cli
from mazeinterp.maze import grid
from mazeinterp.maze.env import MazeEnv


def _main(argv: list[str]) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


def test_render_writes_a_picture_and_the_geometry_of_each_maze(tmp_path: Path) -> None:
    seeds = [5, 0]
    code, out, err = _main(["render", "--seeds", *map(str, seeds), "--out", str(tmp_path)])
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["command"] == "render"
    with MazeEnv.from_seeds(seeds) as env:
        states = env.get_states()
    for seed, state, maze in zip(seeds, states, summary["mazes"]):
        assert maze["level_seed"] == seed and maze["maze_size"] == state.maze_size
        assert tuple(maze["cheese"]) == state.cheese
        assert tuple(maze["decision_square"]) == grid.decision_square(state.open_cells, state.cheese)
        picture = matplotlib.image.imread(tmp_path / maze["picture"])
        assert picture.ndim == 3 and min(picture.shape[:2]) >= 200
        assert f"seed {seed}: maze {state.maze_size}×{state.maze_size}" in out
    assert (tmp_path / "mazes.csv").read_text().splitlines()[0].startswith("level_seed,maze_size")
    # a second run into the same folder refuses to overwrite
    assert _main(["render", "--seeds", "5", "--out", str(tmp_path)])[0] == cli.EXIT_BAD_INPUT


def test_threads_and_no_progress(tiny_checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    import mazeinterp.runtime.progress

    monkeypatch.setattr(mazeinterp.runtime.progress, "INTERVAL_S", 0.0)  # report at every chance
    before = torch.get_num_threads()
    argv = ["rollout", "--checkpoint", str(tiny_checkpoint), "--n-mazes", "2", "--max-steps", "4"]
    try:
        code, _, err = _main([*argv, "--threads", "2", "--out", str(tmp_path / "a")])
        assert code == 0, err
        assert torch.get_num_threads() == 2  # the command's process-wide setting
        summary = json.loads((tmp_path / "a" / "summary.json").read_text())
        assert summary["config"]["threads"] == 2 and summary["config"]["progress"] is True
        assert "rollouts: 2/2 mazes" in err and "frames/s" in err
        code, _, err = _main([*argv, "--no-progress", "--out", str(tmp_path / "b")])
        assert code == 0 and "rollouts:" not in err
        assert json.loads((tmp_path / "b" / "summary.json").read_text())["config"]["threads"] is None
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["rollout", "--threads", "0"])


@pytest.mark.parametrize("command", ["rollout", "vfield", "ablate", "steer", "channels", "stats", "render", "info"])
def test_subcommand_help_shows_examples(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"mazeinterp {command} " in text
    if command in ("vfield", "ablate", "steer", "channels"):
        assert "--layer" in text and "mazeinterp info" in text
    if command not in ("render", "info"):
        assert "--threads" in text and "--no-progress" in text


@pytest.mark.parametrize("trainer", ["ppo", "imitate"])
def test_train_help_shows_examples_that_parse_and_take_out(trainer: str, capsys) -> None:
    import shlex

    from mazeinterp.cli.train_cmd import TRAIN_EXAMPLES

    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["train", trainer, "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "examples:" in text and "--out DIR, --out-dir DIR" in text
    lines = TRAIN_EXAMPLES[trainer].strip().splitlines()
    assert len(lines) >= 2
    for line in lines:
        assert f"  {line}" in text
        tokens = shlex.split(line, comments=True)
        assert tokens[:3] == ["mazeinterp", "train", trainer]
        args = cli.build_parser().parse_args(tokens[1:])
        assert args.out_dir == tokens[tokens.index("--out") + 1]
    # the older spelling still names the same folder
    assert cli.build_parser().parse_args(["train", trainer, "--out-dir", "x"]).out_dir == "x"


@pytest.mark.parametrize("command", list(cli.EXAMPLES))
def test_help_examples_parse(command: str) -> None:
    import shlex

    for line in cli.EXAMPLES[command].strip().splitlines():
        tokens = shlex.split(line, comments=True)
        assert tokens[:2] == ["mazeinterp", command]
        cli.build_parser().parse_args(tokens[1:])


def test_new_file_takes_only_a_new_file_that_can_be_written(tmp_path: Path) -> None:
    import argparse

    from mazeinterp.runtime.arguments import new_file

    assert new_file(str(tmp_path / "a.json")) == tmp_path / "a.json"
    assert new_file(str(tmp_path / "sub" / "a.json")) == tmp_path / "sub" / "a.json"  # created when written
    assert not (tmp_path / "sub").exists()
    (tmp_path / "old.json").write_text("{}")
    cases = [("", "the file name is empty"),
             (str(tmp_path / "old.json"), "old.json already exists; name a new file"),
             (str(tmp_path), f"{tmp_path} already exists"),
             (str(tmp_path / "old.json" / "a.json"), "old.json exists and is not a folder")]
    for text, reason in cases:
        with pytest.raises(argparse.ArgumentTypeError, match=reason):
            new_file(text)
    assert (tmp_path / "old.json").read_text() == "{}"


def test_write_new_json_creates_the_folder_and_never_overwrites(tmp_path: Path) -> None:
    from mazeinterp.runtime.outputs import OutputExistsError, write_new_json

    path = write_new_json(tmp_path / "deep" / "r.json", {"p": float("nan"), "n": (1, 2)})
    assert json.loads(path.read_text()) == {"p": None, "n": [1, 2]}
    with pytest.raises(OutputExistsError, match="r.json already exists"):
        write_new_json(path, {"p": 1})
    assert json.loads(path.read_text()) == {"p": None, "n": [1, 2]}


def test_integer_options_share_one_rule_and_wording() -> None:
    import argparse

    from mazeinterp.cli import common
    from mazeinterp.runtime import arguments

    assert common.positive_int is arguments.positive_int and common.non_negative_int is arguments.non_negative_int
    assert arguments.max_steps("7") == arguments.n_mazes("7") == arguments.positive_int("7") == 7
    assert arguments.non_negative_int("0") == 0
    for parse in (arguments.positive_int, arguments.max_steps, arguments.n_mazes):
        for text, shown in (("0", "0"), ("-2", "-2"), ("x", "'x'"), ("1.5", "'1.5'")):
            with pytest.raises(argparse.ArgumentTypeError, match=rf"^expected a positive integer, got {shown}$"):
                parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a non-negative integer, got -1$"):
        arguments.non_negative_int("-1")
