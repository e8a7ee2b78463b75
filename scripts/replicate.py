"""Measure the published findings on an agent: the numbers of docs/replication.md.

Each section writes ``<out>/<section>.json`` and prints its table:

* ``behaviour``: rollouts on the standard distribution; P(cheese / top_right /
  neither), P(top-right 5×5 first) and P(trapped) in mazes with a decision
  square and the cheese outside the top-right 5×5, where the traps of the
  timed-out episodes lie, and the logistic regression of "reached the cheese"
  on maze features (held-out accuracy against the majority baseline).
* ``cheese-channels``: the cheese-tracking channels of the steering layer,
  ranked by measurement; how many track the cheese above chance and how many
  clearly (map peak on the cheese in most mazes); a linear probe of the layer.
* ``cheese-vector``: P(cheese-ward move at the decision square) before and
  after subtracting the per-maze cheese vector (and one mean vector), and the
  exact expected P(cheese) / P(top_right) of rollouts before and after.
* ``top-right-vector``: the same measures with the top-right vector added and
  subtracted.
* ``retarget``: clamping the best cheese channel, the best three and all
  tracking channels at a target cell; the probability of reaching the target
  against the target's distance from the path to the top-right corner.
* ``ablations``: each channel of the steering layer mean-ablated alone; which
  ones move P(cheese) the most (exact expected rollout outcomes, paired).

The exact expected outcomes come from
:func:`mazeinterp.analysis.vfield.outcome_probabilities` (a sampled rollout of this
memoryless policy is a Markov chain over cells), so they carry no Monte Carlo
noise; intervals are over mazes (bootstrap) or Wilson intervals for rollout
counts.

Example::

    python scripts/replicate.py --section all --out runs/replication
    python scripts/replicate.py --section cheese-vector --n-ds-mazes 100 --out runs/replication --overwrite
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mazeinterp.analysis.channels import ChannelTable, behaviour_attribution, cheese_probe, cheese_tracking_channels
from mazeinterp.analysis.references import mean_ablation
from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.core.interventions import AddVector, Intervention, MeanAblate
from mazeinterp.maze.grid import distance_map, path_to_top_right
from mazeinterp.maze.outcomes import in_top_right_region, region_edge_distance
from mazeinterp.maze.state import MazeState
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.runtime.outputs import OutputDir
from mazeinterp.rollout import TEST_SEED_START, RolloutConfig, load_mazes, run_rollouts
from mazeinterp.analysis.stats import bootstrap_interval, fit_cheese_regression, wilson_interval
from mazeinterp.analysis.steering import DEFAULT_STEERING_HOOK, cheese_vectors, retarget, top_right_vectors
from mazeinterp.analysis.vfield import (
    EXACT_OUTCOMES,
    cheese_ward_move,
    decision_square_cheese_prob,
    first_arrival_probabilities,
    mirror_fields,
    outcome_probabilities,
)

HOOK = DEFAULT_STEERING_HOOK
DISTANCE_BINS = ((0, 0), (1, 2), (3, 5), (6, 9), (10, 10_000))
"""Bins of a target's path distance from the start → top-right path (in cells)."""
SECTIONS = ("behaviour", "cheese-channels", "cheese-vector", "top-right-vector", "retarget", "ablations")


# --------------------------------------------------------------------------- mazes and small helpers


@functools.cache
def standard_mazes(n: int) -> tuple[MazeState, ...]:
    """The first ``n`` standard-distribution test mazes (level seeds from ``TEST_SEED_START``), loaded once."""
    return tuple(load_mazes(range(TEST_SEED_START, TEST_SEED_START + n)))


@functools.cache
def decision_square_mazes(n: int, definition: str) -> tuple[MazeState, ...]:
    """The first ``n`` standard-distribution test mazes that have a decision square (``definition``), loaded once."""
    found: list[MazeState] = []
    start = TEST_SEED_START
    while len(found) < n:
        found.extend(s for s in load_mazes(range(start, start + 256)) if cheese_ward_move(s, definition) is not None)
        start += 256
    return tuple(found[:n])


