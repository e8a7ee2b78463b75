"""Sweeps: a grid of interventions × mazes × seeds, sharded by mazes, run in processes or on Ray.

A sweep measures, for every *condition* -- one hook point, one channel, one
kind of edit, one coefficient -- how the edit changes P(cheese) (and
P(top-right)) against the unedited policy on the same mazes with the same
random numbers. It is written once, as a :class:`SweepConfig` (in Python or a
TOML file for ``mazeinterp sweep CONFIG``), and run by :func:`run_sweep`::

    from mazeinterp.sweep.runner import SweepConfig, run_sweep
    config = SweepConfig(hooks=("embedder.block2.res1.resadd_out",), kinds=("mean",), n_mazes=200)
    result = run_sweep(config, "runs/sweep", workers=2)     # or ray_address="auto"
    print(result.top(10))

Kinds of edit and what the coefficient ``c`` means (each edits one channel
everywhere in its map):

* ``"zero"``, ``"mean"``, ``"resample"`` -- ablation of strength ``c``:
  ``act + c · (ablated − act)`` (``c = 1`` is the plain
  :class:`~mazeinterp.core.interventions.ZeroAblate` / ``MeanAblate`` /
  ``ResampleAblate``; the mean and the resampling sources come from
  ``reference_mazes`` random mazes drawn from ``reference_seed``);
* ``"scale"`` -- multiply the channel by ``c`` (:class:`~mazeinterp.core.interventions.Scale`);
* ``"clamp"`` -- set the channel to ``c`` (:class:`~mazeinterp.core.interventions.Clamp`);
* ``"add"`` -- add ``c`` to the channel (:class:`~mazeinterp.core.interventions.AddVector`).

How it runs
-----------
The mazes (level seeds ``start_level …``) are cut into shards of
``shard_size``. A shard runs every condition and the baseline on its mazes, for
every seed, with :func:`mazeinterp.rollout.run_rollouts`. Under sweep seed
``s``, the maze at position ``j`` of the sweep (level seed ``start_level + j``)
draws its action-sampling uniforms from ``numpy.random.default_rng([s, j])``
and, with ``cheese_region``, its cheese cell from ``default_rng([s, j, 1])``:
the random streams of one :func:`~mazeinterp.rollout.run_rollouts` call over
all the mazes with ``RolloutConfig(seed=s)``. The baseline and every condition
use the same ones (common random numbers), and every number depends only on
the config, never on the shard size, on how many workers ran it or in which order. Each finished
shard is written atomically to ``OUT/shards/``, sealed with the sweep's hash,
its maze range and a checksum; a sweep started again on the same folder skips
the shards already there (a killed sweep resumes) once each has passed its
checks, and stops with a one-line :class:`SweepFileError` at one that has not. When all
shards are in, they are merged into one table, one row per condition, with
the paired difference in P(cheese) (:func:`mazeinterp.analysis.stats.paired_difference`,
pooled over mazes and seeds) as the effect size, written as ``results.csv``
and ``results.parquet``, with a heatmap of effect by channel and coefficient.

With ``estimator="exact"`` a shard computes each maze's exact outcome
probabilities under the baseline and every condition instead of sampling
(:mod:`mazeinterp.sweep.exact`); the effect of a condition is then the mean
over mazes of the paired per-maze difference, with a 95% bootstrap interval
over mazes, for P(cheese), P(top-right), P(neither) and P(region first).

Workers are local processes by default (``concurrent.futures`` with a spawn
context, one torch thread each), this process with ``workers=0``, or the tasks
of a Ray cluster with ``ray_address`` (``pip install "mazeinterp[ray]"``; the
nodes need mazeinterp installed). The model and the reference activations are
sent to each worker once.

The pieces: :mod:`mazeinterp.sweep.config` (the config and its grid),
:mod:`mazeinterp.sweep.shard` (the interventions and one shard's rollouts),
:mod:`mazeinterp.sweep.files` (``sweep.json`` and the shard files: sealed,
found and checked before merging), :mod:`mazeinterp.sweep.output` (merged
table and heatmap); this module runs the shards on workers. Their public names are
importable from here.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mazeinterp.runtime.digests import data_sha256, model_sha256
from mazeinterp.core.numerics import ENV_VAR, is_reference, numerics_mode
from mazeinterp.sweep.config import (
    ESTIMATORS,
    KINDS,
    Condition,
    SweepConfig,
    SweepConfigError,
    conditions,
    load_sweep_config,
)
from mazeinterp.maze.outcomes import OUTCOME_CODES
from mazeinterp.sweep.exact import exact_outcomes, merge_exact, run_exact_shard
from mazeinterp.sweep.files import (
    SweepFileError,
    claim_folder,
    finished_shards,
    seal_shard,
    shard_path,
    write_atomic,
)
from mazeinterp.sweep.output import SweepResult, merge, plot_heatmap, write_table
from mazeinterp.sweep.ray_backend import connect_ray
from mazeinterp.sweep.shard import (
    EditsByEpisode,
    PartialAblation,
    intervention,
    reference_activations,
    run_shard,
)

if TYPE_CHECKING:
    from torch import Tensor

    from mazeinterp.core.model import ImpalaPolicy

__all__ = ["ESTIMATORS", "KINDS", "OUTCOME_CODES", "Condition", "EditsByEpisode", "PartialAblation", "SweepConfig",
           "SweepConfigError", "SweepFileError", "SweepResult", "conditions", "exact_outcomes", "intervention",
           "load_sweep_config", "merge", "merge_exact", "plot_heatmap", "reference_activations", "run_exact_shard",
           "run_shard", "run_sweep"]


def _shard_runner(config: SweepConfig) -> Callable[..., dict[str, Any]]:
    """The function that runs one shard of ``config``: :func:`run_shard` or :func:`run_exact_shard`."""
    return run_exact_shard if config.estimator == "exact" else run_shard


# --------------------------------------------------------------------------------------
# workers: the model and references travel as torch.save bytes, built once per worker process


def _pack(model: ImpalaPolicy, references: Mapping[str, Tensor]) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"scale": model.scale, "state": {k: v.cpu() for k, v in model.state_dict().items()},
                "references": dict(references), "source": str(model.source) if model.source else None}, buffer)
    return buffer.getvalue()


def _build(payload: bytes) -> tuple[ImpalaPolicy, dict[str, Tensor]]:
    """Model (eval mode) and references of a payload; torch set to one thread (a shard runs in one)."""
    import torch

    from mazeinterp.core.model import ImpalaPolicy

    torch.set_num_threads(1)
    data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    model = ImpalaPolicy(scale=data["scale"])
    model.load_state_dict(data["state"])
    model.source = Path(data["source"]) if data.get("source") else None  # errors name the checkpoint
    return model.eval(), data["references"]


@functools.lru_cache(maxsize=1)
def _unpack(payload: bytes) -> tuple[ImpalaPolicy, dict[str, Tensor]]:
    """:func:`_build`, once per worker process and payload: each task carries the payload, the same one
    (equal bytes) finds the model already built; a new sweep's payload replaces it."""
    return _build(payload)


