"""procgen observations → network input, in exactly one place.

procgen returns uint8 frames ``(64, 64, 3)`` (NHWC, 0…255); the IMPALA policy
(:mod:`mazeinterp.core.model`) takes float ``(B, 3, 64, 64)`` (NCHW) in [0, 1].
Everything that feeds the network -- the env (:meth:`mazeinterp.maze.env.MazeEnv.obs_tensor`),
rollouts, hooks, trainers -- converts through :func:`obs_to_tensor`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["OBS_SHAPE", "obs_to_tensor"]

OBS_SHAPE = (64, 64, 3)
"""Shape of one procgen observation (H, W, C), uint8."""


def obs_to_tensor(obs: np.ndarray | Tensor, device: str | torch.device | None = None) -> Tensor:
    """Convert procgen observations to network input.

    Shapes: uint8 (B, 64, 64, 3) or a single frame (64, 64, 3), NHWC in 0…255
    → float32 (B, 3, 64, 64) (B = 1 for a single frame), NCHW in [0, 1],
    on ``device`` (default: the input's device, CPU for numpy).

    Raises:
        TypeError: ``obs`` is neither a numpy array nor a torch tensor.
        ValueError: wrong dtype or shape.
    """
    if isinstance(obs, np.ndarray):
        dtype_ok = obs.dtype == np.uint8
    elif isinstance(obs, Tensor):
        dtype_ok = obs.dtype == torch.uint8
    else:
        raise TypeError(f"obs_to_tensor expects a numpy array or torch tensor, got {type(obs).__name__}")
    shape = tuple(obs.shape)
    if not dtype_ok:
        raise ValueError(f"obs_to_tensor expects uint8 observations, got dtype {obs.dtype}")
    if shape == OBS_SHAPE:
        obs = obs[None]
    elif len(shape) != 4 or shape[1:] != OBS_SHAPE:
        raise ValueError(
            f"obs_to_tensor expects shape (B, 64, 64, 3) or (64, 64, 3) (NHWC), got {shape}"
        )
    if isinstance(obs, np.ndarray):
        array = np.ascontiguousarray(obs)
        obs = torch.from_numpy(array if array.flags.writeable else array.copy())
    if device is not None:
        obs = obs.to(device)
    return obs.permute(0, 3, 1, 2).float().div_(255.0).contiguous()
