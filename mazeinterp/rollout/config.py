"""How a rollout runs (:class:`RolloutConfig`) and the constants of the standard test set."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from mazeinterp.runtime.values import check_positive_int
from mazeinterp.runtime.defaults import MAX_STEPS, ROLLOUT_BATCH_SIZE
from mazeinterp.runtime.limits import check_episode_steps, check_rollout_memory
from mazeinterp.maze import grid, outcomes

__all__ = ["TEST_SEED_START", "RolloutConfig"]

TEST_SEED_START = 1_000_000
"""First level seed of the standard-distribution test mazes of the scripts and reports (far from seed 0)."""


@dataclass(frozen=True)
class RolloutConfig:
    """How :func:`run_rollouts` runs. The mazes themselves are its second argument."""

    greedy: bool = False
    """Take the most probable action instead of sampling from the policy."""
    max_steps: int = MAX_STEPS
    """Step cap per episode; still undecided after this many steps → outcome ``"neither"``."""
    seed: int = 0
    """Seeds action sampling and cheese placement; maze ``i`` uses the stream ``(seed, i)``."""
    batch_size: int = ROLLOUT_BATCH_SIZE
    """Number of envs stepped together (and the largest batch sent through the network)."""
    device: str | None = None
    """Torch device of the forward passes; None → the policy's own device (CPU for scripted policies)."""
    cheese_region: int | None = None
    """If ``k``, move each maze's cheese to a random open cell of the top-right k×k corner first
    (the training distribution of the published agent is k = 5); None keeps the maze's cheese."""
    record_trajectories: bool = False
    """Keep every episode's list of visited cells (start included) in :attr:`Episode.trajectory`."""
    record_action_probs: bool = False
    """Keep every episode's move probabilities at each step in :attr:`Episode.action_probs` (for animations)."""
    progress: bool = True
    """Report progress (finished mazes, frames/s) at least every 2 s: a tqdm bar on a terminal or in
    Jupyter, else a line on stderr (:func:`mazeinterp.runtime.progress.progress_bar`). False: silent."""
    threads: int | None = None
    """Torch CPU threads for the forward passes; None → :func:`mazeinterp.runtime.threads.default_threads` of the
    batch (one thread for small batches, which stays fast on a busy machine). Restored afterwards."""
    channels_last: bool = True
    """True: the package's numerics (the fast channels-last path unless the reference numerics are switched
    on, see :mod:`mazeinterp.core.numerics`); False: this run uses the reference numerics (contiguous layout)."""
    check_positions: bool = False
    """After every step, read each active env's state and check the tracked mouse cell (slow; tests)."""
    region_size: int = outcomes.DEFAULT_REGION_SIZE
    """Side k of the top-right region whose first arrival each episode records (:attr:`Episode.region_step`)."""
    decision_square: str = "mazeinterp"
    """Definition of the decision square that episodes record and summaries filter on: ``"mazeinterp"`` or
    ``"research"`` (the published research code's; see :func:`mazeinterp.maze.grid.decision_square`)."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "region_size"):
            check_positive_int(getattr(self, name), f"RolloutConfig.{name}")
        check_episode_steps(int(self.max_steps), "RolloutConfig.max_steps")
        check_rollout_memory(int(self.batch_size), int(self.max_steps), "RolloutConfig")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"RolloutConfig.seed must be a non-negative int, got {self.seed!r}")
        grid.check_decision_square_definition(self.decision_square)
        check_positive_int(self.cheese_region, "RolloutConfig.cheese_region", or_none=True)
        from mazeinterp.runtime.threads import check_threads

        try:
            check_threads(self.threads)
        except ValueError as exc:
            raise ValueError(f"RolloutConfig.{exc}") from None

    def as_dict(self) -> dict[str, Any]:
        """Plain-data view (for JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