def _worker_task(payload: bytes, config: SweepConfig, shard: int, grid: Sequence[Condition]) -> dict[str, Any]:
    """One shard in a worker (a spawned process or a Ray task)."""
    model, refs = _unpack(payload)
    return _shard_runner(config)(model, config, shard, grid, refs)


def _run_local(payload: bytes, config: SweepConfig, shards: Sequence[int], grid: Sequence[Condition],
               workers: int) -> Iterable[dict[str, Any]]:
    """Yield shard results as they finish: in this process (``workers=0``) or in spawned processes."""
    if workers == 0:
        model, refs = _build(payload)
        for shard in shards:
            yield _shard_runner(config)(model, config, shard, grid, refs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_unpack, initargs=(payload,))  # each worker builds the model at once
    try:
        futures = [pool.submit(_worker_task, payload, config, shard, grid) for shard in shards]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(payload: bytes, config: SweepConfig, shards: Sequence[int], grid: Sequence[Condition],
             address: str) -> Iterable[dict[str, Any]]:
    """Yield shard results as Ray tasks finish (connects to ``address`` unless Ray is already initialised)."""
    ray = connect_ray(address)
    # Ray workers do not inherit this process's environment: hand them the numerics switch
    task = ray.remote(num_cpus=1, runtime_env={"env_vars": {ENV_VAR: "1" if is_reference() else "0"}})(_worker_task)
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
# the output folder (its files: mazeinterp.sweep.files)


