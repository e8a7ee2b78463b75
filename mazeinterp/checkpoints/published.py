"""The published maze checkpoints that can be fetched by name: the one table of names, URLs, sources and hashes.

``load_policy("published:maze-rand-region-5")`` and ``mazeinterp fetch
maze-rand-region-5`` download the file named here (see :mod:`mazeinterp.checkpoints.fetch`).
A ``sha256`` of None means no hash is known yet: the first download that
loads as a valid published-format checkpoint records its hash in the user's
cache, and later downloads must match it. To pin a hash for every user, put it
in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PUBLISHED", "PUBLISHED_PREFIX", "PublishedCheckpoint"]

PUBLISHED_PREFIX = "published:"
"""Prefix that makes :func:`mazeinterp.load_policy` fetch a checkpoint of :data:`PUBLISHED` by name."""


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One published checkpoint file and where it comes from."""

    name: str
    """Short name, e.g. ``"maze-rand-region-5"``."""
    url: str
    """Where the file is downloaded from."""
    filename: str
    """File name in the cache."""
    source: str
    """Where the URL is documented."""
    description: str
    """What the network is."""
    sha256: str | None = None
    """Hex sha256 of the file, or None while no hash is known."""
    size: int | None = None
    """Size of the file in bytes, or None while unknown (downloads then stop at
    :data:`mazeinterp.checkpoints.fetch.DEFAULT_MAX_BYTES`)."""


PUBLISHED: dict[str, PublishedCheckpoint] = {
    entry.name: entry
    for entry in [
        PublishedCheckpoint(
            name="maze-rand-region-5",
            url="https://nerdsniper.net/mats/model_rand_region_5.pth",
            filename="model_rand_region_5.pth",
            source="procgen_tools/utils.py of the research code of Understanding and Controlling a "
                   "Maze-Solving Policy Network (Mini, Udell, Turner et al. 2023)",
            description="the goal-misgeneralization maze agent analysed in that work: IMPALA CNN, scale 4, "
                        "PPO with the cheese in the top-right 5×5 region",
        ),
    ]
}
"""Fetchable checkpoints by name."""
