"""Behaviour cloning from the BFS oracle: labels, loss, and a resumable tiny run."""

from __future__ import annotations

import collections
import csv
import dataclasses

import numpy as np
import pytest
import torch

from mazeinterp.checkpoints.registry import load_policy, save_policy
from mazeinterp.maze.env import MazeEnv, StateRenderer
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import ImpalaPolicy, Move, obs_to_tensor
from mazeinterp.train.common import RunSetupError
from mazeinterp.train.imitate import ImitationConfig, imitation_loss, learning_rate_at, move_log_probs, train_imitation
from mazeinterp.train.imitation_data import ChunkSource, policy_visits
from mazeinterp.train.oracle import cells_with_path_copies, labelled_frames, oracle_labels

U, D, L, R = Move.UP, Move.DOWN, Move.LEFT, Move.RIGHT


def test_oracle_labels_are_the_first_move_of_the_bfs_path(hand_maze: MazeState) -> None:
    expected = {  # worked out by hand: the cheese at (0, 4) is reached through (0, 3) from (1, 3)
        (0, 0): D, (0, 1): L, (0, 3): R,
        (1, 0): D, (1, 3): U,
        (2, 0): R, (2, 1): R, (2, 2): R, (2, 3): U, (2, 4): L,
        (3, 0): U, (3, 2): U, (3, 4): U,
        (4, 0): U, (4, 1): L, (4, 3): R, (4, 4): U,
    }
    assert dict(oracle_labels(hand_maze)) == expected


def test_oracle_needs_a_cheese(hand_maze: MazeState) -> None:
    with pytest.raises(ValueError, match="no"):
        oracle_labels(hand_maze.without_cheese())


def test_labelled_frames_place_the_mouse_on_each_cell(hand_maze: MazeState) -> None:
    renderer = StateRenderer(batch_size=8)
    obs, moves = labelled_frames([hand_maze], renderer, cells=[[(4, 0), (2, 4), (3, 3)]])
    renderer.close()
    assert obs.shape == (2, 64, 64, 3) and moves.tolist() == [U, L], "walls are skipped"
    assert not (obs[0] == obs[1]).all(), "the mouse moved"


def test_path_cells_are_repeated_and_labelled_like_the_rest(hand_maze: MazeState) -> None:
    assert hand_maze.mouse == (4, 0)
    path = [(4, 0), (3, 0), (2, 0), (2, 1), (2, 2), (2, 3), (1, 3), (0, 3), (0, 4)]  # by hand, to the cheese
    cells = cells_with_path_copies(hand_maze, 2)
    counts = collections.Counter(cells)
    assert len(counts) == 18 and all(counts[c] == (3 if c in path else 1) for c in counts)
    assert cells_with_path_copies(hand_maze, 0) == list(counts)  # every open cell once
    renderer = StateRenderer(batch_size=64)
    obs, moves = labelled_frames([hand_maze], renderer, cells=[cells])
    renderer.close()
    assert len(moves) == 17 + 2 * 8, "the cheese's cell gives no frame"
    # R at (0,3), (2,0), (2,1), (2,2) on the path and (4,3) off it
    assert collections.Counter(moves.tolist())[int(R)] == 5 + 2 * 4
    with pytest.raises(ValueError, match="needs a cheese"):
        cells_with_path_copies(hand_maze.without_cheese(), 1)


def test_mirrored_flags_change_the_drawing_not_the_label(hand_maze: MazeState) -> None:
    cells = [[(4, 0), (2, 4), (2, 4), (0, 4)]]  # the cheese's cell (0, 4) gives no frame
    renderer = StateRenderer(batch_size=8)
    plain_obs, plain_moves = labelled_frames([hand_maze], renderer, cells=cells)
    obs, moves = labelled_frames([hand_maze], renderer, cells=cells, mirrored=[[False, True, False, True]])
    expected = renderer([hand_maze.with_mouse((2, 4)).with_mouse_reflected(True)])[0]
    with pytest.raises(ValueError, match="maze 0 has 4 cells but 2 mirrored flags"):
        labelled_frames([hand_maze], renderer, cells=cells, mirrored=[[True, False]])
    with pytest.raises(ValueError, match="need the cells"):
        labelled_frames([hand_maze], renderer, mirrored=[[True]])
    renderer.close()
    assert moves.tolist() == plain_moves.tolist() == [U, L, L]
    assert np.array_equal(obs[[0, 2]], plain_obs[[0, 2]]) and np.array_equal(obs[1], expected)
    assert not np.array_equal(obs[1], plain_obs[1])


