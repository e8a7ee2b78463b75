"""The IMPALA-CNN policy of the procgen maze agent, with every op a named module.

The architecture and parameter names match the published goal-misgeneralization
checkpoints, so their ``model_state_dict`` loads unchanged. Every op (each conv,
ReLU, max-pool, residual add, flatten, linear layer) is its own submodule, so a
forward hook on module ``foo.bar`` sees that op's output; its *hook point* is
called ``foo.bar_out`` (the naming of the published interpretability work).

Shapes at ``scale`` s (published maze agent: s = 4), per example; the one table
of them (``tests/core/test_model.py`` checks it against :meth:`ImpalaPolicy.hook_points`)::

    input                                   3 × 64 × 64  float in [0, 1]
    embedder.block1.conv_out                16s × 64 × 64
    embedder.block1.{maxpool,res1.*,res2.*} 16s × 32 × 32
    embedder.block2.conv_out                32s × 32 × 32
    embedder.block2.{maxpool,res1.*,res2.*} 32s × 16 × 16   (cheese vector layer: res1.resadd)
    embedder.block3.conv_out                32s × 16 × 16
    embedder.block3.{maxpool,res1.*,res2.*} 32s × 8 × 8
    embedder.relu3_out                      32s × 8 × 8
    embedder.flatten_out                    32s · 64
    embedder.fc_out, embedder.relufc_out    256
    fc_policy_out                           15 (logits)
    fc_value_out                            1

Observations become network input in exactly one place,
:func:`~mazeinterp.maze.observations.obs_to_tensor` (re-exported here). The 15
procgen actions collapse to 5 maze moves; the move vocabulary (:class:`Move`,
:data:`MOVES`, :data:`MOVE_DELTAS`, the action maps) lives in
:mod:`mazeinterp.maze.moves` and is re-exported here. This module adds the
torch side: :func:`move_probs` and :func:`actions_to_moves` for tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mazeinterp.runtime.values import check_positive_int
from mazeinterp.core.hook_points import HOOK_SUFFIX, unknown_hook_point
from mazeinterp.maze.moves import ACTION_TO_MOVE, MOVE_DELTAS, MOVE_TO_ACTION, MOVES, NUM_ACTIONS, Move
from mazeinterp.core.numerics import as_network_input, check_reference_weights
from mazeinterp.maze.observations import OBS_SHAPE, obs_to_tensor

__all__ = [
    "ACTION_TO_MOVE",
    "BASE_WIDTHS",
    "HOOK_SUFFIX",
    "MOVES",
    "MOVE_DELTAS",
    "MOVE_TO_ACTION",
    "NUM_ACTIONS",
    "OBS_SHAPE",
    "ImpalaBlock",
    "ImpalaEmbedder",
    "ImpalaPolicy",
    "Move",
    "ResidualAdd",
    "ResidualBlock",
    "actions_to_moves",
    "count_parameters",
    "move_probs",
    "obs_to_tensor",
]

BASE_WIDTHS = (16, 32, 32)
"""Channel widths of the three IMPALA blocks at scale 1."""
HIDDEN_SIZE = 256


class ResidualAdd(nn.Module):
    """The residual ``x + y`` as a module, so its output can be hooked.

    Shapes: ``x``, ``y`` (B, C, H, W) → (B, C, H, W).
    """

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Return ``x + y`` (B, C, H, W)."""
        return x + y


class ResidualBlock(nn.Module):
    """relu1 → conv1 → relu2 → conv2 → resadd(·, input); channels unchanged.

    Shapes: (B, C, H, W) → (B, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.resadd = ResidualAdd()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block: (B, C, H, W) → (B, C, H, W)."""
        out = self.conv2(self.relu2(self.conv1(self.relu1(x))))
        return self.resadd(out, x)


