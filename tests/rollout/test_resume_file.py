"""Resume files: what an interrupted rollout keeps is checked before it is trusted.

One small interrupted run serves every test: a random scale-1 policy on 4 mazes
(level seeds 7…10), 12 steps at most; mazes 0, 1 and 3 finished.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mazeinterp.runtime.digests import data_sha256
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts
from mazeinterp.rollout.resume import RESUME_FILE, ResumeError, ResumeKey, load_partial, save_partial

SETTINGS = {"checkpoint": "tiny.pt", "n_mazes": 4, "seed": 3}
CONFIG = RolloutConfig(max_steps=12, seed=3, batch_size=4, progress=False, record_trajectories=True,
                       record_action_probs=True)
FINISHED = [0, 1, 3]


@pytest.fixture(scope="module")
def run(model) -> dict[str, Any]:
    states = load_mazes(range(7, 11))
    result = run_rollouts(model, states, config=CONFIG, indices=FINISHED)
    return {"states": states, "result": result, "key": ResumeKey.of(SETTINGS, model, CONFIG, states)}


@pytest.fixture()
def folder(run, tmp_path: Path) -> Path:
    save_partial(tmp_path, run["result"], run["key"])
    return tmp_path


def _load(folder: Path, run: dict[str, Any], key: ResumeKey | None = None):
    return load_partial(folder, key or run["key"], run["states"])


def _edit(folder: Path, change, seal: bool = True) -> None:
    """Change the stored data with ``change(data)``; with ``seal``, give it a matching checksum again."""
    path = folder / RESUME_FILE
    data = json.loads(path.read_text())
    data.pop("checksum")
    change(data)
    if seal:
        data["checksum"] = data_sha256(data)
    path.write_text(json.dumps(data))


def _refused(folder: Path, run: dict[str, Any], match: str, key: ResumeKey | None = None) -> str:
    with pytest.raises(ResumeError, match=match) as error:
        _load(folder, run, key)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_resume_gives_back_the_finished_episodes_exactly(folder, run) -> None:
    episodes, seconds = _load(folder, run)
    assert [ep.index for ep in episodes] == FINISHED
    assert seconds == run["result"].seconds
    for mine, theirs in zip(episodes, run["result"].episodes, strict=True):  # rows: NaN features compare equal
        assert mine.to_row() == theirs.to_row() and mine.trap == theirs.trap
        assert np.array_equal(mine.action_probs, theirs.action_probs) and mine.action_probs.shape[1] == 5
    stored = json.loads((folder / RESUME_FILE).read_text())
    assert stored["mazes"] == [7, 8, 9, 10] and stored["config"]["max_steps"] == 12
    assert "progress" not in stored["config"] and stored["format"] == 2


def test_another_agent_in_the_same_file_is_refused(folder, run) -> None:
    torch.manual_seed(1)
    other = ImpalaPolicy(scale=1).eval()
    key = ResumeKey.of(SETTINGS, other, CONFIG, run["states"])  # same settings, same path: other weights
    _refused(folder, run, r"cannot resume .*: the checkpoint's weights differ \(sha256 [0-9a-f]{12}…", key)


def test_other_settings_config_or_mazes_are_refused_naming_them(folder, run, model) -> None:
    key = dataclasses.replace(run["key"], settings={**run["key"].settings, "seed": 4})
    _refused(folder, run, "cannot resume .*: seed was 3, now 4$", key)
    config = ResumeKey.of(SETTINGS, model, dataclasses.replace(CONFIG, max_steps=13), run["states"])
    _refused(folder, run, "cannot resume .*: config.max_steps was 12, now 13$", config)
    states = load_mazes([7, 8, 99, 10])
    _refused(folder, run, "cannot resume .*: maze 2 was level seed 9, now 99$",
             ResumeKey.of(SETTINGS, model, CONFIG, states))
    _refused(folder, run, "cannot resume .*: it was a run of 4 mazes, now 3$",
             ResumeKey.of(SETTINGS, model, CONFIG, run["states"][:3]))
    moved = [*run["states"][:3], run["states"][3].without_cheese()]
    _refused(folder, run, "cannot resume .*: the mazes' start states differ",
             ResumeKey.of(SETTINGS, model, CONFIG, moved))


def test_any_edit_breaks_the_checksum(folder, run) -> None:
    _edit(folder, lambda d: d["episodes"][0].update(steps=d["episodes"][0]["steps"] - 1), seal=False)
    _refused(folder, run, "checksum does not match its contents .*without --resume")


def _set(position: int, **values: Any):
    return lambda data: data["episodes"][position].update(values)


def _noop_where_the_mouse_moved(data: dict[str, Any]) -> None:
    episode = data["episodes"][0]
    walk = episode["trajectory"]
    step = next(i for i in range(len(walk) - 1) if walk[i] != walk[i + 1])
    episode["moves"][step] = 4  # NOOP, yet the mouse changed cells


def _duplicate(data: dict[str, Any]) -> None:
    data["episodes"].append(dict(data["episodes"][1]))


@pytest.mark.parametrize(("change", "match"), [
    (_set(0, outcome="won"), "episode 0: outcome 'won' is not one of cheese, top_right, neither"),
    (_set(1, steps=-1), r"episode 1: steps -1 is outside 0…12"),
    (_set(1, steps=13), r"episode 1: steps 13 is outside 0…12"),
    (_set(1, steps="5"), r"episode 1: steps '5' is outside 0…12"),
    (_set(2, level_seed=1234), r"episode 3: level_seed 1234 is not its maze's \(10\)"),
    (_set(0, index=4), r"episode index 4 is not a maze position 0…3 of this run"),
    (_set(0, index=True), r"episode index True is not a maze position"),
    (_set(0, start=[0, 99]), r"episode 0: start \[0, 99\] is not a cell"),
    (_set(0, trap={"cells": [[0, 0]], "share": 0.5}), "episode 0: trap .* is neither null nor"),
    (_set(0, action_probs=[[0.5] * 4]), "episode 0: action_probs .* rows of 5 probabilities"),
    (lambda d: d["episodes"][0]["action_probs"].pop(), r"episode 0: action_probs .* neither null nor \d+ rows"),
    (lambda d: d["episodes"][0]["action_probs"][0].__setitem__(0, 0.9), "episode 0: action_probs .* summing to 1"),
    (lambda d: d["episodes"][0]["trajectory"].pop(), "episode 0: trajectory .* a walk of .* cells from the start"),
    (lambda d: d["episodes"][0]["trajectory"].__setitem__(1, [0, 0]), "episode 0: trajectory .* a walk of"),
    (lambda d: d["episodes"][0].update(trajectory=[[0, 0]] * len(d["episodes"][0]["trajectory"])),
     "episode 0: trajectory .* a walk of"),  # a walk (standing still), but not from the start
    (lambda d: d["episodes"][0]["moves"].pop(), r"episode 0: moves .* neither null nor \d+ moves"),
    (lambda d: d["episodes"][0]["moves"].__setitem__(0, 7), r"episode 0: moves .* neither null nor \d+ moves"),
    (_set(0, moves=None), "episode 0: moves .*recorded together"),
    (_noop_where_the_mouse_moved, "episode 0: moves .* has move 4 where the trajectory steps from"),
    (_set(0, colour="red"), "episode 0: unknown key 'colour'"),
    (lambda d: d["episodes"][0].pop("outcome"), "episode 0: missing key 'outcome'"),
    (lambda d: d["episodes"].append("cheese"), "an episode is 'cheese', not a JSON object"),
    (_duplicate, "episode 1 is stored twice"),
    (lambda d: d.update(episodes={"0": 1}), "episodes is not a list"),
    (lambda d: d.update(seconds=-1.0), "seconds -1.0 is not a duration"),
    (lambda d: d.pop("mazes_sha256"), "missing key 'mazes_sha256'"),
    (lambda d: d.update(extra=1), "unknown key 'extra'"),
    (lambda d: d["settings"].update({"seed\nx": 1}), r"cannot resume .*: 'seed\\nx' was 1, now None$"),
])
def test_every_stored_episode_is_checked_before_any_maze_runs(folder, run, change, match) -> None:
    _edit(folder, change)  # re-sealed: the schema alone must catch it
    _refused(folder, run, match)


@pytest.mark.parametrize(("content", "match"), [
    (b"", "is not a resume file .*Expecting value"),
    (b'{"settings": {', "is not a resume file .*Expecting"),
    (bytes(range(256)) * 4, "is not a resume file .*codec can't decode"),
    (b"[1, 2]", r"is not a resume file .*\(a JSON list, not an object\)"),
    (b'{"format": 3}', "unknown format 3 "),
    (b'{"settings": {}, "n_mazes": 4, "seconds": 1.0, "episodes": []}', "earlier version of mazeinterp"),
])
def test_damaged_foreign_and_old_files_are_one_line_errors(folder, run, content, match) -> None:
    (folder / RESUME_FILE).write_bytes(content)
    _refused(folder, run, match)


def test_a_folder_in_place_of_the_file_is_one_line(run, tmp_path: Path) -> None:
    (tmp_path / RESUME_FILE).mkdir()
    _refused(tmp_path, run, "is not a resume file .*Is a directory")
    _refused(tmp_path / "none", run, "nothing to resume in")


def test_the_command_line_refuses_a_resume_with_another_agent_in_the_file(tmp_path: Path, capsys,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import mazeinterp.rollout.runner
    from mazeinterp import cli
    from mazeinterp.checkpoints.registry import save_policy

    checkpoint = tmp_path / "agent.pt"
    torch.manual_seed(0)
    save_policy(ImpalaPolicy(scale=1), checkpoint)
    argv = ["rollout", "--checkpoint", str(checkpoint), "--n-mazes", "3", "--max-steps", "5", "--out",
            str(tmp_path / "run"), "--no-progress"]
    finish = mazeinterp.rollout.runner._Runner._finish

    def finish_then_interrupt(self, slot, outcome):
        finish(self, slot, outcome)
        raise KeyboardInterrupt

    monkeypatch.setattr(mazeinterp.rollout.runner._Runner, "_finish", finish_then_interrupt)
    assert cli.main(argv) == 130
    monkeypatch.undo()
    torch.manual_seed(1)
    save_policy(ImpalaPolicy(scale=1), checkpoint, overwrite=True)  # the same path now holds another agent
    capsys.readouterr()

    def one_error() -> str:
        assert cli.main([*argv, "--resume"]) == 2
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("mazeinterp rollout: error: ")
        return lines[0]

    assert "the checkpoint's weights differ" in one_error()
    (tmp_path / "run" / RESUME_FILE).write_bytes(bytes(range(256)))
    assert "is not a resume file of an interrupted rollout" in one_error()
