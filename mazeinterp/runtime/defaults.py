"""Default settings shared by several modules (library, command line), each defined once.

This module imports nothing, so any module can take its defaults from here
without import cost or import cycles.

>>> DEFAULT_STEERING_HOOK
'embedder.block2.res1.resadd_out'
"""

from __future__ import annotations

__all__ = [
    "CHEESE_VECTOR_COEFFICIENT",
    "DEFAULT_STEERING_HOOK",
    "DIRECTIONAL_HOOK",
    "FORWARD_BATCH_SIZE",
    "MAX_STEPS",
    "REFERENCE_MAZES",
    "RETARGET_VALUE",
    "ROLLOUT_BATCH_SIZE",
]

DEFAULT_STEERING_HOOK = "embedder.block2.res1.resadd_out"
"""The layer of the published cheese vector and retargeting (128 × 16 × 16 at scale 4); also the
default layer of channel discovery, sweeps and the explorer."""

DIRECTIONAL_HOOK = "embedder.relu3_out"
"""Default layer of :func:`mazeinterp.analysis.channels.directional_channels` (the last map before the fully
connected layers, 128 × 8 × 8 at scale 4)."""

CHEESE_VECTOR_COEFFICIENT = -1.0
"""Coefficient with which a cheese vector is added: −1 removes, at its layer, what the cheese adds."""

RETARGET_VALUE = 5.5
"""Value a cheese-tracking channel is clamped to when retargeting (≈ the published network's)."""

FORWARD_BATCH_SIZE = 256
"""Observations per forward pass when running the policy on many mazes or cells (does not change numbers)."""

MAX_STEPS = 500
"""Step cap per episode: procgen's own episode length. Rollouts, sweeps and the exact outcome chain default to it."""

ROLLOUT_BATCH_SIZE = 64
"""Envs stepped together in a rollout (does not change numbers)."""

REFERENCE_MAZES = 100
"""Random mazes whose start observations give mean-ablation means and resampling sources."""
