"""Behaviour cloning (with an optional DAgger phase) from the BFS oracle that walks to the cheese.

Mazes are drawn from the training distribution (procgen hard mazes with the
cheese moved into the top-right ``cheese_region × cheese_region`` corner); the
mouse is placed on every open cell of each maze by state edits and the network
is trained to put its probability on the oracle's move (the 15 actions are
summed into the 5 moves, so the loss is the negative log-probability of the
right *move*). In the DAgger phase part of every chunk instead comes from the
cells the current policy visits when it plays the mazes, labelled by the same
oracle. Far cheaper per unit of skill than PPO: a warm start for PPO and the
CPU path to a working agent. The frames come from
:mod:`mazeinterp.train.imitation_data`, the settings from
:mod:`mazeinterp.train.imitation_config`; this module holds the loss, the
training loop, its checkpoints and its command line.

With ``field_loss_weight > 0`` a training-only head
(:mod:`mazeinterp.train.field_head`) also learns the oracle's move at every cell
of each frame's maze from the conv activations, so every frame teaches the
trunk the whole vector field; the saved network keeps its architecture.

Run ``python -m mazeinterp.train.imitate --help`` or ``mazeinterp train imitate``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mazeinterp.checkpoints.registry import load_policy, save_policy
from mazeinterp.maze.env import MazeEnv
from mazeinterp.core.model import ACTION_TO_MOVE, ImpalaPolicy, obs_to_tensor
from mazeinterp.core.numerics import numerics_mode, reference_unless
from mazeinterp.runtime.defaults import MAX_STEPS
from mazeinterp.train.common import (
    CsvLog,
    RunSetupError,
    add_config_arguments,
    choose_device,
    config_from_namespace,
    module_main,
    seed_everything,
)
from mazeinterp.train.field_head import FieldHead, captured_blocks, field_loss
from mazeinterp.train.imitation_config import ImitationConfig
from mazeinterp.train.imitation_data import ChunkPrefetcher, ChunkSource, chunk_seeds, play_first_episodes
from mazeinterp.train.widen import widen_policy

LATEST = "checkpoint_latest.pt"
FIELD_HEAD_KEY = "field_head_state_dict"
FINAL = "checkpoint_final.pt"


def move_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``(B, 5)`` of the five moves from action logits ``(B, 15)``."""
    mask = torch.tensor(ACTION_TO_MOVE, device=logits.device)[None, :] == torch.arange(5, device=logits.device)[:, None]
    grouped = logits.float()[:, None, :].masked_fill(~mask[None], float("-inf"))
    return torch.logsumexp(grouped, dim=-1) - torch.logsumexp(logits.float(), dim=-1, keepdim=True)