def test_move_log_probs_sum_the_action_groups() -> None:
    logits = torch.log(torch.tensor([[1.0, 1, 2, 4, 1, 2, 1, 1, 2, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]))
    total = logits.exp().sum()
    expected = torch.tensor([[4.0, 4.0, 2.0, 4.0, 4.0]]) / total  # left, down, up, right, noop
    assert torch.allclose(move_log_probs(logits).exp(), expected)


def test_loss_falls_on_a_fixed_batch(hand_maze: MazeState) -> None:
    torch.manual_seed(0)
    renderer = StateRenderer(batch_size=32)
    obs, moves = labelled_frames([hand_maze], renderer)
    renderer.close()
    policy = ImpalaPolicy(scale=1)
    x, y = obs_to_tensor(obs), torch.as_tensor(moves)
    optimizer = torch.optim.Adam(policy.parameters(), lr=2e-3)
    first, _ = imitation_loss(policy, x, y)
    for _ in range(40):
        loss, _ = imitation_loss(policy, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    last, accuracy = imitation_loss(policy, x, y)
    assert last.item() < 0.7 * first.item()
    assert accuracy.item() > 0.4


def _tiny(tmp_path, **changes) -> ImitationConfig:
    config = ImitationConfig(total_samples=256, batch_size=64, mazes_per_chunk=2, held_out_mazes=2,
                             eval_mazes=2, eval_every_samples=128, checkpoint_every_samples=128,
                             warmup_samples=64, eval_max_steps=20, num_threads=1,
                             out_dir=str(tmp_path / "run"), device="cpu")
    return dataclasses.replace(config, **changes)


def test_training_chunks_repeat_the_path_cells(tmp_path) -> None:
    from mazeinterp.maze.grid import shortest_path

    sizes, mazes = [], None
    for copies in (0, 2):
        source = ChunkSource(_tiny(tmp_path, path_copies=copies), np.random.default_rng(7))
        try:
            sizes.append(len(source.bc_chunk().moves))
            mazes = source.env.get_states()
        finally:
            source.close()
    path_cells = sum(len(shortest_path(m.open_cells, m.mouse, m.cheese)) - 1 for m in mazes)
    assert sizes[1] == sizes[0] + 2 * path_cells
    source = ChunkSource(_tiny(tmp_path, mirror_fraction=0.5), np.random.default_rng(7))
    try:
        chunk = source.bc_chunk()
        plain = labelled_frames(source.env.get_states(), source.renderer)[0]
    finally:
        source.close()
    assert len(chunk.moves) == sizes[0]
    drawn_plain = {frame.tobytes() for frame in plain}
    share_mirrored = np.mean([frame.tobytes() not in drawn_plain for frame in chunk.obs])
    assert 0.25 < share_mirrored < 0.75, share_mirrored


class _RecordingPolicy(torch.nn.Module):
    """Wraps a policy and keeps every input batch it is shown."""

    def __init__(self, policy: ImpalaPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.inputs.append(x.clone())
        return self.policy(x)


def test_dagger_visits_redraw_exactly_the_frames_the_policy_saw() -> None:
    torch.manual_seed(0)
    recorder = _RecordingPolicy(ImpalaPolicy(scale=1).eval())
    with MazeEnv.from_seeds([1, 10, 11, 15, 0, 4], cheese_region=5, seed=0) as env:  # four 3×3 mazes first
        states = env.get_states()
        cells, mirrored = policy_visits(recorder, env, 24, torch.device("cpu"), torch.Generator().manual_seed(0))
    # the cell after the last step is never shown; an env is shown only while its first episode runs
    shown = [min(len(c), len(recorder.inputs)) for c in cells]
    playing = np.array([[t < n for n in shown] for t in range(len(recorder.inputs))])
    assert [len(x) for x in recorder.inputs] == playing.sum(1).tolist(), "finished envs were shown to the policy"
    assert not playing[-1].all(), "some 3×3 episode ends within 24 steps, so later batches are smaller"
    renderer = StateRenderer(batch_size=64)
    try:
        for i, state in enumerate(states):
            assert len(cells[i]) == len(mirrored[i]) and len(cells[i]) >= 2
            pairs = list(zip(cells[i], mirrored[i]))[:shown[i]]
            redrawn = renderer([state.with_mouse(c).with_mouse_reflected(f) for c, f in pairs])
            seen = torch.stack([recorder.inputs[t][playing[t, :i].sum()] for t in range(shown[i])])
            assert torch.equal(obs_to_tensor(redrawn), seen), f"maze {i}: a redrawn frame differs from procgen's"
    finally:
        renderer.close()
    flags = [f for per_maze in mirrored for f in per_maze[1:]]
    assert any(flags) and not all(flags), "a near-uniform policy moves both ways, so both drawings occur"


def test_tiny_run_writes_log_and_checkpoints_and_resumes(tmp_path) -> None:
    config = _tiny(tmp_path)
    final = train_imitation(config, progress=False)
    run = tmp_path / "run"
    assert final == run / "checkpoint_final.pt" and (run / "checkpoint_latest.pt").exists()
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["samples"]) for r in rows] == [128, 256]
    assert {"train_loss", "held_out_accuracy", "solve_rate", "elapsed_s"} <= rows[0].keys()
    assert 0.0 <= float(rows[0]["held_out_accuracy"]) <= 1.0 and 0.0 <= float(rows[0]["solve_rate"]) <= 1.0
    first = load_policy(final)
    assert first.metadata["samples"] == 256 and first.metadata["trainer"] == "imitate"
    assert first.metadata["config"]["total_samples"] == 256

    longer = dataclasses.replace(config, total_samples=384, dagger_after_samples=256, dagger_fraction=1.0,
                                 dagger_steps=5)
    train_imitation(longer, resume=True, progress=False)
    resumed = load_policy(run / "checkpoint_final.pt")
    assert resumed.metadata["samples"] >= 384
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["samples"]) for r in rows][:2] == [128, 256] and rows[-1]["dagger"] == "True"
    changed = [not torch.equal(a, b) for a, b in zip(first.state_dict().values(), resumed.state_dict().values())]
    assert any(changed), "resuming trained further from the saved weights"


