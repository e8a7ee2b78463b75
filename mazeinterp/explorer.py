"""The explorer's model: a policy on one maze under interventions, every edit answered with the numbers to show.

:class:`Explorer` holds the policy, the current maze and the intervention
settings (immutable values); every edit returns an :class:`ExplorerView`, the
numbers the display shows. What an edit does not change is cached: moving the
mouse reuses both vector fields, changing an intervention reuses the plain
field and the activations of every field state at the intervention's hook
point (only the rest of the network is run, :func:`mazeinterp.hooks.forward_from`),
choosing a channel reuses the whole forward pass. It needs no ipywidgets, so
scripts and tests drive it directly; the Jupyter controls and pictures are
:mod:`mazeinterp.widgets`.

>>> ex = Explorer(model, state)
>>> view = ex.set_interventions(vector="cheese")
>>> view.edited_field is not None, view.mouse_probs.shape
(True, (5,))
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import torch

from mazeinterp.defaults import (
    CHEESE_VECTOR_COEFFICIENT,
    DEFAULT_STEERING_HOOK,
    FORWARD_BATCH_SIZE,
    RETARGET_VALUE,
)
from mazeinterp.hooks import activations, can_forward_from, forward_from, run_states_with_cache
from mazeinterp.interventions import AddVector, Intervention, ZeroAblate, validate
from mazeinterp.maze.grid import Cell
from mazeinterp.model import ImpalaPolicy, move_probs
from mazeinterp.steering import cheese_vector, retarget, top_right_vector
from mazeinterp.vfield import VectorField, field_cells, field_difference, vector_fields

if TYPE_CHECKING:
    from mazeinterp.hooks import ActivationCache
    from mazeinterp.maze.state import MazeState

__all__ = ["CLICK_MODES", "Explorer", "ExplorerView", "InterventionSettings"]

CLICK_MODES = ("cheese", "mouse", "wall", "clamp")
"""What a click on a cell does: move the cheese, move the mouse, toggle a wall, choose the clamped cell."""

T = TypeVar("T")


@dataclass(frozen=True)
class InterventionSettings:
    """The explorer's interventions, all at one hook point; applied in the order ablate, add, clamp."""

    hook: str = DEFAULT_STEERING_HOOK
    """Hook point of every intervention (a (C, H, W) map)."""
    ablate: tuple[int, ...] = ()
    """Channels set to zero (:class:`~mazeinterp.interventions.ZeroAblate`); empty = none."""
    vector: Literal["cheese", "top_right"] | None = None
    """Add this maze's cheese vector or top-right vector (:mod:`mazeinterp.steering`); None = none."""
    coefficient: float = CHEESE_VECTOR_COEFFICIENT
    """Coefficient of the added vector (−1 removes what the cheese adds)."""
    clamp_channel: int | None = None
    """Channel clamped at :attr:`clamp_cell` (:func:`mazeinterp.steering.retarget`); None = no clamp."""
    clamp_cell: Cell | None = None
    """Maze cell whose activation pixel is clamped; None = no clamp."""
    clamp_value: float = RETARGET_VALUE
    """Value the clamped channel is set to."""

    def __post_init__(self) -> None:
        if self.vector not in (None, "cheese", "top_right"):
            raise ValueError(f"vector must be None, 'cheese' or 'top_right', got {self.vector!r}")
        object.__setattr__(self, "ablate", tuple(sorted({int(c) for c in self.ablate})))
        object.__setattr__(self, "coefficient", float(self.coefficient))
        object.__setattr__(self, "clamp_value", float(self.clamp_value))
        if self.clamp_cell is not None:
            object.__setattr__(self, "clamp_cell", (int(self.clamp_cell[0]), int(self.clamp_cell[1])))

    @property
    def active(self) -> bool:
        """Whether any intervention is set."""
        return bool(self.ablate) or self.vector is not None or self.clamps

    @property
    def clamps(self) -> bool:
        """Whether the clamp is set (a channel and a cell)."""
        return self.clamp_channel is not None and self.clamp_cell is not None