def _manifest(config: SweepConfig, checkpoint: str, model: ImpalaPolicy, grid: Sequence[Condition]) -> dict[str, Any]:
    """``sweep.json``'s content; its sha256 (:func:`~mazeinterp.runtime.digests.data_sha256`) is the sweep's hash."""
    grid_sha256 = hashlib.sha256(json.dumps([asdict(c) for c in grid]).encode()).hexdigest()  # as earlier versions
    return {"config": config.as_dict(), "checkpoint": checkpoint, "model_sha256": model_sha256(model),
            "conditions": len(grid), "conditions_sha256": grid_sha256, "numerics": numerics_mode()}


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
        folder that holds something else; :class:`SweepFileError` (a subclass) for a
        ``sweep.json`` or shard file that fails its checks (:mod:`mazeinterp.sweep.files`).
        RayUnavailableError: ``ray_address`` given, and Ray is not installed or nothing answers there.
    """
    from tqdm.auto import tqdm

    from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy

    started = time.perf_counter()
    if ray_address:
        connect_ray(ray_address)  # a missing cluster is found before any work
    checkpoint = config.checkpoint or DEFAULT_AGENT
    if model is None:
        if checkpoint is None:
            raise SweepConfigError("checkpoint: none given and no default agent is registered")
        model = load_policy(checkpoint)
    grid = conditions(config, model.hook_points())
    out = Path(out)
    manifest = _manifest(config, str(checkpoint), model, grid)
    claim_folder(out, manifest)
    sweep_sha256 = data_sha256(manifest)
    done = finished_shards(out, config, sweep_sha256, len(grid))
    todo = [k for k in range(config.n_shards) if k not in done]
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    ran, episodes = [], 0
    if todo:
        payload = _pack(model, reference_activations(model, config))
        results = (_run_ray(payload, config, todo, grid, ray_address) if ray_address
                   else _run_local(payload, config, todo, grid, min(workers, len(todo))))
        bar = tqdm(total=config.n_shards, initial=len(done), desc="sweep shards", unit="shard",
                   disable=None if progress else True)
        with bar:
            for result in results:
                shard = result["shard"]
                sealed = seal_shard(result, config, sweep_sha256)
                write_atomic(shard_path(out, shard), json.dumps(sealed) + "\n")
                done[shard] = sealed
                ran.append(shard)
                episodes += result["episodes"]
                bar.update(1)
                if on_shard is not None:
                    on_shard(shard)
    rows = (merge_exact if config.estimator == "exact" else merge)(config, grid, done)
    paths = write_table(out, rows)
    paths["heatmap"] = plot_heatmap(rows, out / "heatmap.png")
    seconds = time.perf_counter() - started
    backend = f"ray ({ray_address})" if ray_address else f"{workers} local process(es)" if workers else "in process"
    summary = {"config": config.as_dict(), "estimator": config.estimator, "checkpoint": str(checkpoint),
               "conditions": len(grid), "shards": config.n_shards, "shards_run": sorted(ran), "backend": backend,
               "episodes_run": episodes, "seconds": seconds, "numerics": numerics_mode(),
               "episodes_per_second": episodes / seconds if episodes else None,
               "top": sorted(rows, key=lambda r: -abs(r["effect"]))[:10]}
    paths["summary"] = out / "summary.json"
    write_atomic(paths["summary"], json.dumps(summary, indent=2) + "\n")
    return SweepResult(config=config, rows=tuple(rows), paths=paths, ran=tuple(sorted(ran)), seconds=seconds,
                       episodes=episodes)
