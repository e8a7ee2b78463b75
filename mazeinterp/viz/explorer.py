"""The explorer's model: a policy on one maze under interventions, every edit answered with the numbers to show.

:class:`Explorer` holds the policy, the current maze and the intervention
settings (immutable values); every edit returns an :class:`ExplorerView`, the
numbers the display shows. What an edit does not change is cached: moving the
mouse reuses both vector fields, changing an intervention reuses the plain
field and the activations of every field state at the intervention's hook
point (only the rest of the network is run, :func:`mazeinterp.core.hooks.forward_from`),
choosing a channel reuses the whole forward pass. A progressive explorer
answers an edit at once with everything but the vector fields' missing cells,
and computes those a chunk at a time (:meth:`Explorer.refine`). It needs no
ipywidgets, so scripts and tests drive it directly; the Jupyter controls and
pictures are :mod:`mazeinterp.viz.widgets`.

>>> ex = Explorer(model, state)
>>> view = ex.set_interventions(vector="cheese")
>>> view.edited_field is not None, view.mouse_probs.shape
(True, (5,))
>>> ex = Explorer(model, state, progressive=True)
>>> view = ex.place_cheese((0, 2))        # at once: the mouse's probabilities, the activation map
>>> while not view.complete:
...     view = ex.refine(max_cells=16)    # 16 more field cells, nearest to the cheese first
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import torch

from mazeinterp.runtime.defaults import (
    CHEESE_VECTOR_COEFFICIENT,
    DEFAULT_STEERING_HOOK,
    FORWARD_BATCH_SIZE,
    RETARGET_VALUE,
)
from mazeinterp.core.finite import check_logits, finite_number
from mazeinterp.core.hook_points import check_layer
from mazeinterp.runtime.limits import check_forward_batch
from mazeinterp.core.hooks import activations, can_forward_from, forward_from, run_batched_with_cache
from mazeinterp.core.interventions import AddVector, Intervention, ZeroAblate, validate_interventions
from mazeinterp.maze.grid import Cell
from mazeinterp.core.model import MOVES, ImpalaPolicy, move_probs
from mazeinterp.analysis.steering import cheese_vector, retarget, top_right_vector
from mazeinterp.analysis.vfield import VectorField, field_cells, field_difference, move_probs_for_states

if TYPE_CHECKING:
    from mazeinterp.core.hooks import ActivationCache
    from mazeinterp.maze.state import MazeState

__all__ = ["CLICK_MODES", "DEFAULT_CHUNK_CELLS", "MIN_FIELD_BATCH", "Explorer", "ExplorerView", "InterventionSettings"]

CLICK_MODES = ("cheese", "mouse", "wall", "clamp")
"""What a click on a cell does: move the cheese, move the mouse, toggle a wall, choose the clamped cell."""

DEFAULT_CHUNK_CELLS = 16
"""Field cells per step of :meth:`Explorer.refine` (about 0.4 s at scale 4 on one CPU thread)."""

MIN_FIELD_BATCH = 8
"""Fewest rows in a forward pass of field cells (see :func:`_field_batches`)."""

T = TypeVar("T")


@dataclass(frozen=True)
class InterventionSettings:
    """The explorer's interventions, all at one hook point; applied in the order ablate, add, clamp."""

    hook: str = DEFAULT_STEERING_HOOK
    """Hook point of every intervention (a (C, H, W) map)."""
    ablate: tuple[int, ...] = ()
    """Channels set to zero (:class:`~mazeinterp.core.interventions.ZeroAblate`); empty = none."""
    vector: Literal["cheese", "top_right"] | None = None
    """Add this maze's cheese vector or top-right vector (:mod:`mazeinterp.analysis.steering`); None = none."""
    coefficient: float = CHEESE_VECTOR_COEFFICIENT
    """Coefficient of the added vector (−1 removes what the cheese adds)."""
    clamp_channel: int | None = None
    """Channel clamped at :attr:`clamp_cell` (:func:`mazeinterp.analysis.steering.retarget`); None = no clamp."""
    clamp_cell: Cell | None = None
    """Maze cell whose activation pixel is clamped; None = no clamp."""
    clamp_value: float = RETARGET_VALUE
    """Value the clamped channel is set to."""

    def __post_init__(self) -> None:
        if self.vector not in (None, "cheese", "top_right"):
            raise ValueError(f"vector must be None, 'cheese' or 'top_right', got {self.vector!r}")
        object.__setattr__(self, "ablate", tuple(sorted({int(c) for c in self.ablate})))
        object.__setattr__(self, "coefficient", finite_number(self.coefficient, "coefficient"))
        object.__setattr__(self, "clamp_value", finite_number(self.clamp_value, "clamp_value"))
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
    """What the explorer shows for one maze and one set of interventions, possibly with the fields still partial.

    A view is complete when ``pending`` is empty; until then ``field``,
    ``edited_field`` and ``difference`` hold only the cells computed so far (a
    :class:`~mazeinterp.analysis.vfield.VectorField` of fewer cells, still row-major),
    and :meth:`Explorer.refine` adds the rest.

    Attributes:
        state: the maze, mouse included.
        obs: (64, 64, 3) uint8 observation of ``state``.
        field: the policy's vector field of the maze (:func:`mazeinterp.analysis.vfield.vector_field`), on the cells computed.
        edited_field: the field under ``interventions``, on the cells computed; None without interventions.
        difference: ``edited_field - field`` (:func:`mazeinterp.analysis.vfield.field_difference`) on the cells both
            have; None without.
        mouse_probs: (5,) move probabilities (left, down, up, right, noop) with the mouse where it stands
            (one forward pass).
        edited_mouse_probs: (5,) the same under ``interventions``; None without.
        hook: hook point of the activation map.
        channel: channel of the activation map.
        activation: (H, W) map of ``channel`` at ``hook`` for ``state``, with ``interventions`` applied.
        settings: the intervention settings.
        interventions: the interventions they make (ablate, add, clamp, in that order).
        pending: field cells missing from ``field`` or ``edited_field``, in the order they will be computed
            (nearest to the edited cell first); empty when the view is complete.
        n_cells: number of cells of the whole field (:func:`mazeinterp.analysis.vfield.field_cells`).
        revision: the explorer's edit count when the view was made (:attr:`Explorer.revision`); refining keeps it.
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
    pending: tuple[Cell, ...]
    n_cells: int
    revision: int = 0

    @property
    def complete(self) -> bool:
        """Whether every field cell is computed (no cell pending)."""
        return not self.pending

    @property
    def cells_done(self) -> int:
        """Field cells computed in every field the view shows."""
        return self.n_cells - len(self.pending)


class _Memo:
    """The last ``size`` values made, by key; counts how often it had to make one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.misses = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = make()
        self.misses += 1
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


