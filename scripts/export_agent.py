"""Export a training checkpoint as a shippable agent: weights and metadata, no optimizer or RNG state.

Example::

    python scripts/export_agent.py runs/imitate-s1-r5/checkpoint_final.pt checkpoints/maze-s1-r5-v5.pt \\
        --note "interim: CPU behaviour cloning + DAgger, scale 1, 11.1M frames; awaiting a GPU run"
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from mazeinterp.checkpoints.registry import load_policy, save_policy

_TRAINING_ONLY = {"streams", "numpy_rng_state", "torch_rng_state", "rng_states", "env_states"}


def main() -> None:
    """Parse arguments, strip training-only state and write the agent."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a checkpoint written by a trainer")
    parser.add_argument("target", type=Path, help="where to write the agent (e.g. checkpoints/NAME.pt)")
    parser.add_argument("--note", default="", help="a line of provenance to keep in the metadata")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing target")
    args = parser.parse_args()

    policy = load_policy(args.source)
    metadata = {k: v for k, v in policy.metadata.items() if k not in _TRAINING_ONLY}
    metadata.update({
        "exported_from": args.source.name,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": args.note,
    })
    for key in ("scale", "format_version", "mazeinterp_version"):
        metadata.pop(key, None)
    path = save_policy(policy, args.target, metadata=metadata, overwrite=args.overwrite)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
