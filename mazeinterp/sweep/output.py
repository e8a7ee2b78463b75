"""A sweep's merged result: one row per condition, written as CSV (and parquet) with a heatmap.

>>> rows = [{"hook": "h", "kind": "mean", "channel": c, "coefficient": 1.0, "effect": e}
...         for c, e in ((3, 0.1), (5, -0.4))]
>>> [r["channel"] for r in SweepResult(SweepConfig(), tuple(rows)).top(1)]
[5]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mazeinterp.sweep.config import Condition, SweepConfig
from mazeinterp.maze.outcomes import OUTCOME_CODES

__all__ = ["SweepResult", "merge", "plot_heatmap", "write_table"]


@dataclass(frozen=True)
class SweepResult:
    """The merged sweep: one row per condition (see :meth:`rows`), plus how it ran."""

    config: SweepConfig
    """The sweep."""
    rows: tuple[dict[str, Any], ...]
    """Per condition, in grid order: hook, channel, kind, coefficient, estimator, n, P(cheese) baseline and
    edited, the paired difference (``effect``, ``effect_low``, ``effect_high``), the same for P(top-right)
    (and, for an exact sweep, for P(neither) and P(region first): :func:`~mazeinterp.sweep.exact.merge_exact`)."""
    paths: dict[str, Path] = field(default_factory=dict)
    """Written files: ``csv``, ``parquet``, ``heatmap``, ``summary``."""
    ran: tuple[int, ...] = ()
    """Shards run by this call (the others were found finished in the output folder)."""
    seconds: float = 0.0
    """Wall time of this call."""
    episodes: int = 0
    """Episodes run by this call."""

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` rows with the largest |effect| on P(cheese) (ties: grid order)."""
        return sorted(self.rows, key=lambda r: -abs(r["effect"]))[:k]


def merge(config: SweepConfig, grid: Sequence[Condition], shards: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per condition from every sampled shard's outcome codes (pooled over mazes and seeds).

    Exact shards are merged by :func:`mazeinterp.sweep.exact.merge_exact`.
    """
    from mazeinterp.analysis.stats import paired_difference

    order = [shards[k] for k in range(config.n_shards)]
    base = np.concatenate([np.asarray(s["baseline"], dtype=np.int8).ravel() for s in order])
    rows = []
    for i, cond in enumerate(grid):
        treated = np.concatenate([np.asarray(s["treated"][i], dtype=np.int8).ravel() for s in order])
        row: dict[str, Any] = {**asdict(cond), "estimator": "sampled", "n": int(len(base))}
        for name in ("cheese", "top_right"):
            code = OUTCOME_CODES[name]
            b, t = base == code, treated == code
            d = paired_difference(b, t)
            prefix = "" if name == "cheese" else "top_right_"
            row[f"p_{name}_baseline"] = float(b.mean())
            row[f"p_{name}"] = float(t.mean())
            row[f"{prefix}effect"] = d.estimate
            row[f"{prefix}effect_low"] = d.low
            row[f"{prefix}effect_high"] = d.high
        rows.append(row)
    return rows


def write_table(out: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """Write ``rows`` as ``out/results.csv`` and, with pyarrow, ``out/results.parquet``; → the paths written."""
    import csv

    paths = {"csv": out / "results.csv", "parquet": out / "results.parquet"}
    tmp = out / ".results.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, paths["csv"])
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        paths.pop("parquet")  # CSV only; the parquet table needs the [ray] extra's pyarrow
    else:
        table = pa.Table.from_pylist([dict(r) for r in rows])
        pq.write_table(table, out / ".results.parquet.tmp")
        os.replace(out / ".results.parquet.tmp", paths["parquet"])
    return paths


def plot_heatmap(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Heatmap of the effect on P(cheese) by channel (x) and coefficient (y), one panel per hook and kind.

    The titles name the rows' ``estimator`` (sampled or exact).
    """
    from mazeinterp.viz.plots import new_figure, save_figure

    panels = list(dict.fromkeys((r["hook"], r["kind"]) for r in rows))
    estimator = rows[0].get("estimator", "sampled")
    channels = sorted({r["channel"] for r in rows})
    coefs = sorted({r["coefficient"] for r in rows})
    limit = max(0.05, max(abs(r["effect"]) for r in rows))  # a sweep of null effects stays pale
    width = min(24.0, max(6.0, 0.18 * len(channels)))
    fig, axes = new_figure(nrows=len(panels), size=1.0)
    fig.set_size_inches(width, (1.6 + 0.35 * len(coefs)) * len(panels) + 0.4)
    fig.set_layout_engine("constrained")
    for ax, (hook, kind) in zip(axes[:, 0], panels):
        grid = np.full((len(coefs), len(channels)), np.nan)
        for r in rows:
            if (r["hook"], r["kind"]) == (hook, kind):
                grid[coefs.index(r["coefficient"]), channels.index(r["channel"])] = r["effect"]
        image = ax.imshow(grid, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_yticks(range(len(coefs)), [f"{c:g}" for c in coefs])
        step = max(1, len(channels) // 32)
        ax.set_xticks(range(0, len(channels), step), [str(c) for c in channels[::step]], fontsize=7)
        ax.set_xlabel("channel")
        ax.set_ylabel("coefficient")
        ax.set_title(f"{kind} at {hook}: change in P(cheese), {estimator}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="effect")
    return save_figure(fig, path)