class _FieldRows:
    """Rows computed so far for the cells of one maze's field: values (k, ...) and which rows are done."""

    def __init__(self, cells: Sequence[Cell]) -> None:
        self.cells = tuple(cells)
        self.index = {cell: i for i, cell in enumerate(self.cells)}
        self.done = np.zeros(len(self.cells), dtype=bool)
        self.rows: Any = None  # np.ndarray or torch.Tensor (k, ...), made by the first fill

    def fill(self, indices: list[int], values: np.ndarray | torch.Tensor) -> None:
        if self.rows is None:
            shape = (len(self.cells), *values.shape[1:])
            if isinstance(values, torch.Tensor):
                self.rows = torch.zeros(shape, dtype=values.dtype)
            else:
                self.rows = np.zeros(shape, values.dtype)
        self.rows[indices] = values
        self.done[indices] = True

    def field(self, state: MazeState, indices: np.ndarray | None = None) -> VectorField:
        """The field of rows ``indices`` (default: every row done), row-major; empty before any row is done."""
        indices = np.flatnonzero(self.done) if indices is None else indices
        probs = self.rows[indices] if self.rows is not None else np.zeros((0, len(MOVES)))
        return VectorField(state, tuple(self.cells[i] for i in indices), probs)


def _maze_key(state: MazeState) -> tuple[bytes, bool]:
    """What the vector fields and steering vectors depend on: walls, cheese, the mouse's drawing (not its cell)."""
    return state.world.tobytes(), state.mouse_reflected


