"""How far the fast numerics (channels-last) are from the reference numerics (contiguous), measured.

For each agent -- the shipped agents and the default agent widened to scale 4 by
:func:`mazeinterp.train.widen.widen_policy` (the published network's size) -- it
computes on the same mazes, once with each numerics (:mod:`mazeinterp.core.numerics`):

* the move probabilities at every open cell (:func:`mazeinterp.analysis.vfield.vector_fields`);
* the exact P(cheese), P(top_right), P(neither), P(region first)
  (:func:`mazeinterp.analysis.vfield.outcome_probabilities`);

and prints the largest absolute difference of each, over cells, moves, mazes and outcomes.

    python scripts/compare_numerics.py                       # level seeds 0-7, every agent
    python scripts/compare_numerics.py --n-mazes 4 --agents maze-s1-r5-v5 --json numerics.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mazeinterp.checkpoints.registry import DEFAULT_AGENT, SHIPPED, load_policy
from mazeinterp.runtime.arguments import new_file
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.core.numerics import reference_numerics
from mazeinterp.runtime.outputs import write_new_json
from mazeinterp.rollout import load_mazes
from mazeinterp.train.widen import widen_policy
from mazeinterp.analysis.vfield import outcome_probabilities, vector_fields

WIDE = "widened-scale4"
"""Name of the default agent widened to scale 4."""


def _agent(name: str) -> ImpalaPolicy:
    if name == WIDE:
        return widen_policy(load_policy(DEFAULT_AGENT), 4).eval()
    return load_policy(name)


def _measure(model: ImpalaPolicy, states: list, reference: bool) -> tuple[np.ndarray, np.ndarray]:
    """(move probabilities of every cell of every maze (K, 5), exact outcomes (N, 4)) with one numerics."""
    with reference_numerics(reference):
        fields = vector_fields(model, states, progress=False)
        outcomes = outcome_probabilities(model, states, progress=False)
    return np.concatenate([f.probs for f in fields]), outcomes


def compare(name: str, states: list) -> dict[str, float | str | int]:
    """The largest |fast - reference| of move probabilities and exact outcomes of agent ``name`` on ``states``."""
    model = _agent(name)
    start = time.perf_counter()
    fast_moves, fast_out = _measure(model, states, reference=False)
    ref_moves, ref_out = _measure(model, states, reference=True)
    for what, values in (("move probabilities", (fast_moves, ref_moves)), ("outcomes", (fast_out, ref_out))):
        if not all(np.isfinite(v).all() for v in values):
            raise SystemExit(f"{name}: non-finite {what}; no difference reported")
    return {"agent": name, "scale": model.scale, "cells": len(fast_moves), "mazes": len(states),
            "max_abs_diff_move_probs": float(np.abs(fast_moves - ref_moves).max()),
            "max_abs_diff_outcomes": float(np.abs(fast_out - ref_out).max()),
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-mazes", type=int, default=8, help="mazes: level seeds start-level … (default: 8)")
    parser.add_argument("--start-level", type=int, default=0, help="first level seed (default: 0)")
    parser.add_argument("--agents", nargs="+", default=[*sorted(SHIPPED), WIDE],
                        help=f"shipped agent names, checkpoint files or {WIDE} (default: all shipped and {WIDE})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--json", type=new_file, default=None, help="also write the rows to this new JSON file")
    args = parser.parse_args()
    if args.n_mazes < 1:
        parser.error("--n-mazes must be at least 1")
    torch.set_num_threads(args.threads)
    states = load_mazes(range(args.start_level, args.start_level + args.n_mazes))
    print(f"{'agent':<18} {'scale':>5} {'cells':>6} {'max |Δ| move prob':>18} {'max |Δ| exact outcome':>22}")
    rows = []
    for name in args.agents:
        row = compare(name, states)
        rows.append(row)
        print(f"{name:<18} {row['scale']:>5} {row['cells']:>6} {row['max_abs_diff_move_probs']:>18.2e} "
              f"{row['max_abs_diff_outcomes']:>22.2e}")
    if args.json:
        write_new_json(args.json, {"level_seeds": [args.start_level, args.start_level + args.n_mazes - 1],
                                   "rows": rows})


if __name__ == "__main__":
    main()
