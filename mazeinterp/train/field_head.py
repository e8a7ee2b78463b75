"""An auxiliary training target: the oracle's move at every cell of the maze, read from the network's conv maps.

Behaviour cloning gives one label per frame: the oracle's move at the mouse's
cell. Yet each frame shows the whole maze, and the oracle's move is defined at
every open cell, mouse or not. :class:`FieldHead` is a small head on the
``block2`` and ``block3`` activations that predicts that whole vector field
(a 25×25 map of moves, one per world cell); its loss makes the convolutional
trunk encode which way leads to the cheese everywhere: one label per open cell
(about a hundred in a typical region-15 training maze, over 300 in the largest)
per frame instead of one. The head is used only in training: the policy network
keeps its published architecture and the head is dropped when weights are
exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mazeinterp.maze.pixels import WORLD_SIZE
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import BASE_WIDTHS, ImpalaPolicy
from mazeinterp.train.oracle import oracle_labels

IGNORE = -1
"""Target value of world cells without a move: walls, the padding around small mazes and the cheese."""


def field_targets(state: MazeState) -> np.ndarray:
    """Int8 ``(25, 25)`` map over the world: the oracle's move index at every open cell, ``IGNORE`` elsewhere.

    Raises ValueError if the maze has no cheese.
    """
    targets = np.full((WORLD_SIZE, WORLD_SIZE), IGNORE, dtype=np.int8)
    margin = state.margin
    for (row, col), move in oracle_labels(state):
        targets[row + margin, col + margin] = int(move)
    return targets


class FieldHead(nn.Module):
    """Move logits ``(B, 5, 25, 25)`` for every world cell from ``block2`` ``(B, 32s, 16, 16)`` and ``block3`` ``(B, 32s, 8, 8)`` outputs.

    Both maps are rectified, resized bilinearly to the 25×25 world grid and
    concatenated; one 3×3 convolution and a 1×1 readout follow. The head sees
    only a 5×5 neighbourhood of that grid, so whatever it needs about paths
    farther away must already be in the trunk's activations.
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        c2, c3 = BASE_WIDTHS[1] * scale, BASE_WIDTHS[2] * scale
        self.scale = scale
        self.mix = nn.Conv2d(c2 + c3, c3, kernel_size=3, padding=1)
        self.readout = nn.Conv2d(c3, 5, kernel_size=1)

    def forward(self, block2: torch.Tensor, block3: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 5, 25, 25)`` from the two activation maps."""
        size = (WORLD_SIZE, WORLD_SIZE)
        grid = torch.cat([F.interpolate(F.relu(block2), size=size, mode="bilinear", align_corners=False),
                          F.interpolate(F.relu(block3), size=size, mode="bilinear", align_corners=False)], dim=1)
        return self.readout(F.relu(self.mix(grid)))


def field_loss(head: FieldHead, block2: torch.Tensor, block3: torch.Tensor,
               targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over labelled cells and the accuracy of the most probable move there.

    Args:
        targets: int ``(B, 25, 25)`` move indices, ``IGNORE`` where there is no label.
    """
    logits = head(block2, block3).float()
    targets = targets.long()
    loss = F.cross_entropy(logits, targets, ignore_index=IGNORE)
    labelled = targets != IGNORE
    accuracy = (logits.argmax(1) == targets)[labelled].float().mean()
    return loss, accuracy


@contextmanager
def captured_blocks(policy: ImpalaPolicy) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward pass of ``policy`` leaves its ``block2`` and ``block3`` outputs in the yielded dict.

    At scale s, ``"block2"`` is (B, 32s, 16, 16) and ``"block3"`` (B, 32s, 8, 8).
    """
    seen: dict[str, torch.Tensor] = {}
    handles = [getattr(policy.embedder, name).register_forward_hook(
        lambda _module, _inputs, output, name=name: seen.__setitem__(name, output))
        for name in ("block2", "block3")]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()
