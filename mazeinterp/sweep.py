"""Sweeps: a grid of interventions × mazes × seeds, sharded by mazes, run in processes or on Ray.

A sweep measures, for every *condition* -- one hook point, one channel, one
kind of edit, one coefficient -- how the edit changes P(cheese) (and
P(top-right)) against the unedited policy on the same mazes with the same
random numbers. It is written once, as a :class:`SweepConfig` (in Python or a
TOML file for ``mazeinterp sweep CONFIG``), and run by :func:`run_sweep`::

    from mazeinterp.sweep import SweepConfig, run_sweep
    config = SweepConfig(hooks=("embedder.block2.res1.resadd_out",), kinds=("mean",), n_mazes=200)
    result = run_sweep(config, "runs/sweep", workers=2)     # or ray_address="auto"
    print(result.top(10))

Kinds of edit and what the coefficient ``c`` means (each edits one channel
everywhere in its map):

* ``"zero"``, ``"mean"``, ``"resample"`` -- ablation of strength ``c``:
  ``act + c · (ablated − act)`` (``c = 1`` is the plain
  :class:`~mazeinterp.interventions.ZeroAblate` / ``MeanAblate`` /
  ``ResampleAblate``; the mean and the resampling sources come from
  ``reference_mazes`` random mazes drawn from ``reference_seed``);
* ``"scale"`` -- multiply the channel by ``c`` (:class:`~mazeinterp.interventions.Scale`);
* ``"clamp"`` -- set the channel to ``c`` (:class:`~mazeinterp.interventions.Clamp`);
* ``"add"`` -- add ``c`` to the channel (:class:`~mazeinterp.interventions.AddVector`).

How it runs
-----------
The mazes (level seeds ``start_level …``) are cut into shards of
``shard_size``. A shard runs every condition and the baseline on its mazes, for
every seed, with :func:`mazeinterp.rollout.run_rollouts`; the rollout seed of
shard ``k`` under sweep seed ``s`` is drawn from ``SeedSequence([s, k])``, so
each shard has its own random numbers and every number depends only on the
config, never on how many workers ran it or in which order. Each finished
shard is written atomically to ``OUT/shards/``; a sweep started again on the
same folder skips the shards already there (a killed sweep resumes). When all
shards are in, they are merged into one table, one row per condition, with
the paired difference in P(cheese) (:func:`mazeinterp.stats.paired_difference`,
pooled over mazes and seeds) as the effect size, written as ``results.csv``
and ``results.parquet``, with a heatmap of effect by channel and coefficient.

Workers are local processes by default (``concurrent.futures`` with a spawn
context, one torch thread each), this process with ``workers=0``, or the tasks
of a Ray cluster with ``ray_address`` (``pip install "mazeinterp[ray]"``; the
nodes need mazeinterp installed). The model and the reference activations are
sent to each worker once.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mazeinterp.interventions import Intervention

if TYPE_CHECKING:
    from torch import Tensor

    from mazeinterp.model import ImpalaPolicy

__all__ = ["KINDS", "Condition", "SweepConfig", "SweepConfigError", "SweepResult", "load_sweep_config",
           "run_sweep"]

KINDS: tuple[str, ...] = ("zero", "mean", "resample", "scale", "clamp", "add")
"""The kinds of edit a sweep knows (see the module docstring for the coefficient of each)."""

_ABLATIONS = ("zero", "mean", "resample")
_OUTCOME_CODES = {"cheese": 0, "top_right": 1, "neither": 2}
_SHARD_FORMAT = 1


class SweepConfigError(ValueError):
    """A sweep config that cannot run: names the file (if any), the key and what is wrong."""


# --------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: which edits, on which mazes, with which rollout settings. Every field has a default."""

    checkpoint: str | None = None
    """Checkpoint file, shipped agent name or ``published:NAME``; None → the shipped default agent."""
    hooks: tuple[str, ...] = ("embedder.block2.res1.resadd_out",)
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
    reference_mazes: int = 100
    """Random mazes whose start observations give the mean (``"mean"``) and the sources (``"resample"``)."""
    reference_seed: int = 0
    """Seed of the reference mazes and of the resampling pairing."""
    max_steps: int = 500
    """Step cap per episode."""
    greedy: bool = False
    """Take the most probable action instead of sampling."""
    cheese_region: int | None = None
    """If k, move each cheese to a random open cell of the top-right k×k corner first."""
    batch_size: int = 64
    """Envs stepped together inside a shard (does not change the numbers)."""

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
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            raise SweepConfigError(f"checkpoint: expected a string, got {self.checkpoint!r}")
        if self.start_level + self.n_mazes > 2**31 - 1:
            raise SweepConfigError("start_level + n_mazes must stay below 2**31 - 1 (procgen's level seeds)")

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
        return self.level_seeds[shard * self.shard_size : (shard + 1) * self.shard_size]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON / TOML keys)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


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
    if not out or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in out):
        raise SweepConfigError(f"{name}: expected a non-empty list of finite numbers, got {list(out)!r}")
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
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no sweep config file {path}") from None
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
# conditions and their interventions


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
    point or a channel out of range (naming them).
    """
    out = []
    for hook in config.hooks:
        if hook not in shapes:
            raise SweepConfigError(f"hooks: {hook!r} is not a hook point of this model (see `mazeinterp info`)")
        shape = shapes[hook]
        if len(shape) != 3:
            raise SweepConfigError(f"hooks: {hook!r} has shape {shape}; a sweep edits channels of (C, H, W) maps")
        channels = config.channels if config.channels is not None else tuple(range(shape[0]))
        bad = [c for c in channels if c >= shape[0]]
        if bad:
            raise SweepConfigError(f"channels: channel {bad[0]} is out of range for hook point {hook!r}, "
                                   f"which has {shape[0]} channels (0..{shape[0] - 1})")
        out += [Condition(hook, c, kind, coef) for kind in config.kinds for coef in config.coefficients
                for c in channels]
    return out


@dataclass(frozen=True, eq=False, repr=False)
class PartialAblation(Intervention):
    """``act + strength · (ablation.edit(act) − act)`` on the ablation's channels and pixels.

    ``strength = 1`` equals ``ablation`` itself, ``0`` leaves the activation alone.
    """

    ablation: Intervention | None = None
    strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.ablation, Intervention):
            raise TypeError(f"ablation must be an Intervention, got {self.ablation!r}")

    def edit(self, act: Tensor) -> Tensor:
        return act + self.strength * (self.ablation.edit(act) - act)  # type: ignore[union-attr]

    def _params(self) -> list[str]:
        return [f"{self.ablation}", f"strength={self.strength}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        self.ablation._check_shape(shape)  # type: ignore[union-attr]


def _references(model: ImpalaPolicy, config: SweepConfig) -> dict[str, Tensor]:
    """Reference activations needed by the config's kinds: ``"<hook>|mean"`` (C, H, W), ``"<hook>|sources"`` (K, C, H, W)."""
    from mazeinterp.interventions import MeanAblate, ResampleAblate

    refs: dict[str, Tensor] = {}
    for hook in config.hooks:
        if "mean" in config.kinds:
            refs[f"{hook}|mean"] = MeanAblate.from_random_mazes(model, hook, config.reference_mazes,
                                                                seed=config.reference_seed).mean
        if "resample" in config.kinds:
            refs[f"{hook}|sources"] = ResampleAblate.from_random_mazes(model, hook, config.reference_mazes,
                                                                       seed=config.reference_seed).sources
    return refs


