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
    # probing: hooks, interventions, vector fields, steering, channel discovery
    "ActivationCache": "mazeinterp.hooks",
    "run_with_cache": "mazeinterp.hooks",
    "run_states_with_cache": "mazeinterp.hooks",
    "run_batched_with_cache": "mazeinterp.hooks",
    "activations": "mazeinterp.hooks",
    "intervene": "mazeinterp.hooks",
    "forward_from": "mazeinterp.hooks",
    "render_states": "mazeinterp.hooks",
    "Intervention": "mazeinterp.interventions",
    "ZeroAblate": "mazeinterp.interventions",
    "MeanAblate": "mazeinterp.interventions",
    "ResampleAblate": "mazeinterp.interventions",
    "AddVector": "mazeinterp.interventions",
    "Clamp": "mazeinterp.interventions",
    "SetValue": "mazeinterp.interventions",
    "Patch": "mazeinterp.interventions",
    "Scale": "mazeinterp.interventions",
    "validate": "mazeinterp.interventions",
    "VectorField": "mazeinterp.vfield",
    "vector_field": "mazeinterp.vfield",
    "vector_fields": "mazeinterp.vfield",
    "field_difference": "mazeinterp.vfield",
    "first_arrival_probabilities": "mazeinterp.vfield",
    "mirror_fields": "mazeinterp.vfield",
    "mirrored_after": "mazeinterp.vfield",
    "outcome_probabilities": "mazeinterp.vfield",
    "cheese_ward_move": "mazeinterp.vfield",
    "decision_square_cheese_prob": "mazeinterp.vfield",
    "move_probs_for_states": "mazeinterp.vfield",
    "cheese_vector": "mazeinterp.steering",
    "cheese_vectors": "mazeinterp.steering",
    "mean_cheese_vector": "mazeinterp.steering",
    "probe_cheese_vector": "mazeinterp.steering",
    "top_right_vector": "mazeinterp.steering",
    "top_right_vectors": "mazeinterp.steering",
    "open_top_right_path": "mazeinterp.steering",
    "retarget": "mazeinterp.steering",
    "path_probability": "mazeinterp.steering",
    "ChannelTable": "mazeinterp.channels",
    "cheese_tracking_channels": "mazeinterp.channels",
    "directional_channels": "mazeinterp.channels",
    "behaviour_attribution": "mazeinterp.channels",
    "cheese_probe": "mazeinterp.channels",
    # rollouts and behavioural statistics
    "RolloutConfig": "mazeinterp.rollout",
    "RolloutResult": "mazeinterp.rollout",
    "Episode": "mazeinterp.rollout",
    "Comparison": "mazeinterp.rollout",
    "run_rollouts": "mazeinterp.rollout",
    "compare": "mazeinterp.rollout",
    "ScriptedPolicy": "mazeinterp.rollout",
    "ShortestPathPolicy": "mazeinterp.rollout",
    "EpisodeVectors": "mazeinterp.rollout",
    "wilson_interval": "mazeinterp.stats",
    "paired_difference": "mazeinterp.stats",
    "fit_cheese_regression": "mazeinterp.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mazeinterp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
