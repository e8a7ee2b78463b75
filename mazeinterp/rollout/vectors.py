"""Per-maze steering inside a rollout: each batch row gets its own maze's vector.

A :class:`~mazeinterp.core.interventions.PerEpisodeIntervention` is told by
:func:`~mazeinterp.rollout.run_rollouts`, before every forward pass, which maze
(index into the rollout's maze list) each batch row shows.
:class:`EpisodeVectors` uses that to add each maze's own vector (the published
recipe: subtract each maze's own cheese vector).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mazeinterp.core.finite import finite_number
from mazeinterp.core.interventions import PerEpisodeIntervention, as_tensor_copy

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["EpisodeVectors"]


@dataclass(frozen=True, eq=False, repr=False)
class EpisodeVectors(PerEpisodeIntervention):
    """Add a different vector to each maze's activations at one hook point (per-maze steering).

    ``vectors[i]`` (shape of the hook point, e.g. ``(128, 16, 16)``) belongs to
    maze ``i`` of the rollout's maze list; inside :func:`~mazeinterp.rollout.run_rollouts`
    each batch row gets its own maze's vector, times ``coefficient``. This is the
    published recipe of subtracting each maze's own cheese vector
    (``coefficient=-1``). Outside a rollout, call :meth:`set_episode_indices`
    yourself before a forward pass. ``channels`` / ``pixels`` restrict the
    edit as for every :class:`~mazeinterp.core.interventions.Intervention`.

    The fields are fixed once built. The batch rows' mazes change before every
    forward pass; they are kept in :attr:`rows`, a mutable
    :class:`~mazeinterp.core.interventions.EpisodeRows` of this edit's own (a copy
    made with ``dataclasses.replace`` gets a fresh one).

    Args:
        hook: hook point name, e.g. ``"embedder.block2.res1.resadd_out"``.
        vectors: tensor ``(num_mazes, *hook_shape)``.
        coefficient: multiplier (−1 subtracts).
    """

    vectors: Tensor
    coefficient: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        vectors = as_tensor_copy(self.vectors, "vectors")
        if vectors.ndim < 2:
            raise ValueError(f"vectors must be (num_mazes, *hook_shape), got shape {tuple(vectors.shape)}")
        # normalise the given values once, at construction (the fields never change afterwards)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "coefficient", finite_number(self.coefficient, "coefficient"))

    def set_episode_indices(self, indices: np.ndarray | Sequence[int]) -> None:
        """Select the maze of every row of the next forward pass (writes :attr:`rows`)."""
        import torch

        rows = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= self.vectors.shape[0]):
            raise IndexError(f"{self}: maze index out of range for {self.vectors.shape[0]} vectors")
        self.rows.indices = rows

    def edit(self, act: Tensor) -> Tensor:
        """``act + coefficient · vectors[rows]`` (shapes ``(B, *hook_shape)``)."""
        rows = self.rows.indices
        if rows is None:
            raise RuntimeError("EpisodeVectors needs set_episode_indices() before a forward pass")
        if len(rows) != act.shape[0]:
            raise ValueError(f"{len(rows)} episode indices for a batch of {act.shape[0]}")
        vec = self.vectors.index_select(0, rows).to(device=act.device, dtype=act.dtype)
        return act + self.coefficient * vec

    def _params(self) -> list[str]:
        return [f"vectors={tuple(self.vectors.shape)}", f"coefficient={self.coefficient:g}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if tuple(self.vectors.shape[1:]) != tuple(shape):
            raise ValueError(f"{self}: vectors have per-maze shape {tuple(self.vectors.shape[1:])}, "
                             f"hook point {self.hook!r} has {tuple(shape)}")