def intervention(condition: Condition, references: Mapping[str, Tensor], shape: tuple[int, ...],
                 reference_seed: int = 0) -> Intervention:
    """The intervention of ``condition``; ``references`` from the sweep, ``shape`` the hook's (C, H, W)."""
    import torch

    from mazeinterp.interventions import AddVector, Clamp, MeanAblate, ResampleAblate, Scale, ZeroAblate

    hook, channels, kind, c = condition.hook, (condition.channel,), condition.kind, condition.coefficient
    if kind == "scale":
        return Scale(hook, c, channels=channels)
    if kind == "clamp":
        return Clamp(hook, c, channels=channels)
    if kind == "add":
        return AddVector(hook, torch.ones(shape[0]), c, channels=channels)
    if kind == "zero":
        ablation: Intervention = ZeroAblate(hook, channels=channels)
    elif kind == "mean":
        ablation = MeanAblate(hook, references[f"{hook}|mean"], channels=channels)
    elif kind == "resample":
        ablation = ResampleAblate(hook, references[f"{hook}|sources"], reference_seed, channels=channels)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return ablation if c == 1.0 else PartialAblation(hook, ablation=ablation, strength=c, channels=channels)


# --------------------------------------------------------------------------------------
# one shard (runs in a worker)


@dataclass(frozen=True, eq=False, repr=False)
class EditsByEpisode(Intervention):
    """At one hook point, give each rollout episode the edit of its block: one rollout runs many conditions.

    Episode ``i`` of the rollout (see :func:`mazeinterp.rollout.run_rollouts`, which calls
    :meth:`set_episode_indices` before every forward pass) gets ``edits[i // block]``; ``None``
    leaves its activation alone. Rows without an edit are returned unchanged, bit for bit.
    """

    edits: tuple[Intervention | None, ...] = ()
    block: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block < 1:
            raise ValueError(f"block must be positive, got {self.block}")
        if any(iv is not None and iv.hook != self.hook for iv in self.edits):
            raise ValueError(f"every edit must be at hook point {self.hook!r}")
        object.__setattr__(self, "_groups", None)

    def set_episode_indices(self, indices: Sequence[int] | np.ndarray) -> None:
        """Select the episode of every row of the next forward pass."""
        groups = np.asarray(indices, dtype=np.int64) // self.block
        if len(groups) and int(groups.max()) >= len(self.edits):
            raise IndexError(f"episode index beyond the {len(self.edits)} blocks of {self.block}")
        object.__setattr__(self, "_groups", groups)

    def edit(self, act: Tensor) -> Tensor:
        """``act`` with each row edited by its block's intervention; ``act`` (B, C, H, W) is not modified."""
        import torch

        groups = self._groups  # type: ignore[attr-defined]
        if groups is None or len(groups) != act.shape[0]:
            raise RuntimeError("EditsByEpisode needs set_episode_indices() for this batch before a forward pass")
        out = None
        for k in np.unique(groups).tolist():
            iv = self.edits[k]
            if iv is None:
                continue
            rows = torch.as_tensor(np.flatnonzero(groups == k), device=act.device)
            out = act.clone() if out is None else out
            out[rows] = iv(act[rows])
        return act if out is None else out

    def _params(self) -> list[str]:
        return [f"{sum(iv is not None for iv in self.edits)} edits", f"block={self.block}"]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        for iv in self.edits:
            if iv is not None:
                iv._check_shape(shape)


