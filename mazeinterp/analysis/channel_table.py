"""A ranked table of channels, the result of every channel-discovery method of :mod:`mazeinterp.analysis.channels`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ChannelTable"]


@dataclass(frozen=True, eq=False)
class ChannelTable:
    """A ranked table of channels: columns ``channel``, ``score`` and method-specific ones.

    Rows are sorted by ``score``, highest first (NaN last, ties by channel).

    Attributes:
        method: the function that made the table.
        hook: the hook point whose channels are ranked.
        data: column name → (rows,) numpy array; ``channel`` and ``score`` first.
        description: how the score and the columns are computed.
        summary: layer-level numbers (number of mazes, probe accuracy, chance level…).

    >>> table = ChannelTable("example", "embedder.relu3_out",
    ...                      {"channel": np.arange(3), "score": np.array([0.2, 0.9, 0.5])})
    >>> table.top(2).channel
    array([1, 2])
    >>> table.to_rows()[0]
    {'channel': 1, 'score': 0.9}
    """

    method: str
    hook: str
    data: Mapping[str, np.ndarray]
    description: str = ""
    summary: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = {k: np.asarray(v) for k, v in self.data.items()}
        if "channel" not in data or "score" not in data:
            raise ValueError("a ChannelTable needs 'channel' and 'score' columns")
        rows = len(data["channel"])
        for k, v in data.items():
            if v.shape != (rows,):
                raise ValueError(f"column {k!r} has shape {v.shape}, expected ({rows},)")
        score = data["score"].astype(np.float64)
        order = np.lexsort((data["channel"], np.isnan(score), -np.nan_to_num(score, nan=0.0)))
        ordered = {"channel": data["channel"][order].astype(np.int64), "score": score[order]}
        for k, v in data.items():
            if k not in ordered:
                ordered[k] = v[order]
        for v in ordered.values():
            v.setflags(write=False)
        object.__setattr__(self, "data", ordered)
        object.__setattr__(self, "summary", dict(self.summary))

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names, ``channel`` and ``score`` first."""
        return tuple(self.data)

    @property
    def channel(self) -> np.ndarray:
        """Channel indices (n,) int64, best first."""
        return self.data["channel"]

    @property
    def score(self) -> np.ndarray:
        """Scores (n,) float64, best first."""
        return self.data["score"]

    def __len__(self) -> int:
        return len(self.channel)

    def __getitem__(self, column: str) -> np.ndarray:
        """One column (n,), in rank order."""
        try:
            return self.data[column]
        except KeyError:
            raise KeyError(f"no column {column!r}; columns are {list(self.columns)}") from None

    def top(self, k: int = 10) -> ChannelTable:
        """The first ``k`` rows as a table."""
        return ChannelTable(self.method, self.hook, {c: v[:k] for c, v in self.data.items()},
                            self.description, self.summary)

    def rank(self, channel: int) -> int:
        """0-based rank of ``channel`` (0 = best)."""
        where = np.flatnonzero(self.channel == channel)
        if not len(where):
            raise KeyError(f"channel {channel} is not in this table")
        return int(where[0])

    def row(self, channel: int) -> dict[str, Any]:
        """The row of ``channel`` as a dict."""
        i = self.rank(channel)
        return {c: _plain(v[i]) for c, v in self.data.items()}

    def to_rows(self) -> list[dict[str, Any]]:
        """Rows as plain-python dicts, in rank order (ready for csv/json)."""
        return [{c: _plain(v[i]) for c, v in self.data.items()} for i in range(len(self))]

    def __str__(self) -> str:
        limit = 20
        head = f"{self.method} @ {self.hook}"
        if self.summary:
            head += " (" + ", ".join(f"{k}={_fmt(v)}" for k, v in self.summary.items()) + ")"
        lines = [head]
        if self.description:
            lines.append(self.description)
        cols = ["rank", *self.columns]
        cells = [[str(i + 1)] + [_fmt(self.data[c][i]) for c in self.columns] for i in range(min(limit, len(self)))]
        widths = [max(len(c), *(len(r[j]) for r in cells)) if cells else len(c) for j, c in enumerate(cols)]
        lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
        if len(self) > limit:
            lines.append(f"… {len(self) - limit} more rows (table.top(k), table.to_rows())")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ChannelTable({self.method}, {self.hook}, {len(self)} rows, columns={list(self.columns)})"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if np.isnan(v) else f"{v:.4g}"
    return str(v)
