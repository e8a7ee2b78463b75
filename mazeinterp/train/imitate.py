"""Behaviour cloning (with an optional DAgger phase) from the BFS oracle that walks to the cheese.

Mazes are drawn from the training distribution (procgen hard mazes with the
cheese moved into the top-right ``cheese_region × cheese_region`` corner); the
mouse is placed on every open cell of each maze by state edits and the network
is trained to put its probability on the oracle's move (the 15 actions are
summed into the 5 moves, so the loss is the negative log-probability of the
right *move*). In the DAgger phase part of every chunk instead comes from the
cells the current policy visits when it plays the mazes, labelled by the same
oracle. Far cheaper per unit of skill than PPO: a warm start for PPO and the
CPU path to a working agent.

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
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mazeinterp.checkpoint import load_policy, save_policy
from mazeinterp.maze.env import MazeEnv, StateRenderer
from mazeinterp.maze.grid import TOP_RIGHT_REGION_SIZE
from mazeinterp.maze.state import MazeState
from mazeinterp.model import ACTION_TO_MOVE, MOVE_TO_ACTION, ImpalaPolicy, Move, obs_to_tensor
from mazeinterp.train.common import (
    CsvLog,
    RunSetupError,
    add_config_arguments,
    choose_device,
    config_from_namespace,
    module_main,
    seed_everything,
)
from mazeinterp.train.field_head import FieldHead, captured_blocks, field_loss, field_targets
from mazeinterp.train.oracle import cells_with_path_copies, labelled_frames_by_maze
from mazeinterp.train.widen import widen_policy

LATEST = "checkpoint_latest.pt"
FIELD_HEAD_KEY = "field_head_state_dict"
FINAL = "checkpoint_final.pt"


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
    eval_max_steps: int = 500
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
    """Use the channels-last memory format (about 2× faster on CPU)."""
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
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ImitationConfig.{name} must be a positive int, got {value!r}")
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


def _chunk_seeds(rng: np.random.Generator, n: int) -> list[int]:
    return [int(s) for s in rng.integers(0, 2**31 - 2, size=n)]


def _play_first_episodes(policy: ImpalaPolicy, env: MazeEnv, max_steps: int, device: torch.device,
                         generator: torch.Generator) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Play every env's current episode with actions sampled from the policy, for up to ``max_steps`` steps.

    Only envs whose first episode is still running are shown to the policy; the others
    take the no-op action, since what follows their first episode is never used. After
    each step yields ``(playing, reward, ended)``, each of shape (num,): which envs were
    playing their first episode before the step, the step's rewards, and which of those
    envs ended it on this step. Stops once every first episode has ended.
    """
    playing = np.ones(env.num, dtype=bool)
    for _ in range(max_steps):
        with torch.inference_mode():
            logits, _ = policy(obs_to_tensor(env.observe()[1][playing], device=device))
            sampled = torch.multinomial(F.softmax(logits.float(), -1).cpu(), 1, generator=generator)[:, 0]
        actions = np.full(env.num, MOVE_TO_ACTION[Move.NOOP], dtype=np.int64)
        actions[playing] = sampled.numpy()
        reward, _, first = env.step(actions)
        before = playing.copy()
        playing &= ~first
        yield before, reward, before & first
        if not playing.any():
            return


def _policy_visits(policy: ImpalaPolicy, env: MazeEnv, steps: int, device: torch.device,
                   generator: torch.Generator) -> tuple[list[list[tuple[int, int]]], list[list[bool]]]:
    """Cells each env's mouse visits while the policy plays (sampled actions), until the episode ends.

    Returns ``(cells, mirrored)``: per env, the visited cells in order and, for each, whether
    procgen drew the mouse mirrored there (so the frames can be redrawn as the policy saw them).
    """
    starts = [env.get_state(i) for i in range(env.num)]
    cells: list[list[tuple[int, int]]] = [[s.mouse] for s in starts]
    mirrored: list[list[bool]] = [[s.mouse_reflected] for s in starts]
    for playing, _, ended in _play_first_episodes(policy, env, steps, device, generator):
        for i in np.flatnonzero(playing & ~ended):
            state = env.get_state(int(i))
            cells[i].append(state.mouse)
            mirrored[i].append(state.mouse_reflected)
    return cells, mirrored