def run_shard(model: ImpalaPolicy, config: SweepConfig, shard: int, grid: Sequence[Condition],
              references: Mapping[str, Tensor]) -> dict[str, Any]:
    """Run the baseline and every condition on the mazes of ``shard``, for every seed.

    All conditions of a seed run in one :func:`~mazeinterp.rollout.run_rollouts`
    call (full batches; :class:`EditsByEpisode` routes each episode's edit), and
    every copy of a maze draws the random numbers of the maze's position in the
    whole sweep (``streams``), so baseline and edits share them (common random
    numbers) and they do not depend on the shard size.

    Returns plain data: ``shard``, ``level_seeds``, ``baseline`` (seeds × mazes
    outcome codes: 0 cheese, 1 top-right, 2 neither), ``treated`` (conditions ×
    seeds × mazes), ``episodes`` and ``seconds``.
    """
    from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts

    import torch

    started = time.perf_counter()
    levels = config.shard_levels(shard)
    n = len(levels)
    states = load_mazes(levels, batch_size=config.batch_size)
    shapes = model.hook_points()
    blocks: list[Intervention | None] = [None]  # block 0: the baseline
    blocks += [intervention(c, references, shapes[c.hook], config.reference_seed) for c in grid]
    edits = [EditsByEpisode(hook, edits=tuple(iv if iv is not None and iv.hook == hook else None for iv in blocks),
                            block=n) for hook in dict.fromkeys(c.hook for c in grid)]
    first = shard * config.shard_size
    streams = list(range(first, first + n)) * len(blocks)
    baseline: list[list[int]] = []
    treated: list[list[list[int]]] = [[] for _ in grid]
    for seed in config.seeds:
        rollout = RolloutConfig(greedy=config.greedy, max_steps=config.max_steps, batch_size=config.batch_size,
                                seed=seed, cheese_region=config.cheese_region, progress=False,
                                threads=torch.get_num_threads())  # a worker keeps its one thread
        result = run_rollouts(model, states * len(blocks), edits, rollout, streams=streams)
        codes = np.array([_OUTCOME_CODES[ep.outcome] for ep in result.episodes]).reshape(len(blocks), n)
        baseline.append(codes[0].tolist())
        for row, block in zip(treated, codes[1:]):
            row.append(block.tolist())
    return {"format": _SHARD_FORMAT, "shard": shard, "level_seeds": levels, "baseline": baseline,
            "treated": treated, "episodes": n * len(config.seeds) * len(blocks),
            "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------------------
# workers: the model and references travel once, as torch.save bytes


def _pack(model: ImpalaPolicy, references: Mapping[str, Tensor]) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"scale": model.scale, "state": {k: v.cpu() for k, v in model.state_dict().items()},
                "references": dict(references)}, buffer)
    return buffer.getvalue()