@functools.cache
def baseline(policy: ImpalaPolicy, n: int, definition: str) -> tuple[np.ndarray, np.ndarray]:
    """Unedited P(cheese-ward move at the decision square) (n,) and exact outcomes (n, 4) of those mazes."""
    states = decision_square_mazes(n, definition)
    return (decision_square_cheese_prob(policy, states, definition=definition),
            outcome_probabilities(policy, states))


def interval(values: Sequence[float] | np.ndarray, statistic: str = "mean", seed: int = 0) -> dict[str, float]:
    """{estimate, low, high} with a 95% bootstrap interval over mazes."""
    estimate, low, high = bootstrap_interval(values, statistic, seed=seed)
    return {"estimate": estimate, "low": low, "high": high}


def fmt(entry: dict[str, float]) -> str:
    """'0.123 [0.100, 0.150]'."""
    return f"{entry['estimate']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def outcome_change(before: np.ndarray, after: np.ndarray, seed: int) -> dict[str, Any]:
    """Mean exact P(outcome) before and after, and the paired mean change, each with a bootstrap interval.

    ``before``/``after``: (N, 4) arrays from :func:`outcome_probabilities` (columns ``EXACT_OUTCOMES``).
    """
    out: dict[str, Any] = {}
    for j, name in enumerate(EXACT_OUTCOMES):
        out[name] = {"before": interval(before[:, j], seed=seed), "after": interval(after[:, j], seed=seed),
                     "change": interval(after[:, j] - before[:, j], seed=seed)}
    return out


def binomial_above_chance(hits: int, n: int, chance: float) -> float:
    """One-sided p-value of ``hits`` or more successes in ``n`` trials of probability ``chance``."""
    from scipy.stats import binomtest

    return float(binomtest(hits, n, chance, alternative="greater").pvalue)


# --------------------------------------------------------------------------- sections


def behaviour(policy: ImpalaPolicy, args: argparse.Namespace) -> dict[str, Any]:
    """Rollouts on the standard distribution: the goal-misgeneralization table and the regression."""
    seeds = range(TEST_SEED_START, TEST_SEED_START + args.n_mazes)
    result = run_rollouts(policy, seeds, config=RolloutConfig(seed=args.seed, decision_square=args.decision_square))
    table = result.summary(decision_square_only=True, cheese_outside_region=5)
    print(table)
    traps = trap_locations(result.filter(decision_square_only=True, cheese_outside_region=5).episodes)
    print(f"timeouts {traps['timeouts']}, trapped {traps['trapped']}: {traps['where']}")
    with_ds = result.filter(decision_square_only=True)
    regression = fit_cheese_regression(with_ds.episodes, seed=args.seed)
    print(regression)
    return {"seeds": [seeds.start, seeds.stop - 1], "all_mazes": result.summary().as_dict(),
            "decision_square_cheese_outside_5x5": table.as_dict(),
            "traps_decision_square_cheese_outside_5x5": traps,
            "decision_square_mazes": with_ds.summary().as_dict(),
            "regression_on_decision_square_mazes": regression.as_dict()}


def trap_locations(episodes: Sequence[Any], k: int = 5) -> dict[str, Any]:
    """Where the traps of timed-out episodes lie relative to the top-right k×k region.

    ``where`` counts traps with both cells inside the region, one inside and
    one outside (on its edge), and both outside; ``edge_distance`` counts
    traps by how far their farther cell lies from the region's edge
    (:func:`~mazeinterp.maze.outcomes.region_edge_distance`); ``episodes`` lists
    each trapped episode (level seed, trap cells, share).
    """
    timeouts = [ep for ep in episodes if ep.outcome == "neither"]
    trapped = [ep for ep in timeouts if ep.trapped]
    where = {"inside": 0, "edge": 0, "outside": 0}
    distances: dict[int, int] = {}
    for ep in trapped:
        inside = in_top_right_region(np.array(ep.trap.cells), ep.maze_size, k).sum()
        where["inside" if inside == 2 else "edge" if inside == 1 else "outside"] += 1
        far = max(region_edge_distance(cell, ep.maze_size, k) for cell in ep.trap.cells)
        distances[far] = distances.get(far, 0) + 1
    return {"region_size": k, "timeouts": len(timeouts), "trapped": len(trapped), "where": where,
            "edge_distance": dict(sorted(distances.items())),
            "episodes": [{"level_seed": ep.level_seed, "maze_size": ep.maze_size, "trap": ep.trap.label(),
                          "share": ep.trap.share} for ep in trapped]}


