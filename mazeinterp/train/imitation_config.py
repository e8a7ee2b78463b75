"""The hyperparameters of behaviour cloning from the BFS oracle (:mod:`mazeinterp.train.imitate`)."""

from __future__ import annotations

from dataclasses import dataclass

from mazeinterp.runtime.values import check_positive_int
from mazeinterp.maze.grid import TOP_RIGHT_REGION_SIZE
from mazeinterp.runtime.defaults import MAX_STEPS


@dataclass(frozen=True)
class ImitationConfig:
    """Hyperparameters of behaviour cloning from the BFS oracle."""

    scale: int = 1
    """IMPALA channel scale of the trained network (1: 16/32/32 channels; 4: the published width)."""
    cheese_region: int = TOP_RIGHT_REGION_SIZE
    """The cheese is placed uniformly on an open cell of the top-right n×n corner."""
    total_samples: int = 8_000_000
    """Labelled frames to train on (one frame = one mouse position in one maze)."""
    batch_size: int = 256
    """Frames per gradient step."""
    learning_rate: float = 5e-4
    """Adam learning rate after warm-up."""
    warmup_samples: int = 100_000
    """Linear learning-rate warm-up over this many frames."""
    decay_start_samples: int | None = None
    """From this frame the learning rate falls linearly to zero at ``total_samples`` (None: constant)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    mazes_per_chunk: int = 96
    """Mazes generated per data chunk; every open cell of each is labelled, then the chunk is shuffled."""
    path_copies: int = 0
    """Extra frames of each cell on the path from the mouse's start to the cheese, per chunk maze."""
    mirror_fraction: float = 0.0
    """Fraction of frames with the mouse drawn mirrored (procgen draws it so after a rightward move)."""
    dagger_after_samples: int | None = None
    """Start the DAgger phase after this many frames (None: pure behaviour cloning)."""
    dagger_fraction: float = 0.5
    """In the DAgger phase, fraction of chunks built from cells the current policy visits."""
    dagger_steps: int = 120
    """Steps the policy plays each maze of a DAgger chunk."""
    eval_every_samples: int = 250_000
    """Evaluate (held-out move accuracy, solve rate) every this many frames."""
    eval_mazes: int = 64
    """Mazes for the solve-rate evaluation (sampled actions, up to 500 steps)."""
    eval_max_steps: int = MAX_STEPS
    """Step cap of the solve-rate evaluation (procgen's own timeout is 500)."""
    held_out_mazes: int = 32
    """Fixed mazes (a seed stream training never draws) whose every cell measures held-out accuracy."""
    checkpoint_every_samples: int = 250_000
    """Write ``checkpoint_latest.pt`` every this many frames."""
    seed: int = 0
    """Seeds torch, numpy and the maze stream."""
    device: str = "auto"
    """'auto' (CUDA if available), 'cpu' or 'cuda'."""
    num_threads: int = 0
    """torch CPU threads (0: torch's default)."""
    channels_last: bool = True
    """True: the package's numerics (channels-last activations, about 2× faster on CPU, unless the reference
    numerics are switched on, see :mod:`mazeinterp.core.numerics`); False: train with the reference numerics."""
    out_dir: str = "runs/imitate"
    """Where the log, checkpoints and config go."""
    init_checkpoint: str | None = None
    """Start from this checkpoint's weights (widened first if ``scale`` is a multiple of its scale)."""
    field_loss_weight: float = 0.0
    """Weight of the auxiliary loss of a training-only head that predicts the oracle's move at every cell (0: off)."""

    def __post_init__(self) -> None:
        positive = ("scale", "cheese_region", "total_samples", "batch_size", "mazes_per_chunk", "dagger_steps",
                    "eval_every_samples", "eval_max_steps", "checkpoint_every_samples")
        for name in positive:
            check_positive_int(getattr(self, name), f"ImitationConfig.{name}")
        for name in ("warmup_samples", "num_threads", "eval_mazes", "held_out_mazes", "path_copies"):
            if getattr(self, name) < 0:
                raise ValueError(f"ImitationConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.decay_start_samples is not None and not 0 <= self.decay_start_samples < self.total_samples:
            raise ValueError(f"ImitationConfig.decay_start_samples must lie in [0, total_samples = "
                             f"{self.total_samples}), got {self.decay_start_samples!r}")
        if self.dagger_after_samples is not None and self.dagger_after_samples < 0:
            raise ValueError(f"ImitationConfig.dagger_after_samples must be >= 0 or None, "
                             f"got {self.dagger_after_samples!r}")
        if not 0.0 <= self.mirror_fraction <= 1.0:
            raise ValueError(f"ImitationConfig.mirror_fraction must lie in [0, 1], got {self.mirror_fraction!r}")
        if not 0.0 <= self.dagger_fraction <= 1.0:
            raise ValueError(f"ImitationConfig.dagger_fraction must lie in [0, 1], got {self.dagger_fraction!r}")
        if not self.field_loss_weight >= 0:
            raise ValueError(f"ImitationConfig.field_loss_weight must be >= 0, got {self.field_loss_weight!r}")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ValueError(f"ImitationConfig needs learning_rate > 0 and weight_decay >= 0, got "
                             f"{self.learning_rate!r} and {self.weight_decay!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"ImitationConfig.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
