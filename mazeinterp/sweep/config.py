"""A sweep's definition: :class:`SweepConfig` (in Python or a TOML file) and its grid of :class:`Condition`.

Every value is checked when the config is made; a bad one raises
:class:`SweepConfigError` naming the file (if any), the key and what is wrong.
Running a sweep is :mod:`mazeinterp.sweep.runner`.

>>> config = SweepConfig(channels=(1, 7), kinds=("zero", "scale"), coefficients=(0.5,), n_mazes=25)
>>> config.n_shards, config.shard_levels(2)
(3, [20, 21, 22, 23, 24])
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from mazeinterp.runtime.limits import FLOAT32_MAX
from mazeinterp.core.hook_points import check_layer
from mazeinterp.runtime.limits import (
    ResourceLimitError,
    check_episode_steps,
    check_memory,
    check_rollout_memory,
    check_states_memory,
)
from mazeinterp.runtime.defaults import DEFAULT_STEERING_HOOK, MAX_STEPS, REFERENCE_MAZES, ROLLOUT_BATCH_SIZE

__all__ = ["ESTIMATORS", "KINDS", "Condition", "SweepConfig", "SweepConfigError", "conditions",
           "load_sweep_config"]

KINDS: tuple[str, ...] = ("zero", "mean", "resample", "scale", "clamp", "add")
"""The kinds of edit a sweep knows (see :mod:`mazeinterp.sweep.runner` for the coefficient of each)."""
ESTIMATORS: tuple[str, ...] = ("sampled", "exact")
"""How a sweep measures outcomes: sampled rollouts, or exact probabilities (:mod:`mazeinterp.sweep.exact`)."""


class SweepConfigError(ValueError):
    """A sweep config that cannot run: names the file (if any), the key and what is wrong."""


# --------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: which edits, on which mazes, with which rollout settings. Every field has a default."""

    checkpoint: str | None = None
    """Checkpoint file, shipped agent name or ``published:NAME``; None → the shipped default agent."""
    hooks: tuple[str, ...] = (DEFAULT_STEERING_HOOK,)
    """Hook points whose channels are edited (each a (C, H, W) map)."""
    channels: tuple[int, ...] | None = None
    """Channels edited at every hook point, one at a time; None → all channels of each hook point."""
    kinds: tuple[str, ...] = ("mean",)
    """Kinds of edit, from :data:`KINDS`."""
    coefficients: tuple[float, ...] = (1.0,)
    """Coefficients of every kind (ablation strength, scale factor, clamp value or added amount)."""
    n_mazes: int = 200
    """Number of mazes: the level seeds ``start_level … start_level + n_mazes − 1``."""
    start_level: int = 0
    """First level seed."""
    seeds: tuple[int, ...] = (0,)
    """Sweep seeds: every condition runs once per seed (action sampling, cheese placement)."""
    shard_size: int = 10
    """Mazes per shard (the unit of work, of progress and of resumption; part of the sweep's definition)."""
    reference_mazes: int = REFERENCE_MAZES
    """Random mazes whose start observations give the mean (``"mean"``) and the sources (``"resample"``)."""
    reference_seed: int = 0
    """Seed of the reference mazes and of the resampling pairing."""
    max_steps: int = MAX_STEPS
    """Step cap per episode."""
    greedy: bool = False
    """Take the most probable action instead of sampling."""
    cheese_region: int | None = None
    """If k, move each cheese to a random open cell of the top-right k×k corner first."""
    batch_size: int = ROLLOUT_BATCH_SIZE
    """Envs stepped together inside a shard (does not change the numbers)."""
    estimator: str = "sampled"
    """``"sampled"``: one sampled rollout per maze, condition and seed; ``"exact"``: each maze's exact
    outcome probabilities (:mod:`mazeinterp.sweep.exact`), effects bootstrapped over mazes."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", _str_tuple(self.hooks, "hooks"))
        object.__setattr__(self, "kinds", _str_tuple(self.kinds, "kinds"))
        if self.channels is not None:
            object.__setattr__(self, "channels", _int_tuple(self.channels, "channels", minimum=0))
        object.__setattr__(self, "seeds", _int_tuple(self.seeds, "seeds", minimum=0))
        object.__setattr__(self, "coefficients", _float_tuple(self.coefficients, "coefficients"))
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise SweepConfigError(f"kinds: unknown kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
        for name in ("n_mazes", "shard_size", "reference_mazes", "max_steps", "batch_size"):
            _check_int(getattr(self, name), name, minimum=1)
        for name in ("start_level", "reference_seed"):
            _check_int(getattr(self, name), name, minimum=0)
        if self.cheese_region is not None:
            _check_int(self.cheese_region, "cheese_region", minimum=1)
        if not isinstance(self.greedy, bool):
            raise SweepConfigError(f"greedy: expected true or false, got {self.greedy!r}")
        if self.estimator not in ESTIMATORS:
            raise SweepConfigError(f"estimator: unknown estimator {self.estimator!r}; choose from "
                                   f"{', '.join(ESTIMATORS)}")
        if self.estimator == "exact" and self.greedy:
            raise SweepConfigError("estimator: 'exact' gives the outcome probabilities of the sampled policy; "
                                   "greedy = true needs estimator = 'sampled'")
        if self.estimator == "exact" and self.n_mazes < 2:
            raise SweepConfigError("estimator: 'exact' needs n_mazes >= 2 (its intervals bootstrap over mazes)")
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            raise SweepConfigError(f"checkpoint: expected a string, got {self.checkpoint!r}")
        if self.start_level + self.n_mazes > 2**31 - 1:
            raise SweepConfigError("start_level + n_mazes must stay below 2**31 - 1 (procgen's level seeds)")
        _check_bounds(self)

    @property
    def level_seeds(self) -> list[int]:
        """The sweep's mazes, in order."""
        return list(range(self.start_level, self.start_level + self.n_mazes))

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return math.ceil(self.n_mazes / self.shard_size)

    def shard_levels(self, shard: int) -> list[int]:
        """Level seeds of shard ``shard``."""
        first = self.start_level + shard * self.shard_size  # not via level_seeds: a sweep may be huge
        return list(range(first, min(first + self.shard_size, self.start_level + self.n_mazes)))

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON / TOML keys)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