def test_resume_restores_weights_optimizer_and_streams(tmp_path) -> None:
    config = _tiny(tmp_path, total_samples=128, eval_mazes=0)
    train_imitation(config, progress=False)
    latest = tmp_path / "run" / "checkpoint_latest.pt"
    saved = torch.load(latest, weights_only=True)
    assert saved["optimizer_state_dict"]["state"], "optimizer moments are saved"
    streams = saved["metadata"]["streams"]
    assert set(streams) == {"bc", "dagger", "torch"}
    # Resuming with the same budget does nothing more and leaves the weights as saved.
    train_imitation(config, resume=True, progress=False)
    again = torch.load(latest, weights_only=True)
    for key, value in saved["model_state_dict"].items():
        assert torch.equal(value, again["model_state_dict"][key])
    assert again["metadata"]["samples"] == 128


def test_fresh_run_refuses_to_overwrite_and_resume_needs_a_run(tmp_path) -> None:
    config = _tiny(tmp_path, total_samples=128, eval_mazes=0)
    train_imitation(config, progress=False)
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_imitation(config, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing touched
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train_imitation(dataclasses.replace(config, out_dir=str(tmp_path / "empty")), resume=True, progress=False)
    assert not (tmp_path / "empty").exists()


def test_learning_rate_warms_up_holds_then_decays_linearly_to_zero():
    config = ImitationConfig(learning_rate=1e-3, warmup_samples=100, total_samples=1000, decay_start_samples=600)
    rates = {n: learning_rate_at(config, n) for n in (0, 49, 99, 300, 600, 700, 900, 1000)}
    assert rates == pytest.approx({0: 1e-5, 49: 5e-4, 99: 1e-3, 300: 1e-3, 600: 1e-3, 700: 7.5e-4,
                                   900: 2.5e-4, 1000: 0.0})
    constant = dataclasses.replace(config, decay_start_samples=None)
    assert learning_rate_at(constant, 1000) == pytest.approx(1e-3)


@pytest.mark.parametrize("field, value, message", [
    ("total_samples", -5, "total_samples must be a positive int"),
    ("batch_size", 0, "batch_size must be a positive int"),
    ("scale", 2.5, "scale must be a positive int"),
    ("warmup_samples", -1, "warmup_samples must be >= 0"),
    ("path_copies", -1, "path_copies must be >= 0"),
    ("mirror_fraction", 1.5, r"mirror_fraction must lie in \[0, 1\]"),
    ("dagger_after_samples", -1, "dagger_after_samples must be >= 0 or None"),
    ("dagger_fraction", 1.5, r"dagger_fraction must lie in \[0, 1\]"),
    ("decay_start_samples", 8_000_000, r"decay_start_samples must lie in \[0, total_samples = 8000000\)"),
    ("decay_start_samples", -1, "decay_start_samples must lie in"),
    ("learning_rate", 0.0, "learning_rate > 0"),
    ("device", "tpu", "device must be"),
])
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        ImitationConfig(**{field: value})


def test_module_entry_point_turns_bad_flags_into_one_line_errors(tmp_path, capsys):
    from mazeinterp.train.imitate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--total-samples", "-5", "--out-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "total_samples must be a positive int, got -5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written


def test_resume_after_a_kill_never_duplicates_or_contradicts_a_log_row(tmp_path) -> None:
    """Killed after logging the 256-frame row but before its checkpoint: the resumed run logs it once."""
    import shutil

    config = _tiny(tmp_path, eval_mazes=0)
    train_imitation(config, progress=False)
    run = tmp_path / "run"
    early = _tiny(tmp_path / "early", eval_mazes=0, total_samples=128)
    train_imitation(early, progress=False)
    shutil.copy(tmp_path / "early" / "run" / "checkpoint_latest.pt", run / "checkpoint_latest.pt")  # samples 128
    (run / "checkpoint_final.pt").unlink()
    with (run / "log.csv").open("a") as handle:
        handle.write("384,0.5")  # and a row cut short by the kill
    train_imitation(config, resume=True, progress=False)
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["samples"]) for r in rows] == [128, 256]
    assert all(None not in r.values() for r in rows)


def test_warm_start_from_a_narrower_checkpoint_widens_it(tmp_path) -> None:
    from mazeinterp.train.imitate import _build_policy

    torch.manual_seed(0)
    narrow = ImpalaPolicy(scale=1).eval()
    path = save_policy(narrow, tmp_path / "narrow.pt", metadata={"trainer": "imitate"})
    x = torch.rand(3, 3, 64, 64)
    wide, optimizer_state, _ = _build_policy(_tiny(tmp_path, scale=2, init_checkpoint=str(path)),
                                             torch.device("cpu"), tmp_path / "none.pt", resume=False)
    assert wide.scale == 2 and optimizer_state is None
    with torch.no_grad():
        torch.testing.assert_close(wide.eval()(x)[0], narrow(x)[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(RunSetupError, match=r"w\.pt: can only widen a scale-2 policy to a multiple of 2, got scale 3"):
        _build_policy(_tiny(tmp_path, scale=3, init_checkpoint=str(save_policy(wide, tmp_path / "w.pt"))),
                      torch.device("cpu"), tmp_path / "none.pt", resume=False)
