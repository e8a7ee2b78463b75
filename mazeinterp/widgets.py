"""An interactive explorer of a policy on one maze, for Jupyter (needs the ``widgets`` extra: ipywidgets).

Click a cell to place the cheese or the mouse, or to toggle a wall; choose a
hook point and channel to watch; ablate channels, add the cheese or top-right
vector with a coefficient, or clamp a channel at a clicked cell. The display
shows the maze with the policy's vector field, the field under the
interventions and its difference, the move probabilities at the mouse, and the
chosen channel's activation map.

Two layers:

* :class:`~mazeinterp.explorer.Explorer` (in :mod:`mazeinterp.explorer`, importable
  from here) -- the policy, the current maze and the intervention settings;
  every edit returns an :class:`~mazeinterp.explorer.ExplorerView`, the numbers
  the display shows, and what an edit does not change is cached. It needs no
  ipywidgets, so scripts and tests drive it directly.
* :class:`ExplorerWidget` (:func:`explore`) -- the pictures and tables of a view
  and ipywidgets controls wired to an :class:`Explorer`; each control's handler
  is a method of the widget. An edit shows the maze, the move probabilities at
  the mouse and the activation map at once; a background thread then fills in
  the vector fields a chunk of cells at a time (``field: 120/336 cells`` while
  partial) and redraws, and a newer edit restarts it. ``close()`` stops it.

>>> widget = explore(policy, state)          # in a notebook cell: shows the explorer   # doctest: +SKIP
>>> widget                                                                              # doctest: +SKIP
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mazeinterp.explorer import CLICK_MODES, DEFAULT_CHUNK_CELLS, Explorer, ExplorerView, InterventionSettings
from mazeinterp.maze.grid import Cell
from mazeinterp.model import MOVES, ImpalaPolicy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mazeinterp.maze.state import MazeState
    from mazeinterp.vfield import VectorField

__all__ = ["CLICK_MODES", "Explorer", "ExplorerView", "ExplorerWidget", "InterventionSettings", "draw_explorer",
           "explore", "figure_png", "probability_table", "progress_label", "settings_label"]


# ---------------------------------------------------------------------- pictures and tables


def probability_table(view: ExplorerView) -> str:
    """HTML table of the move probabilities at the mouse: policy, and under the interventions with the change."""
    head = "".join(f"<th>{m}</th>" for m in MOVES)
    rows = [("policy", view.mouse_probs)]
    if view.edited_mouse_probs is not None:
        rows += [("edited", view.edited_mouse_probs), ("change", view.edited_mouse_probs - view.mouse_probs)]
    body = "".join(
        f"<tr><td>{name}</td>" + "".join(f"<td>{p:+.3f}</td>" if name == "change" else f"<td>{p:.3f}</td>"
                                         for p in probs) + "</tr>"
        for name, probs in rows
    )
    cell = view.state.mouse
    return (f"<b>move probabilities with the mouse at {html.escape(str(cell))}</b>"
            f"<table><tr><th></th>{head}</tr>{body}</table>")


def draw_explorer(view: ExplorerView, size: float = 3.6) -> Figure:
    """The explorer's figure: the field, the edited field, their difference, the activation map (2 × 2).

    Fields still partial (:attr:`ExplorerView.pending`) have arrows on their computed cells only, and their
    titles say how many cells that is.
    """
    from mazeinterp.plots import (
        cell_centre_xy,
        crop_to_maze,
        draw_channel_heatmap,
        draw_field_difference,
        draw_maze,
        draw_vector_field,
        new_figure,
    )

    fig, axes = new_figure(ncols=2, nrows=2, size=size)
    paths = _paths_drawable(view.state)
    draw_vector_field(axes[0, 0], view.field, view.obs, paths=paths, title="policy" + _cells_note(view.field, view))
    if view.edited_field is None:
        draw_maze(axes[0, 1], view.state, view.obs, paths=paths, title="no intervention")
        draw_maze(axes[1, 0], view.state, view.obs, paths=False, title="no difference")
    else:
        draw_vector_field(axes[0, 1], view.edited_field, view.obs, color="darkviolet", paths=paths,
                          title=settings_label(view.settings) + _cells_note(view.edited_field, view))
        draw_field_difference(axes[1, 0], view.difference, view.obs,  # type: ignore[arg-type]
                              title="edited − policy" + _cells_note(view.difference, view))
    for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
        crop_to_maze(ax, view.state.maze_size)
    res = view.activation.shape[0]
    draw_channel_heatmap(axes[1, 1], view.state, view.activation, view.obs,
                         title=f"{view.hook}\nchannel {view.channel} ({res}×{res})")
    if view.settings.clamps:
        xy = cell_centre_xy([view.settings.clamp_cell], view.state.maze_size)  # type: ignore[list-item]
        for ax in (axes[0, 1], axes[1, 1]):
            ax.scatter(*xy.T, marker="x", s=60, color="red", zorder=5)
    fig.tight_layout()
    return fig


def _cells_note(field: VectorField | None, view: ExplorerView) -> str:
    """`` (120/336 cells)`` for a field that misses cells, else nothing."""
    return "" if field is None or len(field) == view.n_cells else f" ({len(field)}/{view.n_cells} cells)"


def progress_label(view: ExplorerView) -> str:
    """How much of the view's vector fields is computed, e.g. ``field: 120/336 cells (computing)``."""
    return f"field: {view.cells_done}/{view.n_cells} cells" + ("" if view.complete else " (computing)")


