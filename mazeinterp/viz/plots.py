"""Matplotlib figures of mazes. matplotlib is imported only when a plot is made.

Every ``draw_*`` function takes an ``Axes`` to draw on and returns it, so
figures compose; ``plot_*`` functions make a whole figure; ``save_figure``
writes a figure and closes it.

* :func:`draw_maze` -- the maze as the agent sees it, paths, decision square, a trajectory;
* :func:`draw_vector_field` / :func:`draw_field_difference` -- move probabilities as arrows;
* :func:`plot_channel_grid` -- every channel of a layer as a grid of heatmaps;
* :func:`draw_channel_heatmap` -- one channel's map over the maze;
* :func:`draw_outcome_bars` -- P(cheese / top_right / neither) per condition with Wilson intervals,
  and P(top-right region first) and P(trapped) beside them (hatched: they overlap the outcomes);
* whole figures of results: :func:`plot_rollout_outcomes`, :func:`plot_comparison_outcomes`,
  :func:`plot_trajectories`, :func:`plot_vector_field_edit`, :func:`plot_channel_heatmap`,
  :func:`plot_maze`, :func:`plot_regression_coefficients`.

>>> from mazeinterp.rollout import NoopPolicy, RolloutConfig, ShortestPathPolicy, run_rollouts
>>> from mazeinterp.analysis.vfield import vector_field
>>> a = run_rollouts(ShortestPathPolicy("cheese"), states, config=RolloutConfig(progress=False))
>>> b = run_rollouts(NoopPolicy(), states, config=RolloutConfig(max_steps=5, progress=False))
>>> fig, axes = new_figure(ncols=2)
>>> ax = draw_vector_field(axes[0, 0], vector_field(model, state))
>>> ax = draw_outcome_bars(axes[0, 1], {"to the cheese": a.summary(), "standing still": b.summary()})
>>> save_figure(fig, "out.png")
PosixPath('out.png')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mazeinterp.maze import grid
from mazeinterp.maze.pixels import WORLD_SIZE
from mazeinterp.maze.state import WALL

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from torch import Tensor

    from mazeinterp.maze.state import MazeState
    from mazeinterp.rollout import Comparison, Episode, OutcomeSummary, RolloutResult
    from mazeinterp.analysis.stats import CheeseRegression
    from mazeinterp.analysis.vfield import VectorField


def new_figure(ncols: int = 1, nrows: int = 1, size: float = 4.0) -> tuple[Figure, np.ndarray]:
    """A figure with a grid of axes (always a 2-D array), using the non-interactive Agg backend."""
    import matplotlib

    if matplotlib.get_backend().lower() not in {"agg", "module://matplotlib_inline.backend_inline"}:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix), close it and return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def cell_centre_xy(cells: Sequence[grid.Cell], maze_size: int, resolution: int = 64) -> np.ndarray:
    """Plot coordinates ``(k, 2)`` (x, y) of cell centres over an ``imshow`` of a ``resolution`` map."""
    margin = (WORLD_SIZE - maze_size) // 2
    rc = np.asarray(cells, dtype=float).reshape(-1, 2)
    scale = resolution / WORLD_SIZE
    return np.stack([(rc[:, 1] + margin + 0.5) * scale - 0.5, (rc[:, 0] + margin + 0.5) * scale - 0.5], axis=1)


def maze_view_limits(maze_size: int, resolution: int = 64) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(xlim, ylim)`` of an ``imshow`` of a ``resolution`` map cropped to the inner maze and its wall ring.

    ``ylim`` runs top to bottom (image orientation). A 25×25 maze keeps the whole picture.
    """
    margin = (WORLD_SIZE - maze_size) // 2
    first, last = max(margin - 1, 0), min(margin + maze_size + 1, WORLD_SIZE)  # cells, end exclusive
    scale = resolution / WORLD_SIZE
    low, high = first * scale - 0.5, last * scale - 0.5
    return (low, high), (high, low)


