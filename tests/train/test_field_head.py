"""The training-only field head: its targets, its loss, and a run that trains it and drops it from the weights."""

from __future__ import annotations

import collections
import csv
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from mazeinterp.checkpoints.registry import load_policy
from mazeinterp.maze.env import StateRenderer
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import ImpalaPolicy, Move, obs_to_tensor
from mazeinterp.train.common import RunSetupError
from mazeinterp.train.field_head import IGNORE, FieldHead, captured_blocks, field_loss, field_targets
from mazeinterp.train.imitate import FIELD_HEAD_KEY, ImitationConfig, train_imitation
from mazeinterp.train.imitation_data import ChunkSource
from mazeinterp.train.oracle import labelled_frames

U, D, L, R = Move.UP, Move.DOWN, Move.LEFT, Move.RIGHT


def test_targets_hold_the_oracle_move_of_every_open_cell_in_world_coordinates(hand_maze: MazeState) -> None:
    expected = {  # the hand-worked oracle of test_imitate, shifted by the 5×5 maze's margin of 10 world cells
        (0, 0): D, (0, 1): L, (0, 3): R,
        (1, 0): D, (1, 3): U,
        (2, 0): R, (2, 1): R, (2, 2): R, (2, 3): U, (2, 4): L,
        (3, 0): U, (3, 2): U, (3, 4): U,
        (4, 0): U, (4, 1): L, (4, 3): R, (4, 4): U,
    }
    targets = field_targets(hand_maze)
    assert targets.shape == (25, 25) and targets.dtype == np.int8
    labelled = {(int(r) - 10, int(c) - 10): Move(int(targets[r, c])) for r, c in np.argwhere(targets != IGNORE)}
    assert labelled == expected, "walls, the cheese at (0, 4) and the padding carry no label"
    with pytest.raises(ValueError, match="needs a cheese"):
        field_targets(hand_maze.without_cheese())


class _FixedLogits(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, block2: torch.Tensor, block3: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_loss_and_accuracy_count_only_labelled_cells() -> None:
    logits = torch.zeros(1, 5, 25, 25)
    logits[0, 0] = 100.0  # confidently NOOP everywhere: wrong, but only where a label says so
    targets = torch.full((1, 25, 25), IGNORE, dtype=torch.int8)
    targets[0, 3, 4], targets[0, 7, 7] = int(R), int(U)
    logits[0, :, 3, 4] = 0.0
    logits[0, int(R), 3, 4] = math.log(4.0)  # p(R) = 4 / (4 + 4) = 1/2: right, loss ln 2
    logits[0, :, 7, 7] = 0.0
    logits[0, int(D), 7, 7] = 2.0  # p(U) = 1 / (e² + 4): wrong, loss ln(e² + 4)
    loss, accuracy = field_loss(_FixedLogits(logits), torch.empty(0), torch.empty(0), targets)
    assert loss.item() == pytest.approx((math.log(2.0) + math.log(math.e ** 2 + 4)) / 2, rel=1e-5)
    assert accuracy.item() == pytest.approx(0.5)


def test_head_reads_the_captured_blocks_of_any_scale() -> None:
    policy = ImpalaPolicy(scale=2)
    with captured_blocks(policy) as blocks:
        policy(torch.rand(3, 3, 64, 64))
        assert blocks["block2"].shape == (3, 64, 16, 16) and blocks["block3"].shape == (3, 64, 8, 8)
        assert FieldHead(2)(blocks["block2"], blocks["block3"]).shape == (3, 5, 25, 25)
    assert not policy.embedder.block2._forward_hooks and not policy.embedder.block3._forward_hooks


def test_the_field_loss_reaches_the_trunk_and_nothing_after_it(hand_maze: MazeState) -> None:
    renderer = StateRenderer(batch_size=32)
    obs, _ = labelled_frames([hand_maze], renderer)
    renderer.close()
    x = obs_to_tensor(obs[:4])
    targets = torch.as_tensor(field_targets(hand_maze))[None].expand(len(x), -1, -1)
    policy, head = ImpalaPolicy(scale=1), FieldHead(1)
    with captured_blocks(policy) as blocks:
        policy(x)
        loss, _ = field_loss(head, blocks["block2"], blocks["block3"], targets)
    loss.backward()
    for name, parameter in policy.named_parameters():
        reached = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        in_trunk = name.split(".")[1] in ("block1", "block2", "block3") if name.startswith("embedder.") else False
        assert reached == in_trunk, name
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def _tiny(tmp_path, **changes) -> ImitationConfig:
    config = ImitationConfig(total_samples=128, batch_size=64, mazes_per_chunk=2, held_out_mazes=2, eval_mazes=2,
                             eval_every_samples=128, checkpoint_every_samples=128, warmup_samples=64,
                             eval_max_steps=20, num_threads=1, out_dir=str(tmp_path / "run"), device="cpu",
                             field_loss_weight=1.0)
    return dataclasses.replace(config, **changes)


def test_each_chunk_frame_carries_the_field_of_its_own_maze(tmp_path) -> None:
    source = ChunkSource(_tiny(tmp_path), np.random.default_rng(3))
    try:
        chunk = source.bc_chunk()
        states = source.env.get_states()
    finally:
        source.close()
    assert chunk.fields is not None and chunk.fields.shape == (len(chunk.moves), 25, 25)
    fields = [field_targets(s) for s in states]
    for k, field in enumerate(fields):
        mine = [i for i in range(len(chunk.moves)) if np.array_equal(chunk.fields[i], field)]
        # every open cell but the cheese's gives one frame, so this maze's frames hold exactly its field's moves
        assert collections.Counter(chunk.moves[mine].tolist()) == collections.Counter(
            field[field != IGNORE].tolist()), f"maze {k}"
    without = ChunkSource(_tiny(tmp_path, field_loss_weight=0.0), np.random.default_rng(3))
    try:
        assert without.bc_chunk().fields is None
    finally:
        without.close()


def test_a_run_trains_the_head_keeps_it_for_resuming_and_ships_the_plain_network(tmp_path) -> None:
    config = _tiny(tmp_path)
    final = train_imitation(config, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert 0.0 <= float(rows[-1]["train_field_accuracy"]) <= 1.0 and float(rows[-1]["train_field_loss"]) > 0
    saved = torch.load(final, weights_only=True)
    head_state = saved["optimizer_state_dict"][FIELD_HEAD_KEY]
    assert set(head_state) == set(FieldHead(1).state_dict())
    assert set(saved["model_state_dict"]) == set(ImpalaPolicy(1).state_dict()), "the head is not in the weights"
    load_policy(final)

    # Resuming with the same budget does nothing more and leaves the head as saved.
    train_imitation(config, resume=True, progress=False)
    again = torch.load(tmp_path / "run" / "checkpoint_latest.pt", weights_only=True)
    for key, value in head_state.items():
        assert torch.equal(value, again["optimizer_state_dict"][FIELD_HEAD_KEY][key])
    with pytest.raises(RunSetupError, match="field loss on"):
        train_imitation(dataclasses.replace(config, field_loss_weight=0.0), resume=True, progress=False)


def test_config_rejects_a_negative_field_weight() -> None:
    with pytest.raises(ValueError, match="field_loss_weight must be >= 0"):
        ImitationConfig(field_loss_weight=-0.5)