class _ChunkSource:
    """Builds shuffled chunks of labelled frames from fresh training-distribution mazes.

    Each source owns its env, renderer and random stream, so a producer thread
    and the training loop never share one. Every chunk carries the stream's
    state from before it was drawn: saving that state and resuming rebuilds the
    same chunk.
    """

    def __init__(self, config: ImitationConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self.env = MazeEnv(config.mazes_per_chunk, cheese_region=config.cheese_region, seed=config.seed,
                           cheese_rng=rng)
        self.renderer = StateRenderer(batch_size=256)

    def _fresh_states(self) -> list[MazeState]:
        self.env.load_seeds(_chunk_seeds(self.rng, self.env.num))
        return self.env.get_states()

    def bc_chunk(self) -> _Chunk:
        """Every open cell of ``mazes_per_chunk`` fresh mazes, labelled and shuffled.

        Cells on the path from the mouse's start to the cheese appear ``1 + path_copies`` times;
        a ``mirror_fraction`` of the frames draw the mouse mirrored.
        """
        state_before = self.rng.bit_generator.state
        states = self._fresh_states()
        copies, fraction = self.config.path_copies, self.config.mirror_fraction
        cells = [cells_with_path_copies(s, copies) for s in states] if copies or fraction else None
        mirrored = [self.rng.random(len(c)) < fraction for c in cells] if fraction else None
        return self._labelled_chunk(states, cells, mirrored, state_before)

    def _labelled_chunk(self, states: list[MazeState], cells: list[list[tuple[int, int]]] | None,
                        mirrored: list[Any] | None, state_before: dict[str, Any]) -> _Chunk:
        """Frames of ``cells`` (default every open cell) of ``states``, labelled, shuffled; field targets if the config asks."""
        obs, moves, maze_index = labelled_frames_by_maze(states, self.renderer, cells=cells, mirrored=mirrored)
        order = self.rng.permutation(len(moves))
        fields = None
        if self.config.field_loss_weight > 0:
            fields = np.stack([field_targets(s) for s in states])[maze_index[order]]
        return _Chunk(obs[order], moves[order], state_before, fields)

    def dagger_chunk(self, policy: ImpalaPolicy, device: torch.device, generator: torch.Generator) -> _Chunk:
        """The cells the policy visits while playing fresh mazes, drawn as it saw them, labelled by the oracle, shuffled."""
        state_before = self.rng.bit_generator.state
        states = self._fresh_states()
        was_training = policy.training
        policy.eval()
        cells, mirrored = _policy_visits(policy, self.env, self.config.dagger_steps, device, generator)
        policy.train(was_training)
        return self._labelled_chunk(states, cells, mirrored, state_before)

    def close(self) -> None:
        self.env.close()
        self.renderer.close()


@dataclass(frozen=True)
class _Chunk:
    obs: np.ndarray
    moves: np.ndarray
    rng_state: dict[str, Any]
    fields: np.ndarray | None = None
    """Per frame, int8 ``(25, 25)`` oracle moves of its maze (:func:`field_targets`), when the field loss is on."""


class _Prefetcher:
    """Runs ``source.bc_chunk`` in a background thread, one chunk ahead (procgen releases the GIL)."""

    def __init__(self, source: _ChunkSource) -> None:
        self._queue: queue.Queue[_Chunk | BaseException] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self._thread.start()

    def _run(self, source: _ChunkSource) -> None:
        try:
            while not self._stop.is_set():
                self._queue.put(source.bc_chunk())
        except BaseException as exc:  # handed to the training thread
            self._queue.put(exc)

    def get(self) -> _Chunk:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass


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
               device: torch.device, max_steps: int = 500) -> float:
    """Fraction of ``n_mazes`` training-distribution mazes whose first episode ends on the cheese.

    Actions are sampled from the policy; an episode ends on the cheese or at
    procgen's 500-step timeout.
    """
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    solved = np.zeros(n_mazes, dtype=bool)
    with MazeEnv.from_seeds(_chunk_seeds(rng, n_mazes), cheese_region=cheese_region, seed=seed) as env:
        for _, reward, ended in _play_first_episodes(policy, env, max_steps, device, generator):
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
    source = _ChunkSource(plain, rng)
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
    out = Path(config.out_dir)
    if resume and not (out / LATEST).is_file():
        raise FileNotFoundError(f"cannot resume: {out / LATEST} does not exist (start without --resume)")
    if not resume and any((out / name).exists() for name in (LATEST, FINAL, "log.csv")):
        raise FileExistsError(f"{out} already holds a run ({LATEST}, {FINAL} or log.csv); continue it with "
                              "--resume (resume=True) or choose another --out-dir")
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
    if config.channels_last:
        policy = policy.to(memory_format=torch.channels_last)
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
    bc_source = _ChunkSource(config, bc_rng)
    dagger_source = _ChunkSource(config, dagger_rng) if config.dagger_after_samples is not None else None
    if resumed:  # after building the sources, whose envs draw their first cheeses at construction
        bc_rng.bit_generator.state = resumed["streams"]["bc"]
        dagger_rng.bit_generator.state = resumed["streams"]["dagger"]
        generator.set_state(torch.tensor(resumed["streams"]["torch"], dtype=torch.uint8))
    chunk_rng_state = bc_rng.bit_generator.state
    prefetch = _Prefetcher(bc_source)
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
                chunk = dagger_source.dagger_chunk(policy, device, generator)
            else:
                chunk = prefetch.get()
                chunk_rng_state = chunk.rng_state
            policy.train()
            for batch in _batches(len(chunk.moves), config.batch_size):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(config, samples)
                x = obs_to_tensor(chunk.obs[batch], device=device)
                if config.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
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
    parser.add_argument("--resume", action="store_true", help=f"continue the run in --out-dir from its {LATEST}")
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