@dataclass(frozen=True, eq=False)
class ExplorerView:
    """What the explorer shows for one maze and one set of interventions.

    Attributes:
        state: the maze, mouse included.
        obs: (64, 64, 3) uint8 observation of ``state``.
        field: the policy's vector field of the maze (:func:`mazeinterp.vfield.vector_field`).
        edited_field: the field under ``interventions``; None without interventions.
        difference: ``edited_field - field`` (:func:`mazeinterp.vfield.field_difference`); None without.
        mouse_probs: (5,) move probabilities (left, down, up, right, noop) with the mouse where it stands.
        edited_mouse_probs: (5,) the same under ``interventions``; None without.
        hook: hook point of the activation map.
        channel: channel of the activation map.
        activation: (H, W) map of ``channel`` at ``hook`` for ``state``, with ``interventions`` applied.
        settings: the intervention settings.
        interventions: the interventions they make (ablate, add, clamp, in that order).
    """

    state: MazeState
    obs: np.ndarray
    field: VectorField
    edited_field: VectorField | None
    difference: VectorField | None
    mouse_probs: np.ndarray
    edited_mouse_probs: np.ndarray | None
    hook: str
    channel: int
    activation: np.ndarray
    settings: InterventionSettings
    interventions: tuple[Intervention, ...]


class _Memo:
    """The last ``size`` results of a computation, by key; counts how often it had to compute."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.misses = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = compute()
        self.misses += 1
        self.put(key, value)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _maze_key(state: MazeState) -> tuple[bytes, bool]:
    """What the vector fields and steering vectors depend on: walls, cheese, the mouse's drawing (not its cell)."""
    return state.world.tobytes(), state.mouse_reflected