def _paths_drawable(state: MazeState) -> bool:
    """Whether the start, the cheese and the top-right cell are connected (else paths cannot be drawn)."""
    from mazeinterp.maze.grid import path_to_cheese, path_to_top_right

    try:
        path_to_top_right(state.open_cells)
        if state.cheese is not None:
            path_to_cheese(state.open_cells, state.cheese)
    except ValueError:
        return False
    return True


def settings_label(settings: InterventionSettings) -> str:
    """A short description of the interventions, e.g. ``"cheese vector ×-1; ablate [3, 7]"``."""
    parts = []
    if settings.vector is not None:
        parts.append(f"{settings.vector.replace('_', '-')} vector ×{settings.coefficient:g}")
    if settings.ablate:
        parts.append(f"ablate {list(settings.ablate)}")
    if settings.clamps:
        parts.append(f"clamp {settings.clamp_channel} at {settings.clamp_cell} = {settings.clamp_value:g}")
    return "; ".join(parts) or "no intervention"


def figure_png(fig: Figure, dpi: int = 72) -> bytes:
    """PNG bytes of ``fig``, which is closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


# ---------------------------------------------------------------------- the widget

_COLOURS = {"wall": "#8c7350", "open": "#262626", "cheese": "#f2c200", "mouse": "#d9d9d9", "clamp": "#d62728"}


def _parse_channels(text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"channels must be integers separated by commas or spaces, got {text!r}") from None


class ExplorerWidget:
    """ipywidgets controls and pictures wired to an :class:`Explorer`.

    A grid of cell buttons (click: see ``mode``), a picture of
    :func:`draw_explorer`, the :func:`probability_table`, and controls: the
    watched hook point and channel, the intervention hook point, zero-ablated
    channels, the added vector and its coefficient, the clamped channel and its
    value (the clamped cell is clicked in ``clamp`` mode). Errors show in the
    status line and change nothing. Display it as the last expression of a cell.

    With a progressive explorer (``Explorer(..., progressive=True)``, as
    :func:`explore` makes) the vector fields are filled in after each edit:
    with ``background=True`` by a thread of the widget, ``chunk_cells`` cells
    per :meth:`Explorer.refine` step, redrawing the picture at most every
    ``redraw_s`` seconds and when complete, and restarted by each edit; with
    ``background=False`` each handler refines to completion before it returns
    (for scripts and tests). :meth:`close` stops the thread.

    Attributes (the controls, for scripting): ``mode``, ``cells`` (rows of
    buttons), ``hook``, ``channel``, ``iv_hook``, ``ablate``, ``vector``,
    ``coefficient``, ``clamp_channel``, ``clamp_value``, ``clear_clamp``;
    outputs ``picture`` (PNG), ``probabilities`` (HTML), ``progress`` (HTML,
    :func:`progress_label`), ``status`` (HTML); ``shown``, the view the
    picture shows.
    """

    def __init__(self, explorer: Explorer, *, dpi: int = 72, cell_px: int = 16, background: bool = True,
                 chunk_cells: int = DEFAULT_CHUNK_CELLS, redraw_s: float = 1.0) -> None:
        import ipywidgets as w

        self.explorer = explorer
        self.dpi = dpi
        self.background = background
        self.chunk_cells = chunk_cells
        self.redraw_s = redraw_s
        self.shown: ExplorerView | None = None
        ex = explorer
        maps = [name for name, shape in ex.policy.hook_points().items() if len(shape) == 3]
        n = ex.state.maze_size
        self.mode = w.ToggleButtons(options=list(CLICK_MODES), value="cheese", description="click sets")
        square = w.Layout(width=f"{cell_px}px", height=f"{cell_px}px", padding="0", margin="0")
        self.cells = [[w.Button(layout=square, tooltip=str((r, c))) for c in range(n)] for r in range(n)]
        for r, row in enumerate(self.cells):
            for c, button in enumerate(row):
                button.on_click(lambda _button, cell=(r, c): self.on_cell(cell))
        board = w.GridBox([b for row in self.cells for b in row],
                          layout=w.Layout(grid_template_columns=f"repeat({n}, {cell_px}px)", grid_gap="1px"))
        self.hook = w.Dropdown(options=maps, value=ex.hook, description="watch")
        self.channel = w.BoundedIntText(value=ex.channel, min=0, max=ex.policy.hook_points()[ex.hook][0] - 1,
                                        description="channel")
        s = ex.settings
        self.iv_hook = w.Dropdown(options=maps, value=s.hook, description="intervene at")
        self.ablate = w.Text(value=" ".join(map(str, s.ablate)), description="zero-ablate",
                             placeholder="channels, e.g. 3 7", continuous_update=False)
        self.vector = w.Dropdown(options=[("none", None), ("cheese vector", "cheese"), ("top-right vector", "top_right")],
                                 value=s.vector, description="add")
        self.coefficient = w.FloatSlider(value=s.coefficient, min=-3.0, max=3.0, step=0.1, description="coefficient",
                                         continuous_update=False)
        self.clamp_channel = w.Text(value="" if s.clamp_channel is None else str(s.clamp_channel),
                                    description="clamp channel", placeholder="channel", continuous_update=False)
        self.clamp_value = w.FloatText(value=s.clamp_value, description="clamp value")
        self.clear_clamp = w.Button(description="clear clamp")
        self.picture = w.Image(format="png")
        self.probabilities = w.HTML()
        self.progress = w.HTML()
        self.status = w.HTML()
        self._syncing = False
        # the background worker: each edit bumps the generation; the worker shows only the newest one's views
        self._cond = threading.Condition()
        self._generation = 0
        self._finished = -1  # generation whose complete view is shown
        self._failed = -1  # generation whose refinement raised
        self._closed = False
        self._worker: threading.Thread | None = None

        self.hook.observe(self.on_hook, names="value")
        self.channel.observe(self.on_channel, names="value")
        self.iv_hook.observe(lambda change: self._edit(lambda: ex.set_interventions(hook=change["new"])), names="value")
        self.ablate.observe(self.on_ablate, names="value")
        self.vector.observe(lambda change: self._edit(lambda: ex.set_interventions(vector=change["new"])),
                            names="value")
        self.coefficient.observe(
            lambda change: self._edit(lambda: ex.set_interventions(coefficient=change["new"])), names="value")
        self.clamp_channel.observe(self.on_clamp_channel, names="value")
        self.clamp_value.observe(
            lambda change: self._edit(lambda: ex.set_interventions(clamp_value=change["new"])), names="value")
        self.clear_clamp.on_click(lambda _b: self._edit(lambda: ex.set_interventions(clamp_cell=None)))

        controls = w.VBox([self.mode, w.HBox([self.hook, self.channel]), self.iv_hook, self.ablate,
                           w.HBox([self.vector, self.coefficient]),
                           w.HBox([self.clamp_channel, self.clamp_value, self.clear_clamp]),
                           w.HBox([self.progress, self.status])])
        self.root = w.VBox([controls, w.HBox([w.VBox([board, self.probabilities]), self.picture])])
        if background:
            self._worker = threading.Thread(target=self._work, name="explorer-refine", daemon=True)
            self._worker.start()
        self._refresh()

    # ------------------------------------------------------------------ handlers

    def on_cell(self, cell: Cell) -> None:
        """A click on ``cell``: what it does depends on ``mode``."""
        self._edit(lambda: self.explorer.click(cell, self.mode.value))

    def on_hook(self, change: dict[str, Any]) -> None:
        """A new watched hook point: keep the channel if the new layer has it, else show channel 0."""
        size = self.explorer.policy.hook_points()[change["new"]][0]
        channel = self.explorer.channel if self.explorer.channel < size else 0
        self._edit(lambda: self.explorer.show(change["new"], channel))
        self._syncing = True  # the channel box follows the explorer without a second edit
        try:
            self.channel.value = self.explorer.channel
            self.channel.max = self.explorer.policy.hook_points()[self.explorer.hook][0] - 1
        finally:
            self._syncing = False

    def on_channel(self, change: dict[str, Any]) -> None:
        """A new watched channel."""
        if not self._syncing:
            self._edit(lambda: self.explorer.show(channel=change["new"]))

    def on_ablate(self, change: dict[str, Any]) -> None:
        """New zero-ablated channels, typed as integers."""
        self._edit(lambda: self.explorer.set_interventions(ablate=_parse_channels(change["new"])))

    def on_clamp_channel(self, change: dict[str, Any]) -> None:
        """A new clamped channel (empty: no clamp)."""
        text = change["new"].strip()

        def edit() -> ExplorerView:
            channels = _parse_channels(text)
            if len(channels) > 1:
                raise ValueError(f"clamp one channel at a time, got {text!r}")
            return self.explorer.set_interventions(clamp_channel=channels[0] if channels else None)

        self._edit(edit)

    # ------------------------------------------------------------------ display

    def _edit(self, edit: Callable[[], ExplorerView]) -> None:
        try:
            edit()
        except (ValueError, KeyError) as exc:
            message = exc.args[0] if exc.args else type(exc).__name__
            self.status.value = f"<span style='color:#c00'>{html.escape(str(message))}</span>"
            return
        self.status.value = ""
        self._refresh()

    def _refresh(self) -> None:
        """Show the explorer's view: the board and table now; the fields now (synchronous) or by the worker."""
        if not self.background:
            view = self.explorer.finish()
            self._show_board(view)
            self._show_fields(view, figure_png(draw_explorer(view), dpi=self.dpi))
            return
        with self._cond:
            self._generation += 1
            self._show_board(self.explorer.view)
            self._cond.notify_all()

    def _show_board(self, view: ExplorerView) -> None:
        state, settings = view.state, view.settings
        open_cells, cheese, mouse = state.open_cells, state.cheese, state.mouse
        for r, row in enumerate(self.cells):
            for c, button in enumerate(row):
                cell = (r, c)
                kind = ("cheese" if cell == cheese else "mouse" if cell == mouse
                        else "clamp" if settings.clamps and cell == settings.clamp_cell
                        else "open" if open_cells[cell] else "wall")
                button.style.button_color = _COLOURS[kind]
        self.probabilities.value = probability_table(view)
        self.progress.value = progress_label(view)

    def _show_fields(self, view: ExplorerView, png: bytes | None) -> None:
        self.progress.value = progress_label(view)
        if png is not None:
            self.picture.value = png
            self.shown = view

    # ------------------------------------------------------------------ the background worker

    def _work(self) -> None:
        """Draw each edit's first view, then refine and redraw until complete; wait for the next edit."""
        drawn, last_draw = 0, 0.0  # the generation whose first view is drawn, and when a picture was drawn
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._generation != drawn
                                    or (self._failed != self._generation and self.explorer.pending() > 0))
                if self._closed:
                    return
                generation = self._generation
            fresh, drawn = generation != drawn, generation
            try:
                view = self.explorer.view if fresh else self.explorer.refine(self.chunk_cells)
                redraw = fresh or view.complete or time.monotonic() - last_draw >= self.redraw_s
                png = figure_png(draw_explorer(view), dpi=self.dpi) if redraw else None
            except Exception as exc:  # noqa: BLE001 -- shown to the user; the next edit starts afresh
                with self._cond:
                    self._failed = generation
                    self.status.value = f"<span style='color:#c00'>{html.escape(repr(exc))}</span>"
                continue
            if redraw:
                last_draw = time.monotonic()
            with self._cond:
                if generation == self._generation and view is self.explorer.view:  # else a newer edit came
                    self._show_fields(view, png)
                    if view.complete and png is not None:
                        self._finished = generation
                        self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background worker shows the complete view of the last edit; → whether it does.

        Returns at once without a worker (``background=False``), whose handlers finish before they return.
        """
        with self._cond:
            return self._worker is None or self._cond.wait_for(
                lambda: self._finished == self._generation or self._closed, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background worker (waiting up to ``timeout`` s for its current step) and close the controls."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
        self.root.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.root._repr_mimebundle_(**kwargs)


def explore(policy: ImpalaPolicy, state: MazeState, *, background: bool = True, **options: Any) -> ExplorerWidget:
    """An :class:`ExplorerWidget` of ``policy`` on a progressive :class:`Explorer` of ``state``.

    ``background``: fill in the vector fields in a thread (see :class:`ExplorerWidget`); ``options`` go to
    :class:`Explorer`.
    """
    return ExplorerWidget(Explorer(policy, state, progressive=True, **options), background=background)
