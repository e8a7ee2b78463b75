"""mazeinterp: take apart the procgen maze policy (IMPALA CNN).

Importing the package is cheap: the names below are loaded on first use, so
``import mazeinterp`` creates no env, imports no plotting backend and
downloads nothing.

>>> import mazeinterp
>>> policy = mazeinterp.ImpalaPolicy(scale=1)
>>> sorted(policy.hook_points())[:1]
['embedder.block1.conv_out']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # model
    "ImpalaPolicy": "mazeinterp.model",
    "obs_to_tensor": "mazeinterp.model",
    "move_probs": "mazeinterp.model",
    "MOVES": "mazeinterp.model",
    # checkpoints
    "load_policy": "mazeinterp.checkpoint",
    "save_policy": "mazeinterp.checkpoint",
    "CheckpointError": "mazeinterp.checkpoint",
    # maze
    "MazeState": "mazeinterp.maze.state",
    "MazeEnv": "mazeinterp.maze.env",
    "cell_to_pixel": "mazeinterp.maze.pixels",
    "cell_to_pixel_region": "mazeinterp.maze.pixels",
    "pixel_to_cell": "mazeinterp.maze.pixels",
    "decision_square": "mazeinterp.maze.grid",
    "shortest_path": "mazeinterp.maze.grid",
    "maze_features": "mazeinterp.maze.grid",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mazeinterp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