class ImpalaBlock(nn.Module):
    """conv 3×3 → maxpool(3, stride 2, pad 1) → res1 → res2.

    Shapes: (B, C_in, H, W) → (B, C_out, ⌈H/2⌉, ⌈W/2⌉).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.res1 = ResidualBlock(out_channels)
        self.res2 = ResidualBlock(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block: (B, C_in, H, W) → (B, C_out, H/2, W/2)."""
        return self.res2(self.res1(self.maxpool(self.conv(x))))


class ImpalaEmbedder(nn.Module):
    """Three IMPALA blocks, then relu3 → flatten → fc → relufc.

    Shapes: (B, 3, 64, 64) → (B, 256).
    """

    def __init__(self, scale: int, in_channels: int = 3) -> None:
        super().__init__()
        c1, c2, c3 = (w * scale for w in BASE_WIDTHS)
        self.block1 = ImpalaBlock(in_channels, c1)
        self.block2 = ImpalaBlock(c1, c2)
        self.block3 = ImpalaBlock(c2, c3)
        self.relu3 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3 * 8 * 8, HIDDEN_SIZE)
        self.relufc = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """Embed images: (B, 3, 64, 64) → (B, 256)."""
        h = self.block3(self.block2(self.block1(x)))
        return self.relufc(self.fc(self.flatten(self.relu3(h))))


def _init_weights(module: nn.Module) -> None:
    """Initialisation of the training code of the published agent (train-procgen-pytorch).

    Xavier-uniform with gain 1 (not the ReLU gain √2: through nine convolutions
    and six residual adds that gain would blow the hidden activations up about
    tenfold and stall early training).
    """
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight, gain=1.0)
        if module.bias is not None:  # every layer of the network has one
            nn.init.zeros_(module.bias)


class ImpalaPolicy(nn.Module):
    """IMPALA-CNN actor-critic of the procgen maze agent.

    Shapes: input (B, 3, 64, 64) float32 in [0, 1] (see :func:`obs_to_tensor`)
    → logits (B, 15) and value (B,).

    Attributes:
        scale: channel multiplier; block widths are (16, 32, 32) · scale.
        num_actions: number of logits (15 for procgen).
        metadata: plain-data description of where the weights came from
            (filled by :func:`mazeinterp.checkpoints.registry.load_policy`; empty otherwise).
        source: the checkpoint file the weights were loaded from, if any.
    """

    def __init__(self, scale: int = 1, num_actions: int = NUM_ACTIONS) -> None:
        super().__init__()
        self.scale = int(check_positive_int(scale, "scale"))
        self.num_actions = int(check_positive_int(num_actions, "num_actions"))
        self.embedder = ImpalaEmbedder(self.scale)
        self.fc_policy = nn.Linear(HIDDEN_SIZE, self.num_actions)
        self.fc_value = nn.Linear(HIDDEN_SIZE, 1)
        self.metadata: dict[str, Any] = {}
        self.source: Path | None = None
        self._hook_shapes: dict[str, tuple[int, ...]] | None = None
        self.apply(_init_weights)
        nn.init.orthogonal_(self.fc_policy.weight, gain=0.01)
        nn.init.orthogonal_(self.fc_value.weight, gain=1.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run the policy: x (B, 3, 64, 64) float → (logits (B, 15), value (B,)).

        The input is laid out by :func:`mazeinterp.core.numerics.as_network_input` (channels-last on
        the fast path, contiguous on the reference path); the weights stay contiguous.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 64, 64) or not x.is_floating_point():
            raise ValueError(
                "ImpalaPolicy expects float input of shape (B, 3, 64, 64) in [0, 1], "
                f"got dtype {x.dtype} and shape {tuple(x.shape)}; "
                "convert uint8 (B, 64, 64, 3) observations with obs_to_tensor"
            )
        check_reference_weights(self.embedder.block1.conv.weight)
        hidden = self.embedder(as_network_input(x))
        return self.fc_policy(hidden), self.fc_value(hidden).squeeze(-1)

    def extra_repr(self) -> str:
        """Shown in ``repr(model)``."""
        return f"scale={self.scale}, num_actions={self.num_actions}"

    def hook_points(self) -> dict[str, tuple[int, ...]]:
        """Map every hook point ``<module path>_out`` to its per-example shape.

        Covers every submodule (each leaf op, and the residual blocks, blocks
        and embedder that contain them), in the order their outputs are
        produced during a forward pass. Shapes exclude the batch dimension:
        (C, H, W) for maps, (F,) for vectors. Computed once by a dry forward
        pass on a zeros batch of one, with temporary hooks that are always removed.
        """
        if self._hook_shapes is None:
            self._hook_shapes = self._trace_shapes()
        return dict(self._hook_shapes)

    def _trace_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        handles = []

        def recorder(name: str):
            def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
                shapes[name + HOOK_SUFFIX] = tuple(output.shape[1:])

            return hook

        param = next(self.parameters())
        try:
            for name, module in self.named_modules():
                if name:
                    handles.append(module.register_forward_hook(recorder(name)))
            with torch.no_grad():
                self(torch.zeros(1, 3, 64, 64, device=param.device, dtype=param.dtype))
        finally:
            for handle in handles:
                handle.remove()
        return shapes

    def module_for_hook(self, name: str) -> nn.Module:
        """Return the module whose output is hook point ``name`` (``foo.bar_out`` → ``foo.bar``).

        Raises:
            UnknownHookPointError: ``name`` is not a hook point (a KeyError and a ValueError);
                the message lists close names.
        """
        modules = dict(self.named_modules())
        path = name[: -len(HOOK_SUFFIX)] if name.endswith(HOOK_SUFFIX) else None
        if path and path in modules:
            return modules[path]
        raise unknown_hook_point(name, [p + HOOK_SUFFIX for p in modules if p])