@functools.cache
def rank_cheese_channels(policy: ImpalaPolicy, n_mazes: int) -> tuple[ChannelTable, list[int],
                                                                      list[dict[str, Any]]]:
    """(table, tracking channels, rows) over the first ``n_mazes`` test mazes, computed once per policy.

    A channel tracks the cheese when its peak-hit count is above chance at
    p < 0.01 after a Bonferroni correction over the layer's channels.
    """
    table = cheese_tracking_channels(policy, standard_mazes(n_mazes), HOOK)
    n, chance = int(table.summary["n_mazes"]), float(table.summary["peak_chance"])
    threshold = 0.01 / len(table.channel)
    rows, tracking = [], []
    for row in table.to_rows():
        hits = int(round(row["peak_hit"] * n))
        p_value = binomial_above_chance(hits, n, chance)
        low, high = wilson_interval(hits, n)
        entry = {"channel": int(row["channel"]), "score": row["score"], "peak_hit": row["peak_hit"],
                 "peak_hit_low": low, "peak_hit_high": high, "corr": row["corr"],
                 "cheese_effect": row["cheese_effect"], "p_value": p_value, "tracks": p_value < threshold,
                 "clear": row["peak_hit"] >= 0.5}
        rows.append(entry)
        if entry["tracks"]:
            tracking.append(entry["channel"])
    return table, tracking, rows


def cheese_channels(policy: ImpalaPolicy, args: argparse.Namespace) -> dict[str, Any]:
    """How many channels of the steering layer track the cheese, how clearly; a probe; an untrained baseline.

    The same measurements on an untrained network of the same scale show how
    much of the score the architecture gives by itself (the cheese is a bright
    blob that even random filters respond to).
    """
    table, tracking, rows = rank_cheese_channels(policy, args.n_channel_mazes)
    print(table.top(12))
    states = standard_mazes(args.n_channel_mazes)
    probe = cheese_probe(policy, states, HOOK, seed=args.seed)
    torch.manual_seed(args.seed)
    untrained = ImpalaPolicy(scale=policy.scale).eval()
    _, untrained_tracking, untrained_rows = rank_cheese_channels(untrained, args.n_channel_mazes)
    untrained_probe = cheese_probe(untrained, states, HOOK, seed=args.seed)
    best_untrained = max(r["peak_hit"] for r in untrained_rows)
    beyond_untrained = [r["channel"] for r in rows if r["tracks"] and r["peak_hit_low"] > best_untrained]
    clear = [r["channel"] for r in rows if r["clear"]]
    print(f"{len(tracking)} of {len(rows)} channels track the cheese above chance; {len(clear)} clearly "
          f"(peak on the cheese in ≥ 50% of mazes); probe accuracy {probe.summary['accuracy']:.3f}")
    print(f"untrained network: {len(untrained_tracking)} channels above chance, best peak-hit {best_untrained:.3f}, "
          f"probe accuracy {untrained_probe.summary['accuracy']:.3f}; trained channels whose peak-hit interval "
          f"lies above that best: {beyond_untrained}")
    return {"hook": HOOK, "n_mazes": int(table.summary["n_mazes"]), "peak_chance": table.summary["peak_chance"],
            "n_channels": len(rows), "tracking": tracking, "clear": clear, "beyond_untrained": beyond_untrained,
            "channels": rows, "probe": dict(probe.summary), "probe_top_channels": [int(c) for c in probe.channel[:5]],
            "untrained": {"tracking": untrained_tracking, "best_peak_hit": best_untrained,
                          "best_score": max(r["score"] for r in untrained_rows),
                          "probe": dict(untrained_probe.summary), "channels": untrained_rows}}