def draw_maze(ax: Axes, state: MazeState, obs: np.ndarray | None = None, *, paths: bool = True,
              trajectory: Sequence[grid.Cell] | None = None, title: str | None = None,
              legend: bool = True, crop: bool = True) -> Axes:
    """Draw a maze as the agent sees it, with its paths, decision square and an optional trajectory.

    Args:
        ax: axes to draw on.
        state: the maze.
        obs: the agent's observation ``(64, 64, 3)`` uint8; without it, a plain
            picture of the grid is drawn instead.
        paths: draw the shortest paths from the start to the cheese (yellow) and
            to the top-right cell (cyan), and mark the decision square (red).
            The cheese cell always gets an orange ring.
        trajectory: cells visited by the mouse, drawn as a white line edged in black.
        title: axes title.
        legend: name the lines and marks in a legend under the maze.
        crop: show only the inner maze and its ring of walls (small mazes fill the axes).
    """
    n = state.maze_size
    if obs is None:
        picture = np.where(state.world_grid[..., None] == 51, [0.55, 0.45, 0.3], [0.1, 0.1, 0.1])
        ax.imshow(picture, extent=(-0.5, 63.5, 63.5, -0.5), interpolation="nearest")
    else:
        ax.imshow(obs, interpolation="nearest")
    open_cells = state.open_cells
    cheese = state.cheese
    if paths:
        to_top_right = cell_centre_xy(grid.path_to_top_right(open_cells), n)
        ax.plot(*to_top_right.T, color="cyan", lw=1.5, alpha=0.8, label="path to top-right")
        if cheese is not None:
            to_cheese = cell_centre_xy(grid.path_to_cheese(open_cells, cheese), n)
            ax.plot(*to_cheese.T, color="gold", lw=1.5, alpha=0.8, label="path to cheese")
            square = grid.decision_square(open_cells, cheese)
            if square is not None:
                square_x, square_y = cell_centre_xy([square], n).T
                ax.scatter(square_x, square_y, s=60, facecolors="none", edgecolors="red",
                           linewidths=2, label="decision square", zorder=3)
    if cheese is not None:
        # a ring keeps the cheese visible on every wall texture; the legend names it
        cheese_x, cheese_y = cell_centre_xy([cheese], n).T
        ax.scatter(cheese_x, cheese_y, s=70, facecolors="none", edgecolors="orange", linewidths=1.8,
                   label="cheese", zorder=4)
    if trajectory:
        from matplotlib import patheffects

        # white with a black edge: visible on the maze and as a legend key on the white figure
        ax.plot(*cell_centre_xy(trajectory, n).T, color="white", lw=1.2, label="trajectory",
                path_effects=[patheffects.withStroke(linewidth=2.6, foreground="black")])
    if crop:
        xlim, ylim = maze_view_limits(n)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=6, frameon=False,
                  handlelength=1.5, columnspacing=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


# --------------------------------------------------------------------------------------
# vector fields

_CELL_PIXELS = 64 / WORLD_SIZE
"""Side of one world cell in observation pixels (the unit of the plot axes)."""


def draw_vector_field(ax: Axes, field: VectorField, obs: np.ndarray | None = None, *, color: str = "red",
                      paths: bool = False, title: str | None = None, arrow_scale: float = 1.0) -> Axes:
    """Draw a vector field as arrows over the maze.

    Each arrow starts at a cell centre and points along the expected
    displacement ``field.arrows`` (``probs @ MOVE_DELTAS``), one cell long for a
    sure move. The cheese cell has no arrow. Works for fields of differences
    too (:func:`draw_field_difference`).

    Args:
        ax: axes to draw on.
        field: a :class:`mazeinterp.analysis.vfield.VectorField`.
        obs: the observation ``(64, 64, 3)`` uint8 to draw under the arrows (default: a plain grid picture).
        color: arrow colour.
        paths: also draw the paths and the decision square (see :func:`draw_maze`).
        title: axes title.
        arrow_scale: multiplies every arrow's length.
    """
    state = field.state
    draw_maze(ax, state, obs, paths=paths, title=title)
    if len(field.cells):
        xy = cell_centre_xy(field.cells, state.maze_size)
        arrows = np.asarray(field.arrows, dtype=float) * _CELL_PIXELS * 0.8 * arrow_scale
        # data coordinates: x = column (right), y = row (down, as in the image)
        ax.quiver(xy[:, 0], xy[:, 1], arrows[:, 1], arrows[:, 0], color=color, angles="xy",
                  scale_units="xy", scale=1.0, width=0.006, headwidth=3.5, headlength=4, zorder=4)
    return ax