LEVEL_SEED_BYTES = 36
"""Memory of one level seed in the list of a sweep's mazes (a list slot and an int object)."""

OUTCOME_BYTES = 8
"""Memory of one episode's outcome while shards are merged (a list slot)."""


def _check_bounds(config: SweepConfig) -> None:
    """Refuse settings that cannot fit in memory (:mod:`mazeinterp.runtime.limits`), naming the key."""
    try:
        check_episode_steps(config.max_steps, "max_steps")
        check_rollout_memory(config.batch_size, config.max_steps, "max_steps and batch_size")
        check_states_memory(config.reference_mazes, "reference_mazes", observations=True)
        check_memory(f"n_mazes: {config.n_mazes} mazes", config.n_mazes * LEVEL_SEED_BYTES, "use fewer mazes")
    except ResourceLimitError as exc:
        raise SweepConfigError(str(exc)) from None


def _check_grid_memory(config: SweepConfig, n_conditions: int) -> None:
    """Refuse a grid whose outcomes (conditions × mazes × seeds) cannot be held while merging, naming the sizes."""
    episodes = (n_conditions + 1) * config.n_mazes * len(config.seeds)  # + 1: the baseline
    try:
        check_memory(f"the grid: {n_conditions} conditions × {config.n_mazes} mazes × {len(config.seeds)} seed(s)",
                     episodes * OUTCOME_BYTES, "use fewer channels, kinds, coefficients, mazes or seeds")
    except ResourceLimitError as exc:
        raise SweepConfigError(str(exc)) from None


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SweepConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")


def _int_tuple(values: Any, name: str, minimum: int) -> tuple[int, ...]:
    values = (values,) if isinstance(values, (int, np.integer)) else values
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise SweepConfigError(f"{name}: expected a list of integers, got {values!r}")
    out = tuple(values)
    if not out:
        raise SweepConfigError(f"{name}: must not be empty")
    for v in out:
        _check_int(v, name, minimum)
    return tuple(int(v) for v in dict.fromkeys(out))


def _float_tuple(values: Any, name: str) -> tuple[float, ...]:
    values = (values,) if isinstance(values, (int, float)) and not isinstance(values, bool) else values
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise SweepConfigError(f"{name}: expected a list of numbers, got {values!r}")
    out = tuple(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                      or abs(v) > FLOAT32_MAX for v in out):
        raise SweepConfigError(f"{name}: expected a non-empty list of finite numbers within float32's range "
                               f"(±{FLOAT32_MAX:.3g}), got {list(out)!r}")
    return tuple(float(v) for v in dict.fromkeys(out))


def _str_tuple(values: Any, name: str) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else values
    if not isinstance(values, Iterable) or not all(isinstance(v, str) and v for v in values):
        raise SweepConfigError(f"{name}: expected a list of names, got {values!r}")
    out = tuple(dict.fromkeys(values))
    if not out:
        raise SweepConfigError(f"{name}: must not be empty")
    return out


def load_sweep_config(path: str | os.PathLike) -> SweepConfig:
    """Read a :class:`SweepConfig` from a TOML file whose top-level keys are its fields.

    ``channels = "all"`` means every channel. Raises :class:`SweepConfigError`
    naming the file and the key for unknown keys and bad values, and
    ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no sweep config file {path}") from None
    except OSError as exc:
        raise SweepConfigError(f"{path}: cannot read the sweep config ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SweepConfigError(f"{path}: not a TOML text file (byte {exc.start} is not UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepConfigError(f"{path}: not valid TOML ({exc})") from None
    known = {f.name for f in fields(SweepConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SweepConfigError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    if data.get("channels") == "all":
        data["channels"] = None
    try:
        return SweepConfig(**data)
    except SweepConfigError as exc:
        raise SweepConfigError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------------------
# the grid of conditions


@dataclass(frozen=True)
class Condition:
    """One cell of the intervention grid: edit ``channel`` of ``hook`` by ``kind`` with ``coefficient``."""

    hook: str
    channel: int
    kind: str
    coefficient: float


def conditions(config: SweepConfig, shapes: Mapping[str, tuple[int, ...]]) -> list[Condition]:
    """The grid in its fixed order (hook, kind, coefficient, channel); ``shapes`` maps hook → (C, H, W).

    Raises :class:`SweepConfigError` for an unknown hook point, a vector hook
    point or a channel out of range (naming them), and for a grid whose
    outcomes cannot fit in memory (conditions × mazes × seeds).
    """
    out = []
    for hook in config.hooks:
        shape, _ = check_layer(shapes, hook, need_map=True,
                               error=lambda message: SweepConfigError(f"hooks: {message} (see `mazeinterp info`)"))
        channels = config.channels if config.channels is not None else tuple(range(shape[0]))
        check_layer(shapes, hook, channels, need_map=True,
                    error=lambda message: SweepConfigError(f"channels: {message}"))
        out += [Condition(hook, c, kind, coef) for kind in config.kinds for coef in config.coefficients
                for c in channels]
    _check_grid_memory(config, len(out))
    return out