_WORKER_CACHE: dict[str, tuple[Any, dict[str, Any]]] = {}


def _unpack(payload: bytes) -> tuple[ImpalaPolicy, dict[str, Tensor]]:
    """Model and references of a payload, built once per process (keyed by the payload's digest)."""
    import torch

    from mazeinterp.model import ImpalaPolicy

    key = hashlib.sha256(payload).hexdigest()
    if key not in _WORKER_CACHE:
        torch.set_num_threads(1)
        data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        model = ImpalaPolicy(scale=data["scale"])
        model.load_state_dict(data["state"])
        _WORKER_CACHE.clear()
        _WORKER_CACHE[key] = (model.eval(), data["references"])
    return _WORKER_CACHE[key]


_PROCESS_PAYLOAD: bytes | None = None


def _init_process(payload: bytes) -> None:
    global _PROCESS_PAYLOAD
    _PROCESS_PAYLOAD = payload
    _unpack(payload)


def _process_task(config: SweepConfig, shard: int, grid: Sequence[Condition]) -> dict[str, Any]:
    assert _PROCESS_PAYLOAD is not None
    model, refs = _unpack(_PROCESS_PAYLOAD)
    return run_shard(model, config, shard, grid, refs)


def _ray_task(payload: bytes, config: SweepConfig, shard: int, grid: Sequence[Condition]) -> dict[str, Any]:
    model, refs = _unpack(payload)
    return run_shard(model, config, shard, grid, refs)


def _run_local(payload: bytes, config: SweepConfig, shards: Sequence[int], grid: Sequence[Condition],
               workers: int) -> Iterable[dict[str, Any]]:
    """Yield shard results as they finish: in this process (``workers=0``) or in spawned processes."""
    if workers == 0:
        model, refs = _unpack(payload)
        for shard in shards:
            yield run_shard(model, config, shard, grid, refs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_process, initargs=(payload,))
    try:
        futures = [pool.submit(_process_task, config, shard, grid) for shard in shards]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(payload: bytes, config: SweepConfig, shards: Sequence[int], grid: Sequence[Condition],
             address: str) -> Iterable[dict[str, Any]]:
    """Yield shard results as Ray tasks finish (connects to ``address`` unless Ray is already initialised)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError('running a sweep on Ray needs the ray package: pip install "mazeinterp[ray]"') from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=1)(_ray_task)
    ref = ray.put(payload)
    pending = [task.remote(ref, config, shard, grid) for shard in shards]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for left in pending:
            ray.cancel(left)


# --------------------------------------------------------------------------------------
# the output folder


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _shard_path(out: Path, shard: int) -> Path:
    return out / "shards" / f"shard-{shard:05d}.json"


def _model_digest(model: ImpalaPolicy) -> str:
    """sha256 of the model's parameters (names, shapes and values), to tell two networks apart."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _manifest(config: SweepConfig, checkpoint: str, model: ImpalaPolicy, grid: Sequence[Condition]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps([asdict(c) for c in grid]).encode()).hexdigest()
    return {"config": config.as_dict(), "checkpoint": checkpoint, "model_sha256": _model_digest(model),
            "conditions": len(grid), "conditions_sha256": digest}