def count_parameters(model: nn.Module) -> int:
    """Total number of parameter elements of ``model`` (3,653,136 for ImpalaPolicy(scale=4))."""
    return sum(p.numel() for p in model.parameters())


def _action_to_move_tensor(device: torch.device) -> Tensor:
    return torch.tensor(ACTION_TO_MOVE.tolist(), dtype=torch.long, device=device)


def move_probs(logits: Tensor) -> Tensor:
    """Probabilities of the 5 moves from action logits.

    Shapes: (..., 15) → (..., 5) in :class:`Move` order; softmax over the 15
    actions, then the probabilities of actions with the same move are summed.
    """
    if logits.shape[-1:] != (NUM_ACTIONS,):
        raise ValueError(f"move_probs expects logits of shape (..., {NUM_ACTIONS}), got {tuple(logits.shape)}")
    probs = torch.softmax(logits, dim=-1)
    onehot = torch.nn.functional.one_hot(_action_to_move_tensor(logits.device), len(Move))
    return probs @ onehot.to(probs.dtype)


def actions_to_moves(actions: int | np.ndarray | Tensor) -> int | np.ndarray | Tensor:
    """Map procgen actions (ints in 0…14) to :class:`Move` values, keeping the shape.

    Returns the same kind as given: an int for an int, an int64 array for an
    array, an int64 tensor (same device) for a tensor.

    Raises:
        ValueError: an action outside 0…14.
    """
    if isinstance(actions, Tensor):
        if actions.numel() and (actions.min() < 0 or actions.max() >= NUM_ACTIONS):
            raise ValueError(f"actions must lie in 0..{NUM_ACTIONS - 1}")
        return _action_to_move_tensor(actions.device)[actions.long()]
    array = np.asarray(actions)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"actions must be integers, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= NUM_ACTIONS):
        raise ValueError(f"actions must lie in 0..{NUM_ACTIONS - 1}, got values in {array.min()}..{array.max()}")
    moves = ACTION_TO_MOVE[array]
    return int(moves) if array.ndim == 0 and not isinstance(actions, np.ndarray) else moves
