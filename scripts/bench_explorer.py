"""Per-edit latency of the progressive explorer (mazeinterp.viz.widgets) on a 25×25 maze, with one torch thread.

A random network costs as much as a trained one of the same scale, so the
default is a random scale-4 network (the published agent's size). Each edit is
applied to a progressive :class:`~mazeinterp.viz.widgets.Explorer` in the order a
user might make them, after the previous one has been refined to completion, so
the caches hold what they would hold in a session. For each edit the script
prints:

* first view: seconds until the edit returns its first view (the maze, the move
  probabilities at the mouse, the activation map, the cached field cells) and its
  picture is drawn (PNG, as the widget shows it) -- the target is under 1 s;
* complete: seconds until the vector fields are complete (refined
  ``--chunk`` cells at a time, as the widget's thread does) and drawn once more
  (the first view's time when it is complete already);
  the widget also redraws the partial picture about once a second on top;
* the cells computed for the plain and the edited field, and single forward passes,

as wall-clock time and as this process's CPU time (they differ when other
processes share the core), and the slowest first view of an edit over the 1 s target.

    python scripts/bench_explorer.py                 # scale 4, one thread
    python scripts/bench_explorer.py --scale 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from mazeinterp.viz.explorer import DEFAULT_CHUNK_CELLS
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.rollout import load_mazes
from mazeinterp.viz.widgets import Explorer, ExplorerView, draw_explorer, figure_png

TARGET_S = 1.0
"""The first view of every edit should take less than this."""


class _Clock:
    """Wall-clock and CPU seconds since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _draw(view: ExplorerView) -> None:
    figure_png(draw_explorer(view))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=4, help="IMPALA scale of the random network (default: 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK_CELLS,
                        help=f"field cells per refinement step (default: {DEFAULT_CHUNK_CELLS})")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    policy = ImpalaPolicy(scale=args.scale).eval()
    state = next(s for s in load_mazes(range(200)) if s.maze_size == 25)
    free = [(int(r), int(c)) for r, c in zip(*state.open_cells.nonzero()) if (r, c) not in (state.mouse, state.cheese)]
    wall = next((r, c) for r in range(1, 24) for c in range(1, 24) if not state.open_cells[r, c])

    holder: list[Explorer] = []
    edits: list[tuple[str, Callable[[], ExplorerView]]] = [
        ("opening the explorer", lambda: holder.append(Explorer(policy, state, progressive=True)) or holder[0].view),
        ("watch another channel", lambda: holder[0].show(channel=5)),
        ("watch another layer", lambda: holder[0].show(hook="embedder.relu3_out", channel=3)),
        ("move the mouse", lambda: holder[0].place_mouse(free[len(free) // 2])),
        ("add the cheese vector", lambda: holder[0].set_interventions(vector="cheese", coefficient=-1.0)),
        ("coefficient slider", lambda: holder[0].set_interventions(coefficient=-2.0)),
        ("ablate channels", lambda: holder[0].set_interventions(ablate=(1, 2, 3))),
        ("clamp a channel at a cell", lambda: holder[0].set_interventions(clamp_channel=7, clamp_cell=free[3])),
        ("move the mouse (interventions on)", lambda: holder[0].place_mouse(free[5])),
        ("move the cheese", lambda: holder[0].place_cheese(free[-1])),
        ("toggle a wall", lambda: holder[0].toggle_wall(wall)),
    ]
    print(f"scale {args.scale}, {torch.get_num_threads()} torch thread(s), level {state.level_seed}: 25×25 maze, "
          f"chunks of {args.chunk} cells; seconds as wall (CPU)")
    print(f"\n{'edit':<36} {'first view':>14} {'complete':>15}  computed")
    worst, worst_cpu = 0.0, 0.0
    for name, edit in edits:
        ex = holder[0] if holder else None
        before = (ex.plain_cells, ex.edited_cells, ex.forward_passes) if ex else (0, 0, 0)
        clock = _Clock()
        view = edit()
        _draw(view)
        first = clock.read()
        cells = f"{view.cells_done}/{view.n_cells}"
        ex = holder[0]
        done = first
        if not view.complete:
            while not view.complete:
                view = ex.refine(args.chunk)
            _draw(view)
            done = clock.read()
        if name != edits[0][0]:  # opening also starts the renderer and matplotlib: not an edit
            worst, worst_cpu = max(worst, first[0]), max(worst_cpu, first[1])
        counts = [n - b for n, b in zip((ex.plain_cells, ex.edited_cells, ex.forward_passes), before)]
        print(f"{name:<36} {first[0]:>6.2f} ({first[1]:>5.2f}) {done[0]:>6.2f} ({done[1]:>5.2f})  "
              f"{cells} cells at first; {counts[0]} plain + {counts[1]} edited cells, {counts[2]} forward passes")
    print(f"\nslowest first view of an edit: {worst:.2f} s wall = {worst / TARGET_S:.2f} × the {TARGET_S:g} s target; "
          f"{worst_cpu:.2f} s CPU = {worst_cpu / TARGET_S:.2f} ×")


if __name__ == "__main__":
    main()