def _vector_section(policy: ImpalaPolicy, n_mazes: int, vectors: torch.Tensor,
                    coefficients: Sequence[float], seed: int, definition: str) -> dict[str, Any]:
    """Decision-square P(cheese-ward) and exact outcomes with per-maze ``vectors`` added × each coefficient."""
    states = decision_square_mazes(n_mazes, definition)
    before_ds, before_outcomes = baseline(policy, n_mazes, definition)
    mean_vector = vectors.mean(0)
    out: dict[str, Any] = {"n_mazes": len(states), "p_cheese_ward_before": {
        "median": interval(before_ds, "median", seed), "mean": interval(before_ds, seed=seed)}}
    for coefficient in coefficients:
        def steer(i: int, c: float = coefficient) -> list[Intervention]:
            return [AddVector(HOOK, vectors[i], c)]

        after_ds = np.array([decision_square_cheese_prob(policy, [s], steer(i), definition=definition)[0]
                             for i, s in enumerate(states)])
        after_outcomes = outcome_probabilities(policy, states, steer)
        after_mean_ds = decision_square_cheese_prob(policy, states, [AddVector(HOOK, mean_vector, coefficient)],
                                                    definition=definition)
        out[f"coefficient {coefficient:+g}"] = {
            "p_cheese_ward_after": {"median": interval(after_ds, "median", seed), "mean": interval(after_ds, seed=seed)},
            "p_cheese_ward_change": interval(after_ds - before_ds, seed=seed),
            "fraction_of_mazes_decreased": float(np.mean(after_ds < before_ds)),
            "mean_vector_p_cheese_ward_after": {"median": interval(after_mean_ds, "median", seed)},
            "exact_outcomes": outcome_change(before_outcomes, after_outcomes, seed),
        }
        entry = out[f"coefficient {coefficient:+g}"]
        print(f"coefficient {coefficient:+g}: median P(cheese-ward at decision square) "
              f"{fmt(out['p_cheese_ward_before']['median'])} → {fmt(entry['p_cheese_ward_after']['median'])}; "
              f"P(cheese) {fmt(entry['exact_outcomes']['cheese']['before'])} → "
              f"{fmt(entry['exact_outcomes']['cheese']['after'])}; P(top_right) "
              f"{fmt(entry['exact_outcomes']['top_right']['before'])} → "
              f"{fmt(entry['exact_outcomes']['top_right']['after'])}")
    return out


def cheese_vector_section(policy: ImpalaPolicy, args: argparse.Namespace) -> dict[str, Any]:
    """The cheese vector subtracted (coefficient −1) on decision-square mazes."""
    states = decision_square_mazes(args.n_ds_mazes, args.decision_square)
    vectors = cheese_vectors(policy, states, HOOK)
    return {"hook": HOOK, **_vector_section(policy, args.n_ds_mazes, vectors, (-1.0,), args.seed,
                                            args.decision_square)}


def top_right_vector_section(policy: ImpalaPolicy, args: argparse.Namespace) -> dict[str, Any]:
    """The top-right vector (route 'auto') added and subtracted on decision-square mazes."""
    states = decision_square_mazes(args.n_ds_mazes, args.decision_square)
    vectors = top_right_vectors(policy, states, HOOK)
    return {"hook": HOOK, **_vector_section(policy, args.n_ds_mazes, vectors, (1.0, -1.0), args.seed,
                                            args.decision_square)}