def _field_batches(indices: Sequence[int], n: int, batch_size: int) -> list[list[int]]:
    """Forward passes (lists of row indices) that compute rows ``indices`` of an ``n``-cell field exactly as
    one call with ``batch_size`` does.

    The CPU backends pick another code path for a batch of a few rows (fewer
    than four here), whose results differ in the last bit; otherwise a row's
    numbers do not depend on the batch. So a pass gets at least
    :data:`MIN_FIELD_BATCH` rows (padded by repeating its own rows at the end),
    except that a one-call batch smaller than that (the last one) is run as it is.
    """
    groups = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    small = [g for g in groups if len(g) < MIN_FIELD_BATCH]
    in_small = {i for g in small for i in g}
    wanted = set(indices)
    batches = [g for g in small if wanted.intersection(g)]
    rest = [i for i in indices if i not in in_small]
    for start in range(0, len(rest), batch_size):
        batch = rest[start : start + batch_size]
        batches.append(batch + [batch[j % len(batch)] for j in range(MIN_FIELD_BATCH - len(batch))])
    return batches


def _nearest_first(cells: Sequence[Cell], focus: Cell) -> tuple[Cell, ...]:
    """``cells`` by distance to ``focus`` (ties row-major)."""
    return tuple(sorted(cells, key=lambda c: ((c[0] - focus[0]) ** 2 + (c[1] - focus[1]) ** 2, c)))


