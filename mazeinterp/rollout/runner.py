"""The batched rollout loop: :func:`run_rollouts` steps many envs through the policy and records each episode.

How it runs
-----------
* The mouse's cell is tracked on the known grid (procgen's maze moves the mouse
  one cell per step when the target cell is open; the diagonal actions move
  left/right), so no state is read back while stepping. The tracked cell is
  checked against procgen's reward every step, and against the full state when
  ``check_positions`` is set.
* The episode clock of every start state is reset (``cur_time = 0``) and
  procgen's timeout is raised above ``max_steps`` when needed, so the step cap
  is exactly ``max_steps``.
* Randomness is per maze: episode ``i`` draws its action-sampling uniforms (and
  its cheese placement, with ``cheese_region``) from a generator seeded by
  ``(config.seed, i)`` (or ``(config.seed, streams[i])`` when ``run_rollouts`` is
  given ``streams``). The same command gives the same numbers whatever the
  batch size, and :func:`~mazeinterp.rollout.compare` runs both conditions on
  the same mazes with the same random numbers (common random numbers), which
  tightens the paired difference. Actions are sampled by inverting the CDF of
  the policy's 15-action softmax at the maze's next uniform.
* An env stops being stepped through the network as soon as its outcome is
  known; its slot in the batch is refilled with the next maze, so the batch
  stays full until the mazes run out.
* Forward passes run in ``torch.inference_mode`` with the package's numerics
  (:mod:`mazeinterp.core.numerics`: channels-last on the fast path, 1.5-2× faster
  for the IMPALA CNN on a CPU; ``RolloutConfig.channels_last=False`` asks for the
  reference path); only the active envs' observations are sent through the network. Interventions apply at every forward pass through
  :func:`mazeinterp.core.hooks.intervene`; a
  :class:`~mazeinterp.core.interventions.PerEpisodeIntervention` is told, before each
  forward pass, which maze each batch row shows (:class:`~mazeinterp.rollout.EpisodeVectors`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mazeinterp.core.finite import check_logits
from mazeinterp.core.interventions import Intervention, PerEpisodeIntervention, validate_interventions
from mazeinterp.maze import grid, outcomes
from mazeinterp.maze.moves import ACTION_TO_MOVE, MOVE_DELTAS, NOOP_ACTION, NUM_ACTIONS, Move
from mazeinterp.maze.state import WALL, WORLD_SIZE, MazeState
from mazeinterp.rollout.config import RolloutConfig
from mazeinterp.rollout.policies import Policy, ScriptedPolicy
from mazeinterp.rollout.results import Episode, RolloutResult
from mazeinterp.rollout.sources import MazeSource, place_stream_cheese

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from mazeinterp.core.model import ImpalaPolicy

__all__ = ["RolloutInterrupted", "run_rollouts"]


@dataclass
class _Maze:
    """A maze prepared for a slot: start state and the arrays the tracker needs."""

    index: int
    state: MazeState
    cheese: grid.Cell | None
    features: grid.MazeFeatures | None
    open_world: np.ndarray  # (W + 2, W + 2) bool, padded by one wall
    top_right_counts: bool
    offset: int  # inner (row, col) + offset = padded world (row, col)
    uniforms: np.ndarray | None



def _prepare(index: int, state: MazeState, config: RolloutConfig, stream: int | None = None) -> _Maze:
    stream = index if stream is None else stream
    if config.cheese_region is not None:
        state = place_stream_cheese(stream, state, config.cheese_region, config.seed)
    timeout = int(state.game_field("timeout"))
    state = state.with_game_fields(cur_time=0, timeout=max(timeout, config.max_steps + 1))
    cheese = state.cheese
    try:
        features = None if cheese is None else grid.maze_features(
            state.open_cells, cheese, decision_square_definition=config.decision_square)
    except ValueError as exc:
        raise ValueError(f"maze {index} (level seed {state.level_seed}): {exc}") from None
    world = state.world_grid
    open_world = np.zeros((world.shape[0] + 2, world.shape[1] + 2), dtype=bool)
    open_world[1:-1, 1:-1] = world != WALL
    counts = outcomes.top_right_counts(state)
    uniforms = None
    if not config.greedy:
        uniforms = np.random.default_rng([config.seed, stream]).random(config.max_steps)
    return _Maze(index, state, cheese, features, open_world, counts, state.margin + 1, uniforms)



def _policy_name(policy: Any) -> str:
    scale = getattr(policy, "scale", None)
    source = getattr(policy, "source", None)
    name = type(policy).__name__
    if scale is not None:
        name += f"(scale={scale})"
    if source is not None:
        name += f" from {source}"
    return name


def _module_device(policy: Any) -> torch.device | None:
    import torch

    if isinstance(policy, torch.nn.Module):
        for p in policy.parameters():
            return p.device
    return None


class _Runner:
    """Steps ``B`` envs; tracks mouse cells and outcomes in arrays; refills finished slots."""

    def __init__(self, policy: Any, source: MazeSource, interventions: tuple[Any, ...],
                 config: RolloutConfig, device: torch.device, progress: Any,
                 streams: Sequence[int] | None = None) -> None:
        from mazeinterp.maze.env import MazeEnv

        self.policy = policy
        self.interventions = interventions
        self.source = source
        self.config = config
        self.device = device
        self.progress = progress
        self.streams = streams
        self.scripted = isinstance(policy, ScriptedPolicy)
        self.network = _module_device(policy) is not None  # a torch module: its -inf logits are overflows
        self.episode_aware = [iv for iv in interventions if isinstance(iv, PerEpisodeIntervention)]
        self.B = min(config.batch_size, len(source))
        self.env = MazeEnv(self.B)
        B = self.B
        world = WORLD_SIZE + 2  # padded by one wall
        self.mazes: list[_Maze | None] = [None] * B
        self.slot_index = np.full(B, -1, dtype=np.int64)
        self.open_world = np.zeros((B, world, world), dtype=bool)
        self.pos = np.zeros((B, 2), dtype=np.int64)
        self.cheese = np.full((B, 2), -1, dtype=np.int64)
        self.top_right = np.zeros((B, 2), dtype=np.int64)
        self.top_right_counts = np.zeros(B, dtype=bool)
        self.steps = np.zeros(B, dtype=np.int64)
        self.uniforms = np.zeros((B, config.max_steps), dtype=np.float64)
        self.trajectories: list[list[grid.Cell]] = [[] for _ in range(B)]
        self.moves: list[list[int]] = [[] for _ in range(B)]
        self.action_probs: list[list[np.ndarray]] = [[] for _ in range(B)]
        self.maze_size = np.zeros(B, dtype=np.int64)
        self.offset = np.zeros(B, dtype=np.int64)
        self.region_step = np.full(B, -1, dtype=np.int64)
        # the inner cells after each of the last TRAP_WINDOW steps, written round-robin
        self.recent = np.zeros((B, outcomes.TRAP_WINDOW, 2), dtype=np.int64)
        self.starts: list[grid.Cell] = [(0, 0)] * B
        self.episodes: dict[int, Episode] = {}
        self.frames = 0
        self.started = self._last_report = time.perf_counter()
        self._move_deltas = MOVE_DELTAS.astype(np.int64)
        self._action_moves = ACTION_TO_MOVE.astype(np.int64)

    def close(self) -> None:
        self.env.close()

    # --- slots ---

    def _fill(self, slot: int) -> bool:
        item = self.source.next()
        if item is None:
            self.slot_index[slot] = -1
            self.mazes[slot] = None
            return False
        maze = _prepare(item[0], item[1], self.config,
                        None if self.streams is None else int(self.streams[item[0]]))
        state = maze.state
        if state.world.shape[0] + 2 != self.open_world.shape[1]:
            raise ValueError(f"maze {maze.index}: world of size {state.world.shape} is not {WORLD_SIZE}×{WORLD_SIZE}")
        self.env.set_state(slot, state)
        self.mazes[slot] = maze
        self.slot_index[slot] = maze.index
        self.open_world[slot] = maze.open_world
        mouse = state.mouse
        self.starts[slot] = mouse
        self.pos[slot] = (mouse[0] + maze.offset, mouse[1] + maze.offset)
        n = state.maze_size
        self.maze_size[slot], self.offset[slot] = n, maze.offset
        starts_in_region = outcomes.in_top_right_region(np.array([mouse]), n, self.config.region_size)[0]
        self.region_step[slot] = 0 if starts_in_region and mouse != maze.cheese else -1
        self.top_right[slot] = (maze.offset, n - 1 + maze.offset)
        self.top_right_counts[slot] = maze.top_right_counts
        self.cheese[slot] = (-1, -1) if maze.cheese is None else (maze.cheese[0] + maze.offset,
                                                                  maze.cheese[1] + maze.offset)
        self.steps[slot] = 0
        if maze.uniforms is not None:
            self.uniforms[slot] = maze.uniforms
        if self.config.record_trajectories:
            self.trajectories[slot] = [mouse]
            self.moves[slot] = []
        if self.config.record_action_probs:
            self.action_probs[slot] = []
        return True

    def _finish(self, slot: int, outcome: str) -> None:
        maze = self.mazes[slot]
        assert maze is not None
        state = maze.state
        features = maze.features
        trajectory = tuple(self.trajectories[slot]) if self.config.record_trajectories else None
        moves = tuple(self.moves[slot]) if self.config.record_trajectories else None
        action_probs = None
        if self.config.record_action_probs:
            action_probs = np.array(self.action_probs[slot], dtype=np.float64).reshape(-1, len(Move))
            action_probs.setflags(write=False)
        steps = int(self.steps[slot])
        trap = None
        if outcome == "neither" and steps >= self.config.max_steps:
            trap = outcomes.find_trap(self.recent[slot, : min(steps, outcomes.TRAP_WINDOW)])
        region_step = int(self.region_step[slot])
        self.episodes[maze.index] = Episode(
            index=maze.index, level_seed=state.level_seed, maze_size=state.maze_size, cheese=maze.cheese,
            has_decision_square=bool(features is not None and features.has_decision_square),
            decision_square=None if features is None else features.decision_square,
            outcome=outcome, steps=int(self.steps[slot]), start=self.starts[slot],
            top_right_counts=maze.top_right_counts,
            features=features, trajectory=trajectory, moves=moves, action_probs=action_probs, region_size=self.config.region_size,
            region_step=None if region_step < 0 else region_step, trap=trap,
        )
        self.progress.update(1)
        self._report(force=False)

    def _report(self, force: bool) -> None:
        """Show frames/s; redraw at least once a second even while no maze finishes."""
        from mazeinterp.runtime import progress
        now = time.perf_counter()
        if now > self.started:
            refresh = force or now - self._last_report >= progress.INTERVAL_S / 2
            self.progress.set_postfix_str(f"{self.frames / (now - self.started):.1f} frames/s", refresh=refresh)
            if refresh:
                self._last_report = now

    # --- policy ---

    def _logits(self, active: np.ndarray, obs: np.ndarray) -> Tensor:
        import torch

        from mazeinterp.core.model import obs_to_tensor

        if self.scripted:
            states = [self.env.get_state(int(s)) for s in active]
            logits = self.policy.logits(states)
            return torch.as_tensor(np.asarray(logits, dtype=np.float32))
        x = obs_to_tensor(obs[active], device=self.device)
        if self.episode_aware:
            rows = self.slot_index[active]
            for iv in self.episode_aware:
                iv.set_episode_indices(rows)
        out = self.policy(x)
        logits = out[0] if isinstance(out, (tuple, list)) else out
        if tuple(logits.shape) != (len(active), NUM_ACTIONS):
            raise ValueError(f"policy returned logits of shape {tuple(logits.shape)}, "
                             f"expected ({len(active)}, {NUM_ACTIONS})")
        return check_logits(logits, self.policy, self.interventions, impossible_actions=not self.network)

    def _actions(self, logits: Tensor, active: np.ndarray) -> np.ndarray:
        # in numpy: a (k, 15) softmax is far too small for torch's thread pool to pay off
        z = logits.detach().float().cpu().numpy().astype(np.float64)
        if self.config.greedy:
            return z.argmax(axis=1).astype(np.int64)
        z = z - z.max(axis=1, keepdims=True)
        cdf = np.exp(z).cumsum(axis=1)
        u = self.uniforms[active, self.steps[active]] * cdf[:, -1]
        # first action whose cumulative weight exceeds u (zero-probability actions are never chosen)
        actions = (cdf <= u[:, None]).sum(axis=1)
        return np.minimum(actions, NUM_ACTIONS - 1).astype(np.int64)

    # --- main loop ---

    def run(self) -> None:
        for slot in range(self.B):
            self._fill(slot)
        obs = self.env.observe()[1]
        cfg = self.config
        while True:
            active = np.flatnonzero(self.slot_index >= 0)
            if not len(active):
                break
            logits = self._logits(active, obs)
            if cfg.record_action_probs:
                self._record_action_probs(logits, active)
            actions = self._actions(logits, active)
            self.frames += len(active)
            self._report(force=False)
            full = np.full(self.B, NOOP_ACTION, dtype=np.int64)
            full[active] = actions
            reward, obs, first = self.env.step(full)

            # track the mouse on the grid
            moves = self._action_moves[actions]
            deltas = self._move_deltas[moves]
            target = self.pos[active] + deltas
            ok = self.open_world[active, target[:, 0], target[:, 1]]
            new_pos = np.where(ok[:, None], target, self.pos[active])
            self.pos[active] = new_pos
            self.steps[active] += 1
            if cfg.record_trajectories:
                for slot, (r, c), move in zip(active.tolist(), new_pos.tolist(), moves.tolist()):
                    off = self.mazes[slot].offset  # type: ignore[union-attr]
                    self.trajectories[slot].append((r - off, c - off))
                    self.moves[slot].append(move)

            inner = new_pos - self.offset[active, None]
            self.recent[active, (self.steps[active] - 1) % outcomes.TRAP_WINDOW] = inner
            got_cheese = reward[active] > 0
            arrived = (self.region_step[active] < 0) & ~got_cheese & outcomes.in_top_right_region(
                inner, self.maze_size[active], cfg.region_size)
            self.region_step[active[arrived]] = self.steps[active[arrived]]
            on_cheese = (new_pos == self.cheese[active]).all(axis=1)
            if (got_cheese != on_cheese).any():
                bad = int(active[np.flatnonzero(got_cheese != on_cheese)[0]])
                raise RuntimeError(
                    f"mouse tracking disagrees with procgen in slot {bad} (maze {self.slot_index[bad]}): "
                    f"reward {reward[bad]}, tracked cell {tuple(self.pos[bad] - self.mazes[bad].offset)}"  # type: ignore[union-attr]
                )
            on_top_right = (new_pos == self.top_right[active]).all(axis=1) & self.top_right_counts[active]
            # a procgen reset without the cheese (should not happen) ends the episode as the cap does
            out_of_time = (self.steps[active] >= cfg.max_steps) | first[active]
            codes = outcomes.step_outcomes(got_cheese, on_top_right, out_of_time)
            if cfg.check_positions:
                self._check_positions(active[~got_cheese])

            done = codes != outcomes.RUNNING
            if done.any():
                for j in np.flatnonzero(done).tolist():
                    slot = int(active[j])
                    self._finish(slot, outcomes.OUTCOMES[codes[j]])
                    self._fill(slot)
                obs = self.env.observe()[1]

    def _record_action_probs(self, logits: Tensor, active: np.ndarray) -> None:
        from mazeinterp.core.model import move_probs

        probs = move_probs(logits.detach().float().cpu()).numpy()
        for row, slot in enumerate(active.tolist()):
            self.action_probs[slot].append(probs[row])

    def _check_positions(self, slots: np.ndarray) -> None:
        for slot in slots.tolist():
            maze = self.mazes[slot]
            assert maze is not None
            actual = self.env.get_state(slot).mouse
            tracked = tuple(int(v) - maze.offset for v in self.pos[slot])
            if actual != tracked:
                raise RuntimeError(f"maze {maze.index}: tracked mouse cell {tracked} but procgen has {actual} "
                                   f"after step {self.steps[slot]}")


def _validate_interventions(policy: object, interventions: Sequence[Intervention]) -> tuple[Intervention, ...]:
    """The rollout's interventions, checked once here (:func:`intervene` in :func:`run_rollouts` then skips it)."""
    from mazeinterp.core.model import ImpalaPolicy

    if not interventions:
        return ()
    if not isinstance(policy, ImpalaPolicy):  # the hook points an intervention names are the ImpalaPolicy's
        raise ValueError("interventions need a torch policy (an ImpalaPolicy), not a "
                         f"{type(policy).__name__}")
    for iv in interventions:
        if not isinstance(iv, Intervention):
            raise ValueError(f"{iv!r} is not an intervention (see mazeinterp.core.interventions)")
        if callable(getattr(iv, "set_episode_indices", None)) and not isinstance(iv, PerEpisodeIntervention):
            raise TypeError(f"{iv} has a set_episode_indices method but is not a PerEpisodeIntervention, so the "
                            "rollout would never tell it the batch rows' mazes; subclass "
                            "mazeinterp.core.interventions.PerEpisodeIntervention")
    return validate_interventions(policy, interventions)