def _targets_by_distance(state: MazeState, rng: np.random.Generator) -> list[tuple[tuple[int, int], int]]:
    """One random open cell per distance bin from the start → top-right path: [(cell, distance)]."""
    n = state.maze_size
    path = path_to_top_right(state.open_cells)
    # distance of every cell to the nearest path cell: BFS from each path cell, minimum over them
    dist = np.min([distance_map(state.open_cells, cell) for cell in path], axis=0)
    excluded = {state.cheese, (n - 1, 0)}
    chosen = []
    for low, high in DISTANCE_BINS:
        cells = [(int(r), int(c)) for r, c in np.argwhere((dist >= low) & (dist <= high) & state.open_cells)
                 if (int(r), int(c)) not in excluded]
        if cells:
            cell = cells[int(rng.integers(len(cells)))]
            chosen.append((cell, int(dist[cell])))
    return chosen


def retarget_section(policy: ImpalaPolicy, args: argparse.Namespace) -> dict[str, Any]:
    """P(reach a target cell within 500 steps) with cheese channels clamped there, by distance from the top-right path."""
    table, tracking, _ = rank_cheese_channels(policy, args.n_channel_mazes)
    ranked = [int(c) for c in table.channel]
    channel_sets = {"best channel": ranked[:1], "best 3": ranked[:3],
                    f"all tracking ({len(tracking)})": tracking or ranked[:1]}
    states = [s for s in decision_square_mazes(4 * args.n_retarget_mazes, args.decision_square) if s.maze_size >= 9]
    states = states[: args.n_retarget_mazes]
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, Any]] = []

    def reach(fields: tuple[Any, Any], target: tuple[int, int]) -> float:
        return float(first_arrival_probabilities(fields[0], [target], reflected_field=fields[1])[0])

    for state in states:
        unedited = mirror_fields(policy, state)  # once per maze, shared by its targets
        for target, distance in _targets_by_distance(state, rng):
            row: dict[str, Any] = {"level_seed": state.level_seed, "maze_size": state.maze_size,
                                   "target": target, "distance": distance, "baseline": reach(unedited, target)}
            for name, channels in channel_sets.items():
                for value in args.clamp_values:
                    clamp = retarget(channels, target, state.maze_size, value, HOOK)
                    row[f"{name} @ {value:g}"] = reach(mirror_fields(policy, state, [clamp]), target)
            rows.append(row)
    conditions = ["baseline"] + [f"{name} @ {v:g}" for name in channel_sets for v in args.clamp_values]
    by_bin = []
    for low, high in DISTANCE_BINS:
        in_bin = [r for r in rows if low <= r["distance"] <= high]
        if len(in_bin) < 2:
            continue
        entry = {"distance": f"{low}" if low == high else (f"{low}-{high}" if high < 10_000 else f"≥{low}"),
                 "n_targets": len(in_bin)}
        for condition in conditions:
            entry[condition] = interval([r[condition] for r in in_bin], seed=args.seed)
        by_bin.append(entry)
        print(f"distance {entry['distance']:>5} (n={len(in_bin):3d}): " + "; ".join(
            f"{c} {entry[c]['estimate']:.3f}" for c in conditions))
    return {"hook": HOOK, "channel_sets": channel_sets, "clamp_values": list(args.clamp_values),
            "n_mazes": len(states), "max_steps": 500, "by_distance": by_bin, "targets": rows}


