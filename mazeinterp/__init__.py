"""mazeinterp: take apart the procgen maze policy (IMPALA CNN).

The package is a house of wings, read in the order data flows through them:
:mod:`~mazeinterp.checkpoints` (names and files → a policy), :mod:`~mazeinterp.core`
(the network, hook points, hooks, interventions), :mod:`~mazeinterp.maze` (states,
envs, observations, outcomes), :mod:`~mazeinterp.rollout` (episodes and their
summaries), :mod:`~mazeinterp.analysis` (vector fields, exact outcomes, steering,
channels, statistics), :mod:`~mazeinterp.sweep` (grids of edits in shards),
:mod:`~mazeinterp.viz` (figures, animations, the explorer), :mod:`~mazeinterp.train`
(the trainers), :mod:`~mazeinterp.runtime` (settings, limits, progress, outputs) and
:mod:`~mazeinterp.cli` (the ``mazeinterp`` command).

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
    "ImpalaPolicy": "mazeinterp.core.model",
    "obs_to_tensor": "mazeinterp.core.model",
    "move_probs": "mazeinterp.core.model",
    "MOVES": "mazeinterp.core.model",
    # checkpoints
    "load_policy": "mazeinterp.checkpoints.registry",
    "save_policy": "mazeinterp.checkpoints.registry",
    "CheckpointError": "mazeinterp.checkpoints.registry",
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
    "ActivationCache": "mazeinterp.core.hooks",
    "run_with_cache": "mazeinterp.core.hooks",
    "run_states_with_cache": "mazeinterp.core.hooks",
    "run_batched_with_cache": "mazeinterp.core.hooks",
    "activations": "mazeinterp.core.hooks",
    "intervene": "mazeinterp.core.hooks",
    "forward_from": "mazeinterp.core.hooks",
    "render_states": "mazeinterp.core.hooks",
    "Intervention": "mazeinterp.core.interventions",
    "PerEpisodeIntervention": "mazeinterp.core.interventions",
    "ZeroAblate": "mazeinterp.core.interventions",
    "MeanAblate": "mazeinterp.core.interventions",
    "ResampleAblate": "mazeinterp.core.interventions",
    "AddVector": "mazeinterp.core.interventions",
    "Clamp": "mazeinterp.core.interventions",
    "SetValue": "mazeinterp.core.interventions",
    "Patch": "mazeinterp.core.interventions",
    "Scale": "mazeinterp.core.interventions",
    "validate": "mazeinterp.core.interventions",
    "validate_interventions": "mazeinterp.core.interventions",
    "reference_activations": "mazeinterp.analysis.references",
    "mean_ablation": "mazeinterp.analysis.references",
    "resample_ablation": "mazeinterp.analysis.references",
    "mean_ablation_from_observations": "mazeinterp.analysis.references",
    "resample_ablation_from_observations": "mazeinterp.analysis.references",
    "patch_from_input": "mazeinterp.analysis.references",
    "random_maze_states": "mazeinterp.analysis.references",
    "VectorField": "mazeinterp.analysis.vfield",
    "vector_field": "mazeinterp.analysis.vfield",
    "vector_fields": "mazeinterp.analysis.vfield",
    "field_difference": "mazeinterp.analysis.vfield",
    "first_arrival_probabilities": "mazeinterp.analysis.vfield",
    "mirror_fields": "mazeinterp.analysis.vfield",
    "mirrored_after": "mazeinterp.analysis.vfield",
    "outcome_probabilities": "mazeinterp.analysis.vfield",
    "cheese_ward_move": "mazeinterp.analysis.vfield",
    "decision_square_cheese_prob": "mazeinterp.analysis.vfield",
    "move_probs_for_states": "mazeinterp.analysis.vfield",
    "cheese_vector": "mazeinterp.analysis.steering",
    "cheese_vectors": "mazeinterp.analysis.steering",
    "mean_cheese_vector": "mazeinterp.analysis.steering",
    "probe_cheese_vector": "mazeinterp.analysis.steering",
    "top_right_vector": "mazeinterp.analysis.steering",
    "top_right_vectors": "mazeinterp.analysis.steering",
    "open_top_right_path": "mazeinterp.analysis.steering",
    "retarget": "mazeinterp.analysis.steering",
    "path_probability": "mazeinterp.analysis.steering",
    "ChannelTable": "mazeinterp.analysis.channels",
    "cheese_tracking_channels": "mazeinterp.analysis.channels",
    "directional_channels": "mazeinterp.analysis.channels",
    "behaviour_attribution": "mazeinterp.analysis.channels",
    "cheese_probe": "mazeinterp.analysis.channels",
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
    "wilson_interval": "mazeinterp.analysis.stats",
    "paired_difference": "mazeinterp.analysis.stats",
    "fit_cheese_regression": "mazeinterp.analysis.stats",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mazeinterp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