def run_rollouts(
    policy: Policy | ScriptedPolicy | Callable[[Tensor], Tensor | tuple[Tensor, ...]],
    mazes: int | Sequence[int] | Sequence[MazeState | bytes] | range,
    interventions: Sequence[Intervention] = (),
    config: RolloutConfig | None = None,
    indices: Sequence[int] | None = None,
    *,
    streams: Sequence[int] | None = None,
) -> RolloutResult:
    """Run one episode per maze and classify its outcome.

    Args:
        policy: an :class:`~mazeinterp.core.model.ImpalaPolicy` (or any :class:`Policy`),
            or a :class:`ScriptedPolicy`.
        mazes: level seeds (a sequence of ints, or an int ``n`` for seeds
            ``0 … n-1``), or start states (:class:`MazeState` or procgen bytes).
        interventions: applied at every forward pass (torch policies only), all
            in one pass via :func:`mazeinterp.core.hooks.intervene`; each
            :class:`~mazeinterp.core.interventions.PerEpisodeIntervention` among them is
            told every batch row's maze before each pass.
        config: :class:`RolloutConfig` (defaults if None).
        indices: run only these positions of ``mazes`` (each episode keeps its
            position as :attr:`Episode.index`, and so its random numbers: the
            episodes are those of the full run). Used to finish an interrupted run.
        streams: random-stream key of each maze (default: its position ``i``):
            maze ``i`` draws its action uniforms and cheese placement from
            ``(config.seed, streams[i])``. Lets a caller that splits mazes
            into pieces, or runs one maze under several conditions in one
            call, give each maze the random numbers of a single whole run.

    Returns:
        :class:`RolloutResult` with one :class:`Episode` per maze, in order.

    Raises:
        ValueError: bad mazes, an intervention that does not fit the model
            (unknown hook point, channel out of range; see
            :func:`mazeinterp.core.interventions.validate`), a policy that returns
            the wrong shape.
        TypeError: a maze that is neither a level seed nor a state; an intervention with a
            ``set_episode_indices`` method that does not declare the per-episode protocol
            (:class:`~mazeinterp.core.interventions.PerEpisodeIntervention`).
        RolloutInterrupted: a KeyboardInterrupt arrived; its ``result`` holds the
            episodes finished by then.
    """
    import torch

    config = config or RolloutConfig()
    interventions = _validate_interventions(policy, tuple(interventions))
    source = MazeSource(mazes, config.batch_size, indices)
    if streams is not None:
        streams = [int(s) for s in streams]
        if len(streams) != len(source.items) or any(s < 0 for s in streams):
            raise ValueError(f"streams must be {len(source.items)} non-negative ints (one per maze), "
                             f"got {len(streams)}")
    device = torch.device(config.device) if config.device else (_module_device(policy) or torch.device("cpu"))
    if isinstance(policy, torch.nn.Module) and _module_device(policy) not in (None, device):
        policy.to(device)
    from mazeinterp.runtime.progress import progress_bar
    from mazeinterp.runtime.threads import default_threads, torch_threads

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.callback(source.close)
        threads = config.threads or default_threads(min(config.batch_size, len(source)))
        stack.enter_context(torch_threads(threads))
        progress = stack.enter_context(progress_bar(total=len(source), desc="rollouts", unit="maze",
                                                    enabled=config.progress))
        from mazeinterp.core.numerics import reference_unless

        stack.enter_context(reference_unless(config.channels_last))
        if interventions:
            from mazeinterp.core.hooks import intervene

            stack.enter_context(intervene(cast("ImpalaPolicy", policy), interventions))  # checked above
        stack.enter_context(torch.inference_mode())
        runner = _Runner(policy, source, interventions, config, device, progress, streams)
        stack.callback(runner.close)
        try:
            runner.run()
            interrupted = False
        except KeyboardInterrupt:  # keep what is finished; the caller decides what to do with it
            interrupted = True
    seconds = time.perf_counter() - started
    episodes = tuple(runner.episodes[i] for i in sorted(runner.episodes))
    result = RolloutResult(
        episodes=episodes, config=config, interventions=tuple(repr(iv) for iv in interventions),
        policy=_policy_name(policy) if not isinstance(policy, ScriptedPolicy) else repr(policy),
        frames=runner.frames, seconds=seconds,
    )
    if interrupted:
        raise RolloutInterrupted(result)
    return result


class RolloutInterrupted(KeyboardInterrupt):
    """:func:`run_rollouts` was interrupted (Ctrl-C, or SIGTERM turned into one); ``result`` holds the
    episodes finished before it (a :class:`RolloutResult`, in maze order)."""

    def __init__(self, result: RolloutResult) -> None:
        super().__init__(f"interrupted after {len(result)} finished episodes")
        self.result = result