def _claim_folder(out: Path, manifest: Mapping[str, Any]) -> None:
    """Create ``out`` for this sweep, or check that it holds the same sweep (then it is resumed)."""
    path = out / "sweep.json"
    if path.exists():
        try:
            earlier = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise SweepConfigError(f"{path} is not a sweep manifest; choose another output folder") from None
        if earlier != json.loads(json.dumps(manifest)):
            old, new = earlier.get("config", {}), manifest["config"]
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)) or ["the model's weights"]
            raise SweepConfigError(f"{out} holds another sweep (it differs in {', '.join(diff)}); "
                                   "choose another output folder")
    elif out.exists() and any(out.iterdir()):
        raise SweepConfigError(f"{out} exists and holds no sweep; choose another output folder")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _write_atomic(path, json.dumps(manifest, indent=2) + "\n")


def _finished(out: Path, config: SweepConfig, n_conditions: int) -> dict[int, dict[str, Any]]:
    """Shard results already in ``out`` (complete files of this sweep only)."""
    done = {}
    for shard in range(config.n_shards):
        path = _shard_path(out, shard)
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if data.get("level_seeds") == config.shard_levels(shard) and len(data.get("treated", ())) == n_conditions:
            done[shard] = data
    return done


# --------------------------------------------------------------------------------------
# merged result