def ablations(policy: ImpalaPolicy, args: argparse.Namespace) -> dict[str, Any]:
    """Single-channel mean ablations at the steering layer: effect on exact P(cheese), paired over mazes."""
    states = decision_square_mazes(args.n_ds_mazes, args.decision_square)
    attribution = behaviour_attribution(policy, states, HOOK, ablation="mean", definition=args.decision_square)
    mean = mean_ablation(policy, HOOK, 200, seed=args.seed).mean
    _, before = baseline(policy, args.n_ds_mazes, args.decision_square)
    _, tracking, _ = rank_cheese_channels(policy, args.n_channel_mazes)
    channels = [int(c) for c in attribution.channel]
    rng = np.random.default_rng(args.seed)
    top = channels[: args.n_top_channels]
    control = sorted(int(c) for c in rng.choice([c for c in channels if c not in top], args.n_top_channels,
                                                replace=False))
    conditions: dict[str, Sequence[int]] = {f"channel {c}": (c,) for c in top + control}
    if tracking:
        conditions[f"all tracking channels {tracking}"] = tuple(tracking)
    rows = []
    for name, chans in conditions.items():
        after = outcome_probabilities(policy, states, [MeanAblate(HOOK, mean, channels=tuple(chans))])
        change = outcome_change(before, after, args.seed)
        c0 = chans[0]
        rows.append({"condition": name, "channels": list(chans), "control": chans[0] in control and len(chans) == 1,
                     "attribution_delta": float(attribution.row(c0)["delta"]) if len(chans) == 1 else None,
                     **{f"{o}_{k}": v for o, entry in change.items() for k, v in entry.items()}})
        print(f"{name:>40}: P(cheese) change {fmt(change['cheese']['change'])}, "
              f"P(top_right) change {fmt(change['top_right']['change'])}")
    return {"hook": HOOK, "n_mazes": len(states), "ablation": "mean over 200 random mazes",
            "attribution_top": attribution.top(10).to_rows(), "baseline": {
                o: interval(before[:, j], seed=args.seed) for j, o in enumerate(EXACT_OUTCOMES)},
            "conditions": rows}


RUNNERS: dict[str, Callable[[ImpalaPolicy, argparse.Namespace], dict[str, Any]]] = {
    "behaviour": behaviour,
    "cheese-channels": cheese_channels,
    "cheese-vector": cheese_vector_section,
    "top-right-vector": top_right_vector_section,
    "retarget": retarget_section,
    "ablations": ablations,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` shrinks every sample for a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=(*SECTIONS, "all"), default="all")
    parser.add_argument("--checkpoint", default=DEFAULT_AGENT, help="checkpoint path or shipped name")
    parser.add_argument("--out", default="runs/replication", help="folder for <section>.json")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    parser.add_argument("--seed", type=int, default=0, help="action sampling, target choice, bootstrap")
    parser.add_argument("--n-mazes", type=int, default=1000, help="behaviour: standard-distribution mazes")
    parser.add_argument("--n-channel-mazes", type=int, default=200, help="cheese channels: mazes")
    parser.add_argument("--n-ds-mazes", type=int, default=200, help="vectors and ablations: decision-square mazes")
    parser.add_argument("--n-retarget-mazes", type=int, default=30, help="retarget: mazes of side ≥ 9")
    parser.add_argument("--clamp-values", type=float, nargs="+", default=[2.0, 5.5, 10.0],
                        help="retarget: clamp values (published: 5.5)")
    parser.add_argument("--n-top-channels", type=int, default=5, help="ablations: top channels and random controls")
    parser.add_argument("--decision-square", choices=("mazeinterp", "research"), default="mazeinterp",
                        help="which decision square selects the decision-square mazes (default: mazeinterp)")
    parser.add_argument("--quick", action="store_true", help="tiny samples, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_mazes, args.n_channel_mazes, args.n_ds_mazes, args.n_retarget_mazes = 40, 24, 8, 2
        args.clamp_values, args.n_top_channels = args.clamp_values[:1], 2
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections; each writes its JSON (never over an earlier one without --overwrite)."""
    args = parse_args(argv)
    sections = SECTIONS if args.section == "all" else (args.section,)
    out = OutputDir(args.out, overwrite=args.overwrite)
    out.claim(*(f"{s}.json" for s in sections))  # fail before any work if a result is already there
    policy = load_policy(args.checkpoint)
    for section in sections:
        print(f"\n== {section}")
        started = time.perf_counter()
        result = RUNNERS[section](policy, args)
        seconds = time.perf_counter() - started
        header = {"section": section, "checkpoint": str(args.checkpoint), "arguments": vars(args),
                  "decision_square_definition": args.decision_square, "seconds": round(seconds, 1)}
        path = out.write_json(f"{section}.json", {**header, **result})
        print(f"{section}: {seconds:.0f} s → {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