def draw_field_difference(ax: Axes, difference: VectorField, obs: np.ndarray | None = None, *,
                          color: str = "deepskyblue", title: str | None = None,
                          normalize: bool = True) -> Axes:
    """Draw a vector-field difference (:func:`mazeinterp.analysis.vfield.field_difference`) as arrows.

    With ``normalize`` the longest arrow is scaled to one cell, so small
    changes stay visible; the title then reports the largest change.
    """
    arrows = np.asarray(difference.arrows, dtype=float)
    longest = float(np.linalg.norm(arrows, axis=1).max()) if len(arrows) else 0.0
    scale = 1.0 / longest if (normalize and longest > 0) else 1.0
    label = title if title is not None else "vector-field difference"
    if normalize:
        label += f" (largest change {longest:.3g} cell/step)"
    return draw_vector_field(ax, difference, obs, color=color, title=label, arrow_scale=scale)


# --------------------------------------------------------------------------------------
# activations


def plot_channel_grid(activations: np.ndarray | Tensor, *, title: str | None = None, ncols: int | None = None,
                      cmap: str = "RdBu_r", shared_scale: bool = True, channels: Sequence[int] | None = None,
                      size: float = 1.1, state: MazeState | None = None) -> Figure:
    """All channels of a layer as a grid of heatmaps; returns the figure.

    Args:
        activations: ``(C, H, W)`` activations of one example (tensor or array).
        title: figure title.
        ncols: columns of the grid (default ≈ √C, at least 1).
        cmap: colour map (diverging by default; zero is white when ``shared_scale``).
        shared_scale: one symmetric colour scale for every channel (else each its own).
        channels: label of each map (default ``0 … C-1``).
        size: inches per map.
        state: the maze shown; its walls are outlined on every map.

    With ``shared_scale`` a colour bar shows the common scale; otherwise each
    map's own range is in its title.
    """
    acts = _as_numpy(activations)
    if acts.ndim != 3:
        raise ValueError(f"plot_channel_grid expects (C, H, W) activations, got shape {acts.shape}")
    count = acts.shape[0]
    labels = list(range(count)) if channels is None else list(channels)
    if len(labels) != count:
        raise ValueError(f"{len(labels)} channel labels for {count} maps")
    ncols = ncols or max(1, int(np.ceil(np.sqrt(count))))
    nrows = int(np.ceil(count / ncols))
    fig, axes = new_figure(ncols=ncols, nrows=nrows, size=size)
    bound = float(np.abs(acts).max()) or 1.0
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= count:
            ax.axis("off")
            continue
        amap = acts[i]
        own = bound if shared_scale else (float(np.abs(amap).max()) or 1.0)
        image = ax.imshow(amap, cmap=cmap, vmin=-own, vmax=own, interpolation="nearest")
        if state is not None:
            _outline_walls(ax, state, amap.shape)
        ax.set_title(str(labels[i]) if shared_scale else f"{labels[i]} (±{own:.2g})", fontsize=6, pad=1)
    if shared_scale and count:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01, label="activation")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _outline_walls(ax: Axes, state: MazeState, shape: tuple[int, ...]) -> None:
    """Outline the maze's open cells (grey lines) over an ``(H, W)`` activation map."""
    height, width = shape
    open_world = (state.world_grid != WALL).astype(float)
    centres = (np.arange(WORLD_SIZE) + 0.5) / WORLD_SIZE
    ax.contour(centres * width - 0.5, centres * height - 0.5, open_world, levels=[0.5], colors="0.35",
               linewidths=0.4)


def draw_channel_heatmap(ax: Axes, state: MazeState, activation: np.ndarray | Tensor,
                         obs: np.ndarray | None = None, *, cmap: str = "magma", alpha: float = 0.6,
                         title: str | None = None, colorbar: bool = True) -> Axes:
    """One channel's ``(H, W)`` activation map stretched over the maze picture.

    The map covers the whole 64×64 observation (like the network sees it), so
    an activation pixel lies over the maze cells it covers
    (:func:`mazeinterp.maze.pixels.cell_to_pixel_region`). The cheese and the
    decision square are marked by :func:`draw_maze`.
    """
    amap = _as_numpy(activation)
    if amap.ndim != 2:
        raise ValueError(f"draw_channel_heatmap expects an (H, W) map, got shape {amap.shape}")
    draw_maze(ax, state, obs, paths=True, title=title)
    image = ax.imshow(amap, cmap=cmap, alpha=alpha, extent=(-0.5, 63.5, 63.5, -0.5), interpolation="nearest",
                      zorder=2)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def _as_numpy(values: np.ndarray | Tensor) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(values, dtype=float)