@dataclass(frozen=True)
class SweepResult:
    """The merged sweep: one row per condition (see :meth:`rows`), plus how it ran."""

    config: SweepConfig
    """The sweep."""
    rows: tuple[dict[str, Any], ...]
    """Per condition, in grid order: hook, channel, kind, coefficient, n, P(cheese) baseline and edited, the
    paired difference (``effect``, ``effect_low``, ``effect_high``), the same for P(top-right)."""
    paths: dict[str, Path] = field(default_factory=dict)
    """Written files: ``csv``, ``parquet``, ``heatmap``, ``summary``."""
    ran: tuple[int, ...] = ()
    """Shards run by this call (the others were found finished in the output folder)."""
    seconds: float = 0.0
    """Wall time of this call."""
    episodes: int = 0
    """Episodes run by this call."""

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` rows with the largest |effect| on P(cheese) (ties: grid order)."""
        return sorted(self.rows, key=lambda r: -abs(r["effect"]))[:k]


def merge(config: SweepConfig, grid: Sequence[Condition], shards: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per condition from every shard's outcome codes (pooled over mazes and seeds)."""
    from mazeinterp.stats import paired_difference

    order = [shards[k] for k in range(config.n_shards)]
    base = np.concatenate([np.asarray(s["baseline"], dtype=np.int8).ravel() for s in order])
    rows = []
    for i, cond in enumerate(grid):
        treated = np.concatenate([np.asarray(s["treated"][i], dtype=np.int8).ravel() for s in order])
        row: dict[str, Any] = {**asdict(cond), "n": int(len(base))}
        for name, code in (("cheese", 0), ("top_right", 1)):
            b, t = base == code, treated == code
            d = paired_difference(b, t)
            prefix = "" if name == "cheese" else "top_right_"
            row[f"p_{name}_baseline"] = float(b.mean())
            row[f"p_{name}"] = float(t.mean())
            row[f"{prefix}effect"] = d.estimate
            row[f"{prefix}effect_low"] = d.low
            row[f"{prefix}effect_high"] = d.high
        rows.append(row)
    return rows


def _write_table(out: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    import csv

    paths = {"csv": out / "results.csv", "parquet": out / "results.parquet"}
    tmp = out / ".results.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, paths["csv"])
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        paths.pop("parquet")  # CSV only; the parquet table needs the [ray] extra's pyarrow
    else:
        table = pa.Table.from_pylist([dict(r) for r in rows])
        pq.write_table(table, out / ".results.parquet.tmp")
        os.replace(out / ".results.parquet.tmp", paths["parquet"])
    return paths


def plot_heatmap(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Heatmap of the effect on P(cheese) by channel (x) and coefficient (y), one panel per hook and kind."""
    from mazeinterp.plots import new_figure, save_figure

    panels = list(dict.fromkeys((r["hook"], r["kind"]) for r in rows))
    channels = sorted({r["channel"] for r in rows})
    coefs = sorted({r["coefficient"] for r in rows})
    limit = max(0.05, max(abs(r["effect"]) for r in rows))  # a sweep of null effects stays pale
    width = min(24.0, max(6.0, 0.18 * len(channels)))
    fig, axes = new_figure(nrows=len(panels), size=1.0)
    fig.set_size_inches(width, (1.6 + 0.35 * len(coefs)) * len(panels) + 0.4)
    fig.set_layout_engine("constrained")
    for ax, (hook, kind) in zip(axes[:, 0], panels):
        grid = np.full((len(coefs), len(channels)), np.nan)
        for r in rows:
            if (r["hook"], r["kind"]) == (hook, kind):
                grid[coefs.index(r["coefficient"]), channels.index(r["channel"])] = r["effect"]
        image = ax.imshow(grid, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_yticks(range(len(coefs)), [f"{c:g}" for c in coefs])
        step = max(1, len(channels) // 32)
        ax.set_xticks(range(0, len(channels), step), [str(c) for c in channels[::step]], fontsize=7)
        ax.set_xlabel("channel")
        ax.set_ylabel("coefficient")
        ax.set_title(f"{kind} at {hook}: change in P(cheese)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="effect")
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------
# the driver


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, workers: int | None = None,
              ray_address: str | None = None, model: ImpalaPolicy | None = None, progress: bool = True,
              on_shard: Callable[[int], None] | None = None) -> SweepResult:
    """Run (or resume) the sweep ``config`` into the folder ``out`` and merge it.

    Args:
        config: the sweep.
        out: output folder: ``sweep.json`` (the manifest), ``shards/``, ``results.csv``,
            ``results.parquet`` (with pyarrow), ``heatmap.png``, ``summary.json``. A folder holding
            the same sweep is resumed (finished shards are skipped); one holding anything else is refused.
        workers: local worker processes (default: the CPU count; 0 = this process).
            Ignored with ``ray_address``.
        ray_address: run the shards as Ray tasks on this cluster (``"auto"``, ``"ray://host:10001"``,
            ``"local"`` for a new local one); an already initialised Ray is used as it is.
        model: the policy, if already loaded (else ``config.checkpoint`` is loaded).
        progress: show a tqdm bar counting shards (on a terminal).
        on_shard: called with each shard's index after its file is written.

    Returns:
        :class:`SweepResult`. The numbers depend only on ``config``: not on ``workers``,
        the backend, or interruptions.

    Raises:
        SweepConfigError: a bad grid (unknown hook point, channel out of range), or an output
        folder that holds something else.
    """
    from tqdm.auto import tqdm

    from mazeinterp.checkpoint import DEFAULT_AGENT, load_policy

    started = time.perf_counter()
    checkpoint = config.checkpoint or DEFAULT_AGENT
    if model is None:
        if checkpoint is None:
            raise SweepConfigError("checkpoint: none given and no default agent is registered")
        model = load_policy(checkpoint)
    grid = conditions(config, model.hook_points())
    out = Path(out)
    _claim_folder(out, _manifest(config, str(checkpoint), model, grid))
    done = _finished(out, config, len(grid))
    todo = [k for k in range(config.n_shards) if k not in done]
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    ran, episodes = [], 0
    if todo:
        payload = _pack(model, _references(model, config))
        results = (_run_ray(payload, config, todo, grid, ray_address) if ray_address
                   else _run_local(payload, config, todo, grid, min(workers, len(todo))))
        bar = tqdm(total=config.n_shards, initial=len(done), desc="sweep shards", unit="shard",
                   disable=None if progress else True)
        with bar:
            for result in results:
                shard = result["shard"]
                _write_atomic(_shard_path(out, shard), json.dumps(result) + "\n")
                done[shard] = result
                ran.append(shard)
                episodes += result["episodes"]
                bar.update(1)
                if on_shard is not None:
                    on_shard(shard)
    rows = merge(config, grid, done)
    paths = _write_table(out, rows)
    paths["heatmap"] = plot_heatmap(rows, out / "heatmap.png")
    seconds = time.perf_counter() - started
    backend = f"ray ({ray_address})" if ray_address else f"{workers} local process(es)" if workers else "in process"
    summary = {"config": config.as_dict(), "checkpoint": str(checkpoint), "conditions": len(grid),
               "shards": config.n_shards, "shards_run": sorted(ran), "backend": backend,
               "episodes_run": episodes, "seconds": seconds,
               "episodes_per_second": episodes / seconds if episodes else None,
               "top": sorted(rows, key=lambda r: -abs(r["effect"]))[:10]}
    paths["summary"] = out / "summary.json"
    _write_atomic(paths["summary"], json.dumps(summary, indent=2) + "\n")
    return SweepResult(config=config, rows=tuple(rows), paths=paths, ran=tuple(sorted(ran)), seconds=seconds,
                       episodes=episodes)
