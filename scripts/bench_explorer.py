"""Per-edit latency of the explorer (mazeinterp.widgets) on a 25×25 maze, with one torch thread.

A random network costs as much as a trained one of the same scale, so the
default is a random scale-4 network (the published agent's size). Each edit is
applied to an :class:`~mazeinterp.widgets.Explorer` in the order a user might
make them, after the previous one, so the caches hold what they would hold in a
session. For each edit the script prints the seconds to compute the new view
and to draw its picture (PNG, as the widget shows it), as wall-clock time and
as this process's CPU time (the two differ when other processes share the core),
and what it computed: whole vector fields, edited fields from cached activations,
single forward passes.

    python scripts/bench_explorer.py                 # scale 4, one thread
    python scripts/bench_explorer.py --scale 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from mazeinterp.model import ImpalaPolicy
from mazeinterp.rollout import load_mazes
from mazeinterp.widgets import Explorer, ExplorerView, draw_explorer, figure_png


def _timed(work: Callable[[], object]) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = work()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=4, help="IMPALA scale of the random network (default: 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    policy = ImpalaPolicy(scale=args.scale).eval()
    state = next(s for s in load_mazes(range(200)) if s.maze_size == 25)
    free = [(int(r), int(c)) for r, c in zip(*state.open_cells.nonzero()) if (r, c) not in (state.mouse, state.cheese)]
    wall = next((r, c) for r in range(1, 24) for c in range(1, 24) if not state.open_cells[r, c])

    ex, seconds, cpu = _timed(lambda: Explorer(policy, state))
    assert isinstance(ex, Explorer)
    print(f"scale {args.scale}, {torch.get_num_threads()} torch thread(s), level {state.level_seed}: 25×25 maze, "
          f"{len(ex.view.field)} field cells")
    print(f"opening the explorer (plain field, one forward pass): {seconds:.2f} s wall, {cpu:.2f} s CPU")
    edits: list[tuple[str, Callable[[], ExplorerView]]] = [
        ("watch another channel", lambda: ex.show(channel=5)),
        ("watch another layer", lambda: ex.show(hook="embedder.relu3_out", channel=3)),
        ("move the mouse", lambda: ex.place_mouse(free[len(free) // 2])),
        ("add the cheese vector", lambda: ex.set_interventions(vector="cheese", coefficient=-1.0)),
        ("coefficient slider", lambda: ex.set_interventions(coefficient=-2.0)),
        ("ablate channels", lambda: ex.set_interventions(ablate=(1, 2, 3))),
        ("clamp a channel at a cell", lambda: ex.set_interventions(clamp_channel=7, clamp_cell=free[3])),
        ("move the mouse (interventions on)", lambda: ex.place_mouse(free[5])),
        ("move the cheese", lambda: ex.place_cheese(free[-1])),
        ("toggle a wall", lambda: ex.toggle_wall(wall)),
    ]
    print(f"\n{'edit':<36} {'compute wall':>12} {'CPU':>6} {'draw wall':>10} {'CPU':>6} {'total wall':>11} "
          f"{'CPU':>6}  computed")
    for name, edit in edits:
        before = (ex.field_passes, ex.suffix_passes, ex.forward_passes)
        view, c_wall, c_cpu = _timed(edit)
        _, d_wall, d_cpu = _timed(lambda: figure_png(draw_explorer(view)))  # type: ignore[arg-type]
        done = [n - b for n, b in zip((ex.field_passes, ex.suffix_passes, ex.forward_passes), before)]
        what = f"{done[0]} field, {done[1]} edited field, {done[2]} forward pass"
        print(f"{name:<36} {c_wall:>12.2f} {c_cpu:>6.2f} {d_wall:>10.2f} {d_cpu:>6.2f} {c_wall + d_wall:>11.2f} "
              f"{c_cpu + d_cpu:>6.2f}  {what}")


if __name__ == "__main__":
    main()