class Explorer:
    """A policy on one maze, with interventions; each edit returns the new :class:`ExplorerView`.

    Edits that fail (a wall on the mouse, a channel out of range, a cheese vector
    without cheese) raise ValueError (KeyError for an unknown hook point) and
    leave the explorer as it was.

    A vector field costs a forward pass per open cell, too much to answer an
    edit of a large maze at once on a CPU. With ``progressive=True`` an edit
    returns a first view at once: the maze, the move probabilities at the mouse,
    the activation map, and the fields' cells already known (cached from an
    earlier visit of the same maze and settings); :meth:`refine` then computes
    the missing cells a chunk at a time, nearest to the edited cell first,
    each call returning a more complete view, until the fields equal what one
    call of :func:`~mazeinterp.analysis.vfield.vector_field` gives. A newer edit drops
    the pending work of older ones (what they computed stays cached). With
    ``progressive=False`` (the default) every edit refines to completion before
    it returns. The methods hold a lock, so one thread may refine while another
    edits.

    Args:
        policy: the policy (any scale).
        state: the maze to start from (the mouse is kept where it stands).
        hook: hook point of the activation map (a (C, H, W) map).
        channel: channel of the activation map.
        settings: initial interventions (default: none).
        batch_size: field states per forward pass.
        progressive: edits return the first view (see above) instead of the complete one.

    Attribute ``revision`` counts the edits (each edit's views carry it);
    ``plain_cells``, ``edited_cells`` and ``forward_passes`` count
    the field cells computed for plain fields and for edited fields, and the
    single-state forward passes (to see what an edit cost).

    >>> ex = Explorer(policy, state, progressive=True)        # doctest: +SKIP
    >>> view = ex.place_cheese((0, 2))                         # doctest: +SKIP
    >>> view.cells_done, view.n_cells                          # doctest: +SKIP
    (0, 96)
    >>> view = ex.finish()                                     # doctest: +SKIP
    """

    def __init__(self, policy: ImpalaPolicy, state: MazeState, *, hook: str = DEFAULT_STEERING_HOOK,
                 channel: int = 0, settings: InterventionSettings | None = None,
                 batch_size: int = FORWARD_BATCH_SIZE, progressive: bool = False) -> None:
        check_forward_batch(batch_size, policy.hook_points(), "Explorer")
        self.policy = policy
        self.batch_size = batch_size
        self.progressive = progressive
        self._lock = threading.RLock()
        self._plain = _Memo(4)  # maze → _FieldRows of plain move probabilities
        self._prefixes = _Memo(2)  # (maze, hook) → _FieldRows of activations at hook
        self._edited = _Memo(8)  # (maze, settings) → _FieldRows of edited move probabilities
        self._vectors = _Memo(8)  # (maze, kind, hook) → steering vector
        self._passes = _Memo(8)  # (state, settings or None) → (move probabilities (5,), activation cache)
        self._obs = _Memo(8)  # state → observation
        self.plain_cells = 0
        self.edited_cells = 0
        self.state = state.with_mouse(state.mouse)  # the mouse at its cell's centre, as every edit puts it
        self.hook = hook
        self.channel = int(channel)
        self.settings = settings or InterventionSettings()
        self.focus: Cell = self.state.mouse
        self.revision = 0
        self._listeners: list[Callable[[ExplorerView, bool], None]] = []
        self.view = self._first_view(self.state, self.settings, self.hook, self.channel, self.focus)
        if not progressive:
            self.view = self._refine(max(1, len(self.view.pending)))

    # ------------------------------------------------------------------ counters

    @property
    def forward_passes(self) -> int:
        """Single-state forward passes computed (move probabilities at the mouse, activation maps)."""
        return self._passes.misses

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: Callable[[ExplorerView, bool], None]) -> None:
        """Call ``listener(view, edited)`` after each change of :attr:`view`: ``edited`` is True for an edit,
        False for a refinement. It runs in the changing thread, after the explorer's lock is released."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[ExplorerView, bool], None]) -> None:
        """Stop calling ``listener`` (added by :meth:`add_listener`); a listener not added is ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, view: ExplorerView, edited: bool) -> ExplorerView:
        for listener in tuple(self._listeners):
            listener(view, edited)
        return view

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
            return self._edit(lambda: dict(settings=replace(self.settings, clamp_cell=cell), focus=cell))
        raise ValueError(f"unknown click mode {mode!r}; choose from {', '.join(CLICK_MODES)}")

    def place_cheese(self, cell: Cell) -> ExplorerView:
        """Move the cheese to ``cell`` (an open cell without the mouse)."""
        return self._edit(lambda: dict(state=self.state.with_cheese(cell), focus=cell))

    def place_mouse(self, cell: Cell) -> ExplorerView:
        """Move the mouse to ``cell`` (an open cell without the cheese)."""
        return self._edit(lambda: dict(state=self.state.with_mouse(cell), focus=cell))

    def toggle_wall(self, cell: Cell) -> ExplorerView:
        """Turn the wall at ``cell`` into an open cell, or the open cell into a wall."""

        def changes() -> dict[str, Any]:
            state, inner = self.state, _inside(cell, self.state.maze_size)
            toggled = state.with_open(inner) if not state.open_cells[inner] else state.with_wall(inner)
            return dict(state=toggled, focus=inner)

        return self._edit(changes)

    def show(self, hook: str | None = None, channel: int | None = None) -> ExplorerView:
        """Show the activation map of ``channel`` at ``hook`` (either kept when None)."""
        return self._edit(lambda: dict(hook=self.hook if hook is None else hook,
                                        channel=self.channel if channel is None else int(channel)))

    def set_interventions(self, **changes: Any) -> ExplorerView:
        """Change fields of :class:`InterventionSettings` (``ablate=(3, 7)``, ``vector="cheese"``, …)."""
        return self._edit(lambda: dict(settings=replace(self.settings, **changes)))

    def _edit(self, changes: Callable[[], dict[str, Any]]) -> ExplorerView:
        """Commit the ``_commit`` arguments that ``changes()`` gives (made under the lock); tell the listeners."""
        with self._lock:
            view = self._commit(**changes())
        return self._notify(view, True)

    def _commit(self, *, state: MazeState | None = None, settings: InterventionSettings | None = None,
                hook: str | None = None, channel: int | None = None, focus: Cell | None = None) -> ExplorerView:
        state = self.state if state is None else state
        settings = self.settings if settings is None else settings
        hook = self.hook if hook is None else hook
        channel = self.channel if channel is None else channel
        focus = state.mouse if focus is None else focus
        # raises before anything is replaced
        view = self._first_view(state, settings, hook, channel, focus, revision=self.revision + 1)
        self.state, self.settings, self.hook, self.channel, self.focus = state, settings, hook, channel, focus
        self.revision, self.view = view.revision, view
        return view if self.progressive else self._refine(max(1, len(view.pending)))

    # ------------------------------------------------------------------ refining the fields

    def pending(self) -> int:
        """Field cells the current view still misses (0 when it is complete)."""
        with self._lock:
            return len(self.view.pending)

    def refine(self, max_cells: int = DEFAULT_CHUNK_CELLS) -> ExplorerView:
        """Compute up to ``max_cells`` pending cells of the current view's fields (nearest first); → the new view.

        Returns the current view unchanged when it is complete.
        """
        if max_cells < 1:
            raise ValueError(f"max_cells must be at least 1, got {max_cells}")
        with self._lock:
            before = self.view
            view = self._refine(max_cells)
        return view if view is before else self._notify(view, False)

    def finish(self) -> ExplorerView:
        """Refine the current view to completion; → the complete view."""
        with self._lock:
            before = self.view
            view = self._refine(max(1, len(before.pending)))
        return view if view is before else self._notify(view, False)

    def _refine(self, max_cells: int) -> ExplorerView:
        """:meth:`refine` with the lock held and no listener told."""
        view = self.view
        if view.complete:
            return view
        self._compute(view.state, view.settings, view.interventions, view.pending[:max_cells])
        self.view = replace(view, **self._fields(view.state, view.settings, view.interventions, self.focus))
        return self.view

    # ------------------------------------------------------------------ computing a view

    def interventions(self, state: MazeState, settings: InterventionSettings) -> tuple[Intervention, ...]:
        """The interventions that ``settings`` make on ``state``'s maze, validated against the policy.

        Validated once, here: the result (a
        :class:`~mazeinterp.core.interventions.ValidatedInterventions`) is what the passes receive.
        """
        hook = settings.hook
        ivs: list[Intervention] = []
        if settings.ablate:
            ivs.append(ZeroAblate(hook, channels=settings.ablate))
        if settings.vector is not None:
            ivs.append(AddVector(hook, self._vector(state, settings.vector, hook), settings.coefficient))
        if settings.clamps:
            ivs.append(retarget([settings.clamp_channel], settings.clamp_cell, state.maze_size,  # type: ignore[list-item, arg-type]
                                settings.clamp_value, hook))
        return validate_interventions(self.policy, ivs)

    def _first_view(self, state: MazeState, settings: InterventionSettings, hook: str, channel: int,
                    focus: Cell, revision: int = 0) -> ExplorerView:
        """The view of everything but the missing field cells: two forward passes at most, and the caches."""
        check_layer(self.policy.hook_points(), hook, [channel], need_map=True)
        self._map_shape(settings.hook)
        ivs = self.interventions(state, settings)
        plain_probs, plain_cache = self._single_pass(state, None, ())
        edited_probs, cache = self._single_pass(state, settings, ivs) if ivs else (None, plain_cache)
        return ExplorerView(
            state=state, obs=self._obs.get(state.to_bytes(), lambda: _render(state)),
            mouse_probs=plain_probs, edited_mouse_probs=edited_probs,
            hook=hook, channel=channel, activation=cache[hook][0, channel].numpy().astype(np.float64),
            settings=settings, interventions=ivs, revision=revision, **self._fields(state, settings, ivs, focus),
        )

    def _fields(self, state: MazeState, settings: InterventionSettings, ivs: Sequence[Intervention],
                focus: Cell) -> dict[str, Any]:
        """The view's fields as computed so far, and the cells pending: ExplorerView keyword arguments."""
        plain = self._plain_rows(state)
        field = plain.field(state)
        missing = ~plain.done
        edited_field = difference = None
        if ivs:
            edited = self._edited_rows(state, settings)
            edited_field = edited.field(state)
            missing |= ~edited.done
            both = np.flatnonzero(plain.done & edited.done)
            difference = field_difference(plain.field(state, both), edited.field(state, both))
        pending = _nearest_first([plain.cells[i] for i in np.flatnonzero(missing)], focus)
        return dict(field=field, edited_field=edited_field, difference=difference, pending=pending,
                    n_cells=len(plain.cells))

    def _plain_rows(self, state: MazeState) -> _FieldRows:
        return self._plain.get(_maze_key(state), lambda: _FieldRows(field_cells(state)))

    def _edited_rows(self, state: MazeState, settings: InterventionSettings) -> _FieldRows:
        return self._edited.get((_maze_key(state), settings), lambda: _FieldRows(field_cells(state)))

    def _compute(self, state: MazeState, settings: InterventionSettings, ivs: Sequence[Intervention],
                 cells: Sequence[Cell]) -> None:
        """Compute the plain and edited field rows of ``cells`` that are missing, in padded batches."""
        plain = self._plain_rows(state)
        n = len(plain.cells)

        def moved(batch: list[int]) -> list[MazeState]:
            return [state.with_mouse(plain.cells[i]) for i in batch]

        wanted = [plain.index[cell] for cell in cells]
        hook = settings.hook
        resumable = can_forward_from(hook)
        # the plain pass keeps the activations an intervention at settings.hook starts from,
        # so that an intervention on this maze runs only the rest of the network
        prefix = self._prefixes.get((_maze_key(state), hook), lambda: _FieldRows(plain.cells)) if resumable else None
        for batch in _field_batches([i for i in wanted if not plain.done[i]], n, self.batch_size):
            outputs, cache = run_batched_with_cache(self.policy, moved(batch), [hook] if resumable else [],
                                                    batch_size=len(batch), progress=False)
            assert outputs is not None
            rows = list(dict.fromkeys(batch))  # the padding repeats rows at the end
            logits = check_logits(outputs[0][: len(rows)], self.policy)
            plain.fill(rows, move_probs(logits).double().numpy())
            if prefix is not None:
                prefix.fill(rows, cache[hook][: len(rows)])
            self.plain_cells += len(rows)
        if not ivs:
            return
        edited = self._edited_rows(state, settings)
        todo = [i for i in wanted if not edited.done[i]]
        if prefix is None:
            for batch in _field_batches(todo, n, self.batch_size):
                rows = list(dict.fromkeys(batch))
                probs = move_probs_for_states(self.policy, moved(batch), ivs, batch_size=len(batch),
                                              progress=False)
                edited.fill(rows, probs[: len(rows)])
                self.edited_cells += len(rows)
            return
        for batch in _field_batches([i for i in todo if not prefix.done[i]], n, self.batch_size):
            rows = list(dict.fromkeys(batch))
            acts = activations(self.policy, hook, moved(batch), batch_size=len(batch), progress=False)
            prefix.fill(rows, acts[: len(rows)])
        for batch in _field_batches(todo, n, self.batch_size):
            rows = list(dict.fromkeys(batch))
            acts = prefix.rows[batch]
            for iv in ivs:
                acts = iv(acts)
            with torch.inference_mode():
                logits, _ = forward_from(self.policy, hook, acts)
            logits = check_logits(logits[: len(rows)], self.policy, ivs)
            edited.fill(rows, move_probs(logits).double().cpu().numpy())
            self.edited_cells += len(rows)

    def _single_pass(self, state: MazeState, settings: InterventionSettings | None,
                     ivs: Sequence[Intervention]) -> tuple[np.ndarray, ActivationCache]:
        """Move probabilities (5,) at the mouse and every activation, for ``state`` under ``ivs``."""

        def compute() -> tuple[np.ndarray, ActivationCache]:
            outputs, cache = run_batched_with_cache(self.policy, [state], None, interventions=ivs, progress=False)
            assert outputs is not None
            return move_probs(check_logits(outputs[0], self.policy, ivs)).double().numpy()[0], cache

        return self._passes.get((state.to_bytes(), settings), compute)

    def _map_shape(self, hook: str) -> tuple[int, ...]:
        return check_layer(self.policy.hook_points(), hook, need_map=True)[0]

    def _vector(self, state: MazeState, kind: str, hook: str) -> torch.Tensor:
        if kind == "cheese" and state.cheese is None:
            raise ValueError("the cheese vector needs a maze with its cheese")
        make = cheese_vector if kind == "cheese" else top_right_vector
        return self._vectors.get((_maze_key(state), kind, hook), lambda: make(self.policy, state, hook))



def _render(state: MazeState) -> np.ndarray:
    from mazeinterp.core.hooks import render_states

    return render_states([state])[0]


def _inside(cell: Cell, n: int) -> Cell:
    row, col = int(cell[0]), int(cell[1])
    if not (0 <= row < n and 0 <= col < n):
        raise ValueError(f"cell {(row, col)} is outside the {n}×{n} inner maze")
    return row, col