class Explorer:
    """A policy on one maze, with interventions; each edit returns the new :class:`ExplorerView`.

    Edits that fail (a wall on the mouse, a channel out of range, a cheese vector
    without cheese) raise ValueError (KeyError for an unknown hook point) and
    leave the explorer as it was.

    Args:
        policy: the policy (any scale).
        state: the maze to start from (the mouse is kept where it stands).
        hook: hook point of the activation map (a (C, H, W) map).
        channel: channel of the activation map.
        settings: initial interventions (default: none).
        batch_size: field states per forward pass.

    Attributes ``field_passes``, ``suffix_passes`` and ``forward_passes`` count
    how often a whole vector field, an edited field from cached activations,
    and a single forward pass were computed (to see what an edit cost).

    >>> ex = Explorer(policy, state)                           # doctest: +SKIP
    >>> view = ex.place_cheese((0, 3))                         # doctest: +SKIP
    >>> view = ex.set_interventions(vector="cheese", coefficient=-1.0)   # doctest: +SKIP
    >>> view.edited_mouse_probs                                # doctest: +SKIP
    """

    def __init__(self, policy: ImpalaPolicy, state: MazeState, *, hook: str = DEFAULT_STEERING_HOOK,
                 channel: int = 0, settings: InterventionSettings | None = None,
                 batch_size: int = FORWARD_BATCH_SIZE) -> None:
        self.policy = policy
        self.batch_size = batch_size
        self._fields = _Memo(2)  # maze → plain field
        self._prefixes = _Memo(2)  # (maze, hook) → activations of every field state at hook
        self._edited = _Memo(8)  # (maze, settings) → edited field
        self._vectors = _Memo(8)  # (maze, kind, hook) → steering vector
        self._caches = _Memo(8)  # (state, settings) → activation cache of one forward pass
        self._obs = _Memo(8)  # state → observation
        self.state = state.with_mouse(state.mouse)  # the mouse at its cell's centre, as every edit puts it
        self.hook = hook
        self.channel = int(channel)
        self.settings = settings or InterventionSettings()
        self.view = self._view(self.state, self.settings, self.hook, self.channel)

    # ------------------------------------------------------------------ counters

    @property
    def field_passes(self) -> int:
        """Plain vector fields computed (a forward pass per open cell)."""
        return self._fields.misses

    @property
    def suffix_passes(self) -> int:
        """Edited vector fields computed (from cached activations when the hook point allows it)."""
        return self._edited.misses

    @property
    def forward_passes(self) -> int:
        """Single-state forward passes computed (activation maps)."""
        return self._caches.misses

    # ------------------------------------------------------------------ edits

    def click(self, cell: Cell, mode: str) -> ExplorerView:
        """Apply a click on ``cell`` in ``mode`` (one of :data:`CLICK_MODES`)."""
        if mode == "cheese":
            return self.place_cheese(cell)
        if mode == "mouse":
            return self.place_mouse(cell)
        if mode == "wall":
            return self.toggle_wall(cell)
        if mode == "clamp":
            return self.set_interventions(clamp_cell=cell)
        raise ValueError(f"unknown click mode {mode!r}; choose from {', '.join(CLICK_MODES)}")

    def place_cheese(self, cell: Cell) -> ExplorerView:
        """Move the cheese to ``cell`` (an open cell without the mouse)."""
        return self._commit(state=self.state.with_cheese(cell))

    def place_mouse(self, cell: Cell) -> ExplorerView:
        """Move the mouse to ``cell`` (an open cell without the cheese)."""
        return self._commit(state=self.state.with_mouse(cell))

    def toggle_wall(self, cell: Cell) -> ExplorerView:
        """Turn the wall at ``cell`` into an open cell, or the open cell into a wall."""
        state = self.state
        is_wall = not state.open_cells[_inside(cell, state.maze_size)]
        return self._commit(state=state.with_open(cell) if is_wall else state.with_wall(cell))

    def show(self, hook: str | None = None, channel: int | None = None) -> ExplorerView:
        """Show the activation map of ``channel`` at ``hook`` (either kept when None)."""
        hook = self.hook if hook is None else hook
        channel = self.channel if channel is None else int(channel)
        return self._commit(hook=hook, channel=channel)

    def set_interventions(self, **changes: Any) -> ExplorerView:
        """Change fields of :class:`InterventionSettings` (``ablate=(3, 7)``, ``vector="cheese"``, …)."""
        return self._commit(settings=replace(self.settings, **changes))

    def _commit(self, *, state: MazeState | None = None, settings: InterventionSettings | None = None,
                hook: str | None = None, channel: int | None = None) -> ExplorerView:
        state = self.state if state is None else state
        settings = self.settings if settings is None else settings
        hook = self.hook if hook is None else hook
        channel = self.channel if channel is None else channel
        view = self._view(state, settings, hook, channel)  # raises before anything is replaced
        self.state, self.settings, self.hook, self.channel, self.view = state, settings, hook, channel, view
        return view

    # ------------------------------------------------------------------ computing a view

    def interventions(self, state: MazeState, settings: InterventionSettings) -> tuple[Intervention, ...]:
        """The interventions that ``settings`` make on ``state``'s maze, validated against the policy."""
        hook = settings.hook
        ivs: list[Intervention] = []
        if settings.ablate:
            ivs.append(ZeroAblate(hook, channels=settings.ablate))
        if settings.vector is not None:
            ivs.append(AddVector(hook, self._vector(state, settings.vector, hook), settings.coefficient))
        if settings.clamps:
            ivs.append(retarget([settings.clamp_channel], settings.clamp_cell, state.maze_size,  # type: ignore[list-item, arg-type]
                                settings.clamp_value, hook))
        for iv in ivs:
            validate(self.policy, iv)
        return tuple(ivs)

    def _view(self, state: MazeState, settings: InterventionSettings, hook: str, channel: int) -> ExplorerView:
        shape = self._map_shape(hook)
        if not 0 <= channel < shape[0]:
            raise ValueError(f"channel {channel} is out of range for hook point {hook!r}, which has "
                             f"{shape[0]} channels (0..{shape[0] - 1})")
        self._map_shape(settings.hook)
        ivs = self.interventions(state, settings)
        # the plain field's pass also keeps the activations an intervention at settings.hook starts from,
        # so that the first intervention on a maze runs only the rest of the network
        field = self._field(state, settings.hook if can_forward_from(settings.hook) else None)
        edited = self._edited_field(state, settings, ivs) if ivs else None
        cache = self._caches.get((state.to_bytes(), settings), lambda: self._forward(state, ivs))
        mouse = state.mouse
        return ExplorerView(
            state=state, obs=self._obs.get(state.to_bytes(), lambda: _render(state)), field=field,
            edited_field=edited, difference=None if edited is None else field_difference(field, edited),
            mouse_probs=field.prob_at(mouse), edited_mouse_probs=None if edited is None else edited.prob_at(mouse),
            hook=hook, channel=channel, activation=cache[hook][0, channel].numpy().astype(np.float64),
            settings=settings, interventions=ivs,
        )

    def _map_shape(self, hook: str) -> tuple[int, ...]:
        shapes = self.policy.hook_points()
        if hook not in shapes:
            self.policy.module_for_hook(hook)  # KeyError naming close hook points
        shape = shapes[hook]
        if len(shape) != 3:
            raise ValueError(f"hook point {hook!r} has shape {shape}; the explorer needs a (C, H, W) map")
        return shape

    def _field(self, state: MazeState, prefix_hook: str | None = None) -> VectorField:
        """The plain vector field; with ``prefix_hook``, also keep the field states' activations there."""
        key = _maze_key(state)

        def compute() -> VectorField:
            if prefix_hook is None:
                return vector_fields(self.policy, [state], batch_size=self.batch_size, progress=False)[0]
            # one pass gives the plain field and what every edited field at prefix_hook starts from
            cells = field_cells(state)
            moved = [state.with_mouse(cell) for cell in cells]
            outputs, cache = run_states_with_cache(self.policy, moved, [prefix_hook], batch_size=self.batch_size,
                                                   progress=False)
            assert outputs is not None
            self._prefixes.put((key, prefix_hook), cache[prefix_hook])
            return VectorField(state, tuple(cells), move_probs(outputs[0]).double().numpy())

        return self._fields.get(key, compute)

    def _vector(self, state: MazeState, kind: str, hook: str) -> torch.Tensor:
        if kind == "cheese" and state.cheese is None:
            raise ValueError("the cheese vector needs a maze with its cheese")
        make = cheese_vector if kind == "cheese" else top_right_vector
        return self._vectors.get((_maze_key(state), kind, hook), lambda: make(self.policy, state, hook))

    def _edited_field(self, state: MazeState, settings: InterventionSettings,
                      ivs: Sequence[Intervention]) -> VectorField:
        def compute() -> VectorField:
            if not can_forward_from(settings.hook):
                return vector_fields(self.policy, [state], ivs, batch_size=self.batch_size, progress=False)[0]
            acts = self._prefix(state, settings.hook)
            for iv in ivs:
                acts = iv(acts)
            probs = []
            with torch.inference_mode():
                for start in range(0, len(acts), self.batch_size):
                    logits, _ = forward_from(self.policy, settings.hook, acts[start : start + self.batch_size])
                    probs.append(move_probs(logits).double().cpu().numpy())
            field = self._field(state)
            return VectorField(field.state, field.cells, np.concatenate(probs))

        return self._edited.get((_maze_key(state), settings), compute)

    def _prefix(self, state: MazeState, hook: str) -> torch.Tensor:
        """Activations at ``hook`` of every field state of the maze (the mouse on each field cell): (k, C, H, W)."""

        def compute() -> torch.Tensor:
            moved = [state.with_mouse(cell) for cell in field_cells(state)]
            return activations(self.policy, hook, moved, batch_size=self.batch_size, progress=False)

        return self._prefixes.get((_maze_key(state), hook), compute)

    def _forward(self, state: MazeState, ivs: Sequence[Intervention]) -> ActivationCache:
        _, cache = run_states_with_cache(self.policy, [state], None, interventions=ivs, progress=False)
        return cache


def _render(state: MazeState) -> np.ndarray:
    from mazeinterp.hooks import render_states

    return render_states([state])[0]


def _inside(cell: Cell, n: int) -> Cell:
    row, col = int(cell[0]), int(cell[1])
    if not (0 <= row < n and 0 <= col < n):
        raise ValueError(f"cell {(row, col)} is outside the {n}×{n} inner maze")
    return row, col