def imitation_loss(policy: ImpalaPolicy, obs: torch.Tensor, moves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean negative log-probability of the oracle moves and the accuracy of the most probable move.

    Args:
        obs: float ``(B, 3, 64, 64)`` network input; moves: int64 ``(B,)`` move indices.
    """
    logp = move_log_probs(policy(obs)[0])
    loss = F.nll_loss(logp, moves)
    accuracy = (logp.argmax(-1) == moves).float().mean()
    return loss, accuracy


def solve_rate(policy: ImpalaPolicy, n_mazes: int, cheese_region: int | None, seed: int,
               device: torch.device, max_steps: int = MAX_STEPS) -> float:
    """Fraction of ``n_mazes`` training-distribution mazes whose first episode ends on the cheese.

    Actions are sampled from the policy; an episode ends on the cheese or at
    procgen's 500-step timeout.
    """
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    solved = np.zeros(n_mazes, dtype=bool)
    with MazeEnv.from_seeds(chunk_seeds(rng, n_mazes), cheese_region=cheese_region, seed=seed) as env:
        for _, reward, ended in play_first_episodes(policy, env, max_steps, device, generator):
            solved |= ended & (reward > 0)
    return float(solved.mean())


def learning_rate_at(config: ImitationConfig, samples: int) -> float:
    """The learning rate after ``samples`` frames: linear warm-up, constant, then linear decay to zero."""
    rate = config.learning_rate * min(1.0, (samples + 1) / max(1, config.warmup_samples))
    if config.decay_start_samples is not None and samples > config.decay_start_samples:
        left = (config.total_samples - samples) / (config.total_samples - config.decay_start_samples)
        rate *= max(0.0, left)
    return rate


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices of consecutive batches of at most ``batch_size`` of ``n`` frames (the last may be smaller)."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _save(policy: ImpalaPolicy, optimizer: torch.optim.Optimizer, path: Path, config: ImitationConfig,
          samples: int, streams: dict[str, Any], wall_s: float, head: FieldHead | None) -> None:
    metadata = {
        "trainer": "imitate",
        "config": dataclasses.asdict(config),
        "samples": samples,
        "wall_time_s": round(wall_s, 1),
        "streams": streams,
        "numerics": numerics_mode(),
    }
    # the training-only field head travels with the optimizer state: the policy file keeps its architecture
    optimizer_state = optimizer.state_dict()
    if head is not None:
        optimizer_state = {**optimizer_state, FIELD_HEAD_KEY: head.state_dict()}
    save_policy(policy, path, metadata=metadata, optimizer_state=optimizer_state, overwrite=True)


def _held_out(config: ImitationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Labelled frames of every cell (once) of fixed mazes that training never draws (a separate seed stream)."""
    rng = np.random.default_rng(config.seed + 10_000)
    plain = dataclasses.replace(config, mazes_per_chunk=config.held_out_mazes, path_copies=0, mirror_fraction=0.0)
    source = ChunkSource(plain, rng)
    try:
        chunk = source.bc_chunk()
    finally:
        source.close()
    return chunk.obs, chunk.moves


def _build_policy(config: ImitationConfig, device: torch.device, latest: Path,
                  resume: bool) -> tuple[ImpalaPolicy, dict[str, Any] | None, dict[str, Any]]:
    """The network to train, the optimizer state to restore and the metadata of a resumed run."""
    if resume and latest.exists():
        policy = load_policy(latest, device=device)
        if policy.metadata.get("trainer") != "imitate":
            raise RunSetupError(f"{latest} was not written by the imitation trainer")
        optimizer_state = torch.load(latest, map_location=device, weights_only=True)["optimizer_state_dict"]
        return policy, optimizer_state, policy.metadata
    if config.init_checkpoint:
        policy = load_policy(config.init_checkpoint, device=device)
        if policy.scale != config.scale:
            try:
                policy = widen_policy(policy, config.scale, seed=config.seed)
            except ValueError as exc:
                raise RunSetupError(f"init checkpoint {config.init_checkpoint}: {exc}") from exc
        return policy, None, {}
    return ImpalaPolicy(scale=config.scale).to(device), None, {}


def train_imitation(config: ImitationConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train by behaviour cloning (and DAgger, if configured); returns the final checkpoint's path.

    Writes ``log.csv``, ``checkpoint_latest.pt`` (every ``checkpoint_every_samples``)
    and ``checkpoint_final.pt`` into ``config.out_dir``. With ``resume=True`` the
    run continues from ``checkpoint_latest.pt`` there: weights, optimizer, frame
    count and random streams (the data chunk in use when it was saved is rebuilt
    and seen again from its start).

    Raises:
        FileExistsError: a fresh run would overwrite a run already in ``out_dir``.
        FileNotFoundError: ``resume=True`` but there is no ``checkpoint_latest.pt`` to resume.
    """
    with reference_unless(config.channels_last):
        return _train(config, resume=resume, progress=progress)


def _train(config: ImitationConfig, *, resume: bool, progress: bool) -> Path:
    out = Path(config.out_dir)
    if resume and not (out / LATEST).is_file():
        raise FileNotFoundError(f"cannot resume: {out / LATEST} does not exist (start without --resume)")
    if not resume and any((out / name).exists() for name in (LATEST, FINAL, "log.csv")):
        raise FileExistsError(f"{out} already holds a run ({LATEST}, {FINAL} or log.csv); continue it with "
                              "--resume (resume=True) or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = choose_device(config.device)
    seed_everything(config.seed)
    latest = out / LATEST
    policy, optimizer_state, resumed = _build_policy(config, device, latest, resume)
    bc_rng = np.random.default_rng(config.seed)
    dagger_rng = np.random.default_rng(config.seed + 1)
    generator = torch.Generator().manual_seed(config.seed)
    samples = int(resumed.get("samples", 0))
    wall_before = float(resumed.get("wall_time_s", 0.0))
    head = FieldHead(policy.scale).to(device) if config.field_loss_weight > 0 else None
    parameters = list(policy.parameters()) + (list(head.parameters()) if head is not None else [])
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, eps=1e-5, weight_decay=config.weight_decay)
    if optimizer_state is not None:
        head_state = optimizer_state.pop(FIELD_HEAD_KEY, None)
        if (head_state is None) != (head is None):
            raise RunSetupError(f"{latest} was saved with the field loss {'off' if head_state is None else 'on'}; "
                                "resume with the same --field-loss-weight setting (zero or not)")
        if head is not None:
            head.load_state_dict(head_state)
        optimizer.load_state_dict(optimizer_state)
    log = CsvLog(out / "log.csv")
    if resumed:  # rows logged after the checkpoint was written are redone: never log them twice
        log.keep_rows(lambda row: int(row["samples"]) <= samples)
    held_obs, held_moves = _held_out(config)
    bc_source = ChunkSource(config, bc_rng)
    dagger_source = ChunkSource(config, dagger_rng) if config.dagger_after_samples is not None else None
    if resumed:  # after building the sources, whose envs draw their first cheeses at construction
        bc_rng.bit_generator.state = resumed["streams"]["bc"]
        dagger_rng.bit_generator.state = resumed["streams"]["dagger"]
        generator.set_state(torch.tensor(resumed["streams"]["torch"], dtype=torch.uint8))
    chunk_rng_state = bc_rng.bit_generator.state
    prefetch = ChunkPrefetcher(bc_source)
    start_time = time.time()

    def elapsed() -> float:
        return wall_before + time.time() - start_time

    def streams() -> dict[str, Any]:
        return {"bc": chunk_rng_state, "dagger": dagger_rng.bit_generator.state,
                "torch": generator.get_state().tolist()}

    next_eval = (samples // config.eval_every_samples + 1) * config.eval_every_samples
    next_ckpt = (samples // config.checkpoint_every_samples + 1) * config.checkpoint_every_samples
    bar = tqdm(total=config.total_samples, initial=samples, unit="frame", disable=not progress, desc="imitate")
    running = np.zeros(5)  # loss·n, accuracy·n, n, field loss·n, field accuracy·n
    hooks = contextlib.ExitStack()
    try:
        blocks = hooks.enter_context(captured_blocks(policy)) if head is not None else {}
        while samples < config.total_samples:
            in_dagger = dagger_source is not None and samples >= (config.dagger_after_samples or 0)
            if in_dagger and dagger_rng.random() < config.dagger_fraction:
                assert dagger_source is not None  # in_dagger says so
                chunk = dagger_source.dagger_chunk(policy, device, generator)
            else:
                chunk = prefetch.get()
                chunk_rng_state = chunk.rng_state
            policy.train()
            for batch in _batches(len(chunk.moves), config.batch_size):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(config, samples)
                x = obs_to_tensor(chunk.obs[batch], device=device)
                loss, acc = imitation_loss(policy, x, torch.as_tensor(chunk.moves[batch], device=device))
                n = len(chunk.moves[batch])
                total = loss
                if head is not None and chunk.fields is not None:
                    f_loss, f_acc = field_loss(head, blocks["block2"], blocks["block3"],
                                               torch.as_tensor(chunk.fields[batch], device=device))
                    total = loss + config.field_loss_weight * f_loss
                    running[3:] += (f_loss.item() * n, f_acc.item() * n)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                samples += n
                running[:3] += (loss.item() * n, acc.item() * n, n)
                bar.update(n)
                if samples >= next_eval or samples >= config.total_samples:
                    next_eval += config.eval_every_samples
                    field_columns = {} if head is None else {
                        "train_field_loss": running[3] / max(running[2], 1),
                        "train_field_accuracy": running[4] / max(running[2], 1)}
                    row = {"samples": samples, "train_loss": running[0] / max(running[2], 1),
                           "train_accuracy": running[1] / max(running[2], 1), **field_columns,
                           **_evaluate(policy, config, held_obs, held_moves, device),
                           "lr": learning_rate_at(config, samples), "dagger": in_dagger,
                           "elapsed_s": round(elapsed(), 1),
                           "samples_per_s": round(samples / max(elapsed(), 1e-9), 1)}
                    log.append(row)
                    bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['held_out_accuracy']:.3f}",
                                    solve=f"{row['solve_rate']:.2f}")
                    running[:] = 0
                    policy.train()
                if samples >= next_ckpt:
                    next_ckpt += config.checkpoint_every_samples
                    _save(policy, optimizer, latest, config, samples, streams(), elapsed(), head)
                if samples >= config.total_samples:
                    break
    finally:
        hooks.close()
        bar.close()
        prefetch.stop()
        bc_source.close()
        if dagger_source is not None:
            dagger_source.close()
    _save(policy, optimizer, latest, config, samples, streams(), elapsed(), head)
    final = out / FINAL
    _save(policy, optimizer, final, config, samples, streams(), elapsed(), head)
    return final


def _evaluate(policy: ImpalaPolicy, config: ImitationConfig, held_obs: np.ndarray, held_moves: np.ndarray,
              device: torch.device) -> dict[str, float]:
    policy.eval()
    losses, accs, sizes = [], [], []
    with torch.inference_mode():
        for batch in _batches(len(held_moves), 512):
            loss, acc = imitation_loss(policy, obs_to_tensor(held_obs[batch], device=device),
                                       torch.as_tensor(held_moves[batch], device=device))
            losses.append(float(loss))
            accs.append(float(acc))
            sizes.append(len(held_moves[batch]))
    rate = solve_rate(policy, config.eval_mazes, config.cheese_region, config.seed + 20_000, device,
                      max_steps=config.eval_max_steps) if config.eval_mazes else math.nan
    return {"held_out_loss": float(np.average(losses, weights=sizes)),
            "held_out_accuracy": float(np.average(accs, weights=sizes)), "solve_rate": rate}


def add_imitation_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one ``--flag`` per :class:`ImitationConfig` field (help = its docstring), plus ``--resume`` and ``--no-progress``."""
    add_config_arguments(parser, ImitationConfig, "imitation hyperparameters")
    parser.add_argument("--resume", action="store_true", help=f"continue the run in --out from its {LATEST}")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> ImitationConfig:
    """The :class:`ImitationConfig` described by parsed arguments."""
    return config_from_namespace(ImitationConfig, args)


def run_from_args(args: argparse.Namespace) -> Path:
    """Train with the parsed arguments of :func:`add_imitation_arguments`; returns the final checkpoint's path."""
    return train_imitation(config_from_args(args), resume=args.resume, progress=args.progress)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m mazeinterp.train.imitate --total-samples 100000 ...``."""
    return module_main("python -m mazeinterp.train.imitate", __doc__.splitlines()[0], add_imitation_arguments,
                       run_from_args, argv)


if __name__ == "__main__":
    raise SystemExit(main())
