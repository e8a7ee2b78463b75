"""An interactive explorer of a policy on one maze, for Jupyter (needs the ``widgets`` extra: ipywidgets).

Click a cell to place the cheese or the mouse, or to toggle a wall; choose a
hook point and channel to watch; ablate channels, add the cheese or top-right
vector with a coefficient, or clamp a channel at a clicked cell. The display
shows the maze with the policy's vector field, the field under the
interventions and its difference, the move probabilities at the mouse, and the
chosen channel's activation map.

Two layers:

* :class:`~mazeinterp.viz.explorer.Explorer` (in :mod:`mazeinterp.viz.explorer`, importable
  from here) -- the policy, the current maze and the intervention settings;
  every edit returns an :class:`~mazeinterp.viz.explorer.ExplorerView`, the numbers
  the display shows, and what an edit does not change is cached. It needs no
  ipywidgets, so scripts and tests drive it directly.
* :class:`ExplorerWidget` (:func:`explore`) -- the pictures and tables of a view
  and ipywidgets controls wired to an :class:`Explorer`, which it listens to:
  an edit, from a control or from code calling ``widget.explorer``, shows the
  maze, the move probabilities at the mouse, the activation map and the
  controls' values at once; a background thread then fills in the vector
  fields a chunk of cells at a time (``field: 120/336 cells`` while partial)
  and redraws, always on the explorer's newest view. ``close()`` stops it.

>>> widget = explore(policy, state)          # in a notebook cell: shows the explorer   # doctest: +SKIP
>>> widget                                                                              # doctest: +SKIP
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mazeinterp.viz.explorer import CLICK_MODES, DEFAULT_CHUNK_CELLS, Explorer, ExplorerView, InterventionSettings
from mazeinterp.maze.grid import Cell
from mazeinterp.core.model import MOVES, ImpalaPolicy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mazeinterp.maze.state import MazeState
    from mazeinterp.analysis.vfield import VectorField

__all__ = ["CLICK_MODES", "EXPLORER_FIGURE_INCHES", "PICTURE_DPI", "Explorer", "ExplorerView", "ExplorerWidget",
           "InterventionSettings", "draw_explorer", "explore", "figure_png", "picture_caption", "picture_css_width",
           "probability_table", "progress_label", "settings_label"]


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


EXPLORER_FIGURE_INCHES = 3.6
"""Side of one of the explorer figure's four panels, in inches."""
PICTURE_DPI = 192
"""Pixels per inch of the widget's picture: twice the 96 of a CSS inch, so it stays sharp on a high-density
display (the picture is shown at its size in CSS inches, see :func:`picture_css_width`)."""


def picture_css_width() -> int:
    """CSS pixels the widget gives its picture: the figure's width at 96 per CSS inch, whatever its dpi."""
    return round(2 * EXPLORER_FIGURE_INCHES * 96)


def draw_explorer(view: ExplorerView, size: float = EXPLORER_FIGURE_INCHES) -> Figure:
    """The explorer's figure: the field, the edited field, their difference, the activation map (2 × 2).

    Fields still partial (:attr:`ExplorerView.pending`) have arrows on their computed cells only, and their
    titles say how many cells that is. The figure is not registered with pyplot (``plt.show()`` does not show
    it; ``display(fig)`` or :func:`figure_png` do), so any thread may draw one.
    """
    from matplotlib.figure import Figure

    from mazeinterp.viz.plots import (
        cell_centre_xy,
        crop_to_maze,
        draw_channel_heatmap,
        draw_field_difference,
        draw_maze,
        draw_vector_field,
    )

    # a figure pyplot does not know of: the widget's thread draws it while notebook cells run, and pyplot's
    # figure list is shared (an inline backend shows and closes every figure on it after each cell)
    fig = Figure(figsize=(2 * size, 2 * size))
    axes = fig.subplots(2, 2, squeeze=False)
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


def progress_label(view: ExplorerView, failed: bool = False) -> str:
    """How much of the view's vector fields is computed, e.g. ``field: 120/336 cells (computing)``;
    ``failed``: the computing stopped on an error (shown in the status line)."""
    note = "" if view.complete else " (stopped by an error)" if failed else " (computing)"
    return f"field: {view.cells_done}/{view.n_cells} cells{note}"