# --------------------------------------------------------------------------------------
# outcomes


_OUTCOME_COLOURS = {"cheese": "gold", "top_right": "deepskyblue", "neither": "grey",
                    "region_first": "lightskyblue", "trapped": "lightgrey"}


def draw_outcome_bars(ax: Axes, conditions: Mapping[str, OutcomeSummary] | Sequence[OutcomeSummary], *,
                      title: str | None = None, events: bool = True) -> Axes:
    """Grouped bars of P(cheese), P(top_right), P(neither) per condition, with their Wilson intervals.

    Args:
        ax: axes to draw on.
        conditions: condition name → :class:`mazeinterp.rollout.OutcomeSummary`
            (or a sequence of summaries, named by their labels).
        title: axes title.
        events: also draw P(top-right region first) and P(trapped) (hatched bars: an episode in
            them also has one of the three outcomes), for summaries that count them.
    """
    from mazeinterp.maze.outcomes import EVENTS, OUTCOMES

    items = list(conditions.items()) if isinstance(conditions, Mapping) else [(s.label, s) for s in conditions]
    if not items:
        raise ValueError("draw_outcome_bars needs at least one condition")
    shown_events = [e for e in EVENTS if events and all(e in s.event_counts for _, s in items)]
    width = 0.8 / (len(OUTCOMES) + len(shown_events))
    x = np.arange(len(items)) - 0.4 + width / 2
    sizes = {s.region_size for _, s in items}
    labels = {}
    size = next(iter(sizes)) if len(sizes) == 1 else None
    if size is not None:
        labels["region_first"] = f"top-right {size}×{size} first"
    for j, name in enumerate(list(OUTCOMES) + shown_events):
        event = name in shown_events
        p = np.array([(s.event_proportions if event else s.proportions)[name] if s.n else 0.0 for _, s in items])
        interval = np.array([(s.event_intervals if event else s.intervals)[name] for _, s in items])
        yerr = np.vstack([np.clip(p - interval[:, 0], 0, None), np.clip(interval[:, 1] - p, 0, None)])
        ax.bar(x + j * width, p, width, yerr=yerr, capsize=3, label=labels.get(name, name),
               hatch="//" if event else None, color=_OUTCOME_COLOURS.get(name), edgecolor="black", linewidth=0.5)
    ax.set_xticks(np.arange(len(items)))
    ax.set_xticklabels([f"{name}\n(n={s.n})" for name, s in items], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability (95% Wilson CI)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, never over a bar
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def crop_to_maze(ax: Axes, maze_size: int, pad_cells: float = 1.0) -> Axes:
    """Limit a picture of the 64×64 observation on ``ax`` to the inner maze plus ``pad_cells`` cells around it."""
    corners = cell_centre_xy([(0, 0), (maze_size - 1, maze_size - 1)], maze_size)
    pad = (0.5 + pad_cells) * _CELL_PIXELS
    ax.set_xlim(corners[0, 0] - pad, corners[1, 0] + pad)
    ax.set_ylim(corners[1, 1] + pad, corners[0, 1] - pad)  # row 0 at the top, as in the image
    return ax


# --------------------------------------------------------------------------------------
# whole figures of results (what the command line saves)


MAX_MAZE_PANELS = 8
"""Most mazes drawn by :func:`plot_trajectories`, and by the command line one figure each."""

_SHORT_LABELS = {"all mazes": "all mazes", "with decision square": "decision square",
                 "cheese outside top-right 5×5": "cheese outside\ntop-right 5×5",
                 "with decision square, cheese outside top-right 5×5": "decision square,\ncheese outside 5×5"}


def plot_outcomes(conditions: Mapping[str, OutcomeSummary], title: str | None = None) -> Figure:
    """A figure of :func:`draw_outcome_bars` for ``conditions``, wide enough for their labels."""
    fig, axes = new_figure(size=max(4.0, 1.6 * len(conditions) + 1))
    draw_outcome_bars(axes[0, 0], conditions, title=title)
    return fig


def plot_rollout_outcomes(result: RolloutResult, title: str | None = "outcomes") -> Figure:
    """Outcome bars of a rollout's standard subsets (:meth:`RolloutResult.summaries`: all mazes, with a
    decision square, cheese outside the top-right region, both), with labels shortened to fit."""
    return plot_outcomes({_SHORT_LABELS.get(s.label, s.label): s for s in result.summaries()}, title)


def plot_comparison_outcomes(comparison: Comparison, title: str | None = None) -> Figure:
    """Outcome bars of a comparison: baseline and edited rollouts, on all mazes and on those with a
    decision square (bars ``baseline / edited`` × ``all / decision sq.``)."""
    conditions = {}
    for decision_square_only in (False, True):
        tag = "decision sq." if decision_square_only else "all"
        conditions[f"baseline\n{tag}"] = comparison.baseline.summary(decision_square_only=decision_square_only)
        conditions[f"edited\n{tag}"] = comparison.treatment.summary(decision_square_only=decision_square_only)
    return plot_outcomes(conditions, title)


def plot_trajectories(episodes: Sequence[Episode], states: Sequence[MazeState],
                      observations: np.ndarray | None = None) -> Figure:
    """Each episode's trajectory over its maze, titled with its level, outcome and steps, four to a row.

    Args:
        episodes: episodes recorded with ``record_trajectories`` (the first :data:`MAX_MAZE_PANELS` are drawn).
        states: their mazes, in the same order.
        observations: ``(N, 64, 64, 3)`` uint8 pictures of ``states``
            (:func:`mazeinterp.core.hooks.render_states`); without them, plain grid pictures.
    """
    shown = list(zip(episodes, states))[:MAX_MAZE_PANELS]
    if not shown:
        raise ValueError("plot_trajectories needs at least one episode")
    cols = min(4, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = new_figure(ncols=cols, nrows=rows, size=3.2)
    fig.subplots_adjust(hspace=0.35)  # room for each maze's legend above the next row's titles
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for i, (ax, (ep, state)) in enumerate(zip(axes.flat, shown)):
        draw_maze(ax, state, None if observations is None else observations[i], trajectory=ep.trajectory,
                  title=f"level {ep.level_seed}: {ep.outcome} in {ep.steps} step{'' if ep.steps == 1 else 's'}")
    return fig


def plot_vector_field_edit(base: VectorField, edited: VectorField | None = None, obs: np.ndarray | None = None,
                           label: str = "") -> Figure:
    """A maze's vector field; with ``edited`` (the same maze under an edit named ``label``), three panels:
    the policy, the edited policy (orange) and their difference (:func:`draw_field_difference`)."""
    from mazeinterp.analysis.vfield import field_difference

    fig, axes = new_figure(ncols=1 if edited is None else 3, size=4.5)
    draw_vector_field(axes[0, 0], base, obs, paths=True, title=f"level {base.state.level_seed}: policy")
    if edited is not None:
        draw_vector_field(axes[0, 1], edited, obs, color="orange", paths=True, title=label)
        draw_field_difference(axes[0, 2], field_difference(base, edited), obs, title="difference")
    return fig


def plot_channel_heatmap(state: MazeState, activation: np.ndarray | Tensor, obs: np.ndarray | None = None,
                         title: str | None = None) -> Figure:
    """A figure of one channel's ``(H, W)`` map over the maze (:func:`draw_channel_heatmap`)."""
    fig, axes = new_figure(size=5)
    draw_channel_heatmap(axes[0, 0], state, activation, obs, title=title)
    return fig


def plot_maze(state: MazeState, obs: np.ndarray | None = None, title: str | None = None) -> Figure:
    """A figure of one maze with its paths and decision square (:func:`draw_maze`)."""
    fig, axes = new_figure()
    draw_maze(axes[0, 0], state, obs, title=title)
    return fig


def plot_regression_coefficients(regression: CheeseRegression | None, no_fit_reason: str = "") -> Figure:
    """Horizontal bars of a :class:`mazeinterp.analysis.stats.CheeseRegression`'s coefficients (first feature on
    top), titled with its held-out accuracy and baseline; without a regression, ``no_fit_reason`` as text."""
    fig, axes = new_figure(size=5)
    ax = axes[0, 0]
    if regression is not None:
        rows = regression.coefficient_rows()[::-1]
        ax.barh([r["feature"] for r in rows], [r["coefficient"] for r in rows], color="slateblue")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("coefficient (log-odds of cheese per SD)")
        ax.set_title(f"held-out accuracy {regression.accuracy:.2f} vs baseline "
                     f"{regression.baseline_accuracy:.2f}", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no regression:\n" + no_fit_reason, ha="center", va="center", wrap=True, fontsize=8)
        ax.set_axis_off()
    return fig