def picture_caption(view: ExplorerView) -> str:
    """One line saying what the picture of ``view`` shows, e.g.
    ``"field 30/30 cells; cheese at (0, 6); mouse at (6, 0); cheese vector ×-1"`` (the picture's tooltip)."""
    state = view.state
    cheese = "no cheese" if state.cheese is None else f"cheese at {state.cheese}"
    return (f"field {view.cells_done}/{view.n_cells} cells; {cheese}; mouse at {state.mouse}; "
            f"{settings_label(view.settings)}; {view.hook} channel {view.channel}")


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


def figure_png(fig: Figure, dpi: int = PICTURE_DPI) -> bytes:
    """PNG bytes of ``fig`` at ``dpi`` pixels per inch (default sharp on high-density displays); ``fig`` is closed."""
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
    """ipywidgets controls and pictures wired to an :class:`Explorer`, always showing its current state.

    A grid of cell buttons (click: see ``mode``), a picture of
    :func:`draw_explorer`, the :func:`probability_table`, and controls: the
    watched hook point and channel, the intervention hook point, zero-ablated
    channels, the added vector and its coefficient, the clamped channel and its
    value (the clamped cell is clicked in ``clamp`` mode). Errors show in the
    status line, change nothing and put the control back to the explorer's
    value. Display it as the last expression of a cell.

    The widget listens to its explorer (:meth:`Explorer.add_listener`): an edit
    made by a control or by code calling ``widget.explorer`` directly sets the
    controls, the board and the table to the explorer's state at once, and the
    picture follows. With a progressive explorer (as :func:`explore` makes) the
    vector fields are filled in after each edit: with ``background=True`` by a
    thread of the widget, ``chunk_cells`` cells per :meth:`Explorer.refine`
    step, redrawing the picture at most every ``redraw_s`` seconds and when
    complete, always on the explorer's newest view (it also looks every
    ``poll_s`` seconds, so no missed signal can leave it idle); with
    ``background=False`` each edit refines to completion before it returns
    (for scripts and tests). :meth:`wait` blocks until the picture shows the
    complete current view; :meth:`close` stops the thread.

    Attributes (the controls, for scripting): ``mode``, ``cells`` (rows of
    buttons), ``hook``, ``channel``, ``iv_hook``, ``ablate``, ``vector``,
    ``coefficient``, ``clamp_channel``, ``clamp_value``, ``clear_clamp``;
    outputs ``picture`` (PNG), ``caption`` (HTML, :func:`picture_caption` of
    the picture), ``probabilities`` (HTML), ``progress`` (HTML,
    :func:`progress_label`), ``status`` (HTML); ``shown``, the view the
    picture shows.
    """

    def __init__(self, explorer: Explorer, *, dpi: int = PICTURE_DPI, cell_px: int = 16, background: bool = True,
                 chunk_cells: int = DEFAULT_CHUNK_CELLS, redraw_s: float = 1.0, poll_s: float = 0.5) -> None:
        import ipywidgets as w

        self.explorer = explorer
        self.dpi = dpi
        self.background = background
        self.chunk_cells = chunk_cells
        self.redraw_s = redraw_s
        self.poll_s = poll_s
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
        self.ablate = w.Text(value="", description="zero-ablate", placeholder="channels, e.g. 3 7",
                             continuous_update=False)
        self.vector = w.Dropdown(options=[("none", None), ("cheese vector", "cheese"), ("top-right vector", "top_right")],
                                 value=s.vector, description="add")
        self.coefficient = w.FloatSlider(value=s.coefficient, min=-3.0, max=3.0, step=0.1, description="coefficient",
                                         continuous_update=False)
        self.clamp_channel = w.Text(value="", description="clamp channel", placeholder="channel",
                                    continuous_update=False)
        self.clamp_value = w.FloatText(value=s.clamp_value, description="clamp value")
        self.clear_clamp = w.Button(description="clear clamp")
        # drawn at ``dpi`` but shown at the figure's size in CSS inches: sharp on a high-density display
        self.picture = w.Image(format="png", layout=w.Layout(width=f"{picture_css_width()}px"))
        self.probabilities = w.HTML()
        self.progress = w.HTML()
        self.status = w.HTML()
        self.caption = w.HTML()
        for widget, name in ((self.picture, "picture"), (self.caption, "caption"),
                             (self.probabilities, "probabilities"), (self.progress, "progress"),
                             (self.status, "status")):
            widget.add_class(f"explorer-{name}")  # for styling, and for the browser test to find them
        self._local = threading.local()  # .syncing: this thread is setting the controls, not the user
        # the background worker draws the explorer's newest view; edits and refinements notify it
        self._cond = threading.Condition()
        self._failed: ExplorerView | None = None  # the view whose refinement or drawing raised
        self._closed = False
        self._worker: threading.Thread | None = None

        self.hook.observe(self.on_hook, names="value")
        self.channel.observe(self.on_channel, names="value")
        self.iv_hook.observe(self._on_control(lambda v: ex.set_interventions(hook=v)), names="value")
        self.ablate.observe(self._on_control(lambda v: ex.set_interventions(ablate=_parse_channels(v))),
                            names="value")
        self.vector.observe(self._on_control(lambda v: ex.set_interventions(vector=v)), names="value")
        self.coefficient.observe(self._on_control(lambda v: ex.set_interventions(coefficient=v)), names="value")
        self.clamp_channel.observe(self._on_control(self._set_clamp_channel), names="value")
        self.clamp_value.observe(self._on_control(lambda v: ex.set_interventions(clamp_value=v)), names="value")
        self.clear_clamp.on_click(lambda _b: self._edit(lambda: ex.set_interventions(clamp_cell=None)))

        controls = w.VBox([self.mode, w.HBox([self.hook, self.channel]), self.iv_hook, self.ablate,
                           w.HBox([self.vector, self.coefficient]),
                           w.HBox([self.clamp_channel, self.clamp_value, self.clear_clamp]),
                           w.HBox([self.progress, self.status])])
        self.root = w.VBox([controls, w.HBox([w.VBox([board, self.probabilities]), w.VBox([self.picture, self.caption])])])
        self._sync(ex.view)
        ex.add_listener(self._on_change)
        if background:
            # the first picture now, so that the widget never shows an empty image
            self._show(ex.view, figure_png(draw_explorer(ex.view), dpi=self.dpi))
            self._worker = threading.Thread(target=self._work, name="explorer-refine", daemon=True)
            self._worker.start()
        else:
            self._on_change(ex.view, True)

    # ------------------------------------------------------------------ handlers

    def on_cell(self, cell: Cell) -> None:
        """A click on ``cell``: what it does depends on ``mode``."""
        self._edit(lambda: self.explorer.click(cell, self.mode.value))

    def on_hook(self, change: dict[str, Any]) -> None:
        """A new watched hook point: keep the channel if the new layer has it, else show channel 0."""
        if self._syncing():
            return
        size = self.explorer.policy.hook_points()[change["new"]][0]
        channel = self.explorer.channel if self.explorer.channel < size else 0
        self._edit(lambda: self.explorer.show(change["new"], channel))

    def on_channel(self, change: dict[str, Any]) -> None:
        """A new watched channel."""
        if not self._syncing():
            self._edit(lambda: self.explorer.show(channel=change["new"]))

    def _set_clamp_channel(self, text: str) -> ExplorerView:
        """A new clamped channel (empty: no clamp)."""
        channels = _parse_channels(text.strip())
        if len(channels) > 1:
            raise ValueError(f"clamp one channel at a time, got {text!r}")
        return self.explorer.set_interventions(clamp_channel=channels[0] if channels else None)

    def _on_control(self, edit: Callable[[Any], ExplorerView]) -> Callable[[dict[str, Any]], None]:
        """An observer of a control's value that makes ``edit(new value)``, unless the widget set the value."""

        def observer(change: dict[str, Any]) -> None:
            if not self._syncing():
                self._edit(lambda: edit(change["new"]))

        return observer

    def _edit(self, edit: Callable[[], ExplorerView]) -> None:
        """Make a control's edit; a refused one shows in the status line and the controls go back."""
        try:
            edit()
        except (ValueError, KeyError) as exc:
            message = exc.args[0] if exc.args else type(exc).__name__
            self._sync(self.explorer.view)
            self.status.value = f"<span style='color:#c00'>{html.escape(str(message))}</span>"

    # ------------------------------------------------------------------ display

    def _syncing(self) -> bool:
        return getattr(self._local, "syncing", False)

    def _sync(self, view: ExplorerView) -> None:
        """Set every control to ``view``'s hook, channel and settings (their observers do not edit)."""
        s = view.settings
        self._local.syncing = True
        try:
            self.hook.value = view.hook
            last = self.explorer.policy.hook_points()[view.hook][0] - 1
            self.channel.max = max(self.channel.max, last)
            self.channel.value = view.channel
            self.channel.max = last
            self.iv_hook.value = s.hook
            self.ablate.value = " ".join(map(str, s.ablate))
            self.vector.value = s.vector
            self.coefficient.min = min(self.coefficient.min, s.coefficient)
            self.coefficient.max = max(self.coefficient.max, s.coefficient)
            self.coefficient.value = s.coefficient
            self.clamp_channel.value = "" if s.clamp_channel is None else str(s.clamp_channel)
            self.clamp_value.value = s.clamp_value
        finally:
            self._local.syncing = False

    def _on_change(self, told: ExplorerView, edited: bool) -> None:
        """The explorer's listener: an edit sets the controls, board and table now; the picture follows."""
        view = self.explorer.view  # the newest, not ``told``: another thread's edit may have come after it
        if edited:
            self._sync(view)
            self._show_board(view)
            self.status.value = ""
        if not self.background:
            if view.complete:
                self._show(view, figure_png(draw_explorer(view), dpi=self.dpi))
            else:
                self.explorer.finish()  # tells this listener again, with the complete view
            return
        with self._cond:
            if edited and view is self.explorer.view:
                self.progress.value = progress_label(view)
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

    def _show(self, view: ExplorerView, png: bytes | None) -> None:
        """Show ``view``'s progress, and its picture when drawn (``png``)."""
        self.progress.value = progress_label(view)
        if png is not None:
            self.picture.value = png
            self.caption.value = html.escape(picture_caption(view))
            self.shown = view

    # ------------------------------------------------------------------ the background worker

    def _has_work(self) -> bool:
        """Whether the picture misses the explorer's current view or that view is partial (and did not fail)."""
        view = self.explorer.view
        return (view is not self.shown or not view.complete) and view is not self._failed

    def _work(self) -> None:
        """Draw the explorer's newest view: a new edit's first view at once, then refine and redraw until it is
        complete; then wait for the next change."""
        last_draw = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._has_work(), self.poll_s)
                if self._closed:
                    return
                if not self._has_work():
                    continue
            view = self.explorer.view
            try:
                fresh = self.shown is None or view.revision != self.shown.revision
                if not fresh and not view.complete:
                    view = self.explorer.refine(self.chunk_cells)  # the newest edit's view, if one came
                    fresh = view.revision != self.shown.revision  # type: ignore[union-attr]
                redraw = fresh or view.complete or time.monotonic() - last_draw >= self.redraw_s
                png = figure_png(draw_explorer(view), dpi=self.dpi) if redraw else None
            except Exception as exc:  # noqa: BLE001 -- shown to the user; the next change starts afresh
                with self._cond:
                    self._failed = view
                    self.progress.value = progress_label(view, failed=True)
                    self.status.value = f"<span style='color:#c00'>{html.escape(repr(exc))}</span>"
                    self._cond.notify_all()
                continue
            with self._cond:
                if view is self.explorer.view:  # else a newer edit came: drop this one
                    self._show(view, png)
                    if png is not None:
                        last_draw = time.monotonic()
                    self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the picture shows the explorer's current view complete; → whether it does.

        Returns at once without a worker (``background=False``), whose edits finish before they return; False
        when the worker stopped on an error or the widget is closed.
        """
        def done() -> bool:
            return self.shown is self.explorer.view and self.shown.complete

        if self._worker is None:
            return done()
        with self._cond:
            self._cond.wait_for(lambda: done() or self._closed or self._failed is self.explorer.view, timeout)
            return done()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background worker (waiting up to ``timeout`` s for its current step), stop listening to the
        explorer and close the controls."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.explorer.remove_listener(self._on_change)
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
