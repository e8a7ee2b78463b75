"""``run_rollouts(..., streams=...)``: a maze's random numbers follow its stream key, not its position."""

from __future__ import annotations

import pytest

from mazeinterp.rollout import RolloutConfig, run_rollouts

CONFIG = RolloutConfig(seed=3, max_steps=25, record_trajectories=True, progress=False)


def _paths(result) -> list[tuple]:
    return [ep.trajectory for ep in result.episodes]


def test_copies_with_one_stream_walk_alike_and_pieces_match_the_whole(model, seeded_states) -> None:
    a, b, c = seeded_states[:3]
    whole = _paths(run_rollouts(model, [a, b, c], (), CONFIG))
    copies = _paths(run_rollouts(model, [b, c, b, c], (), CONFIG, streams=[1, 2, 1, 2]))
    assert copies == [whole[1], whole[2], whole[1], whole[2]]
    shifted = _paths(run_rollouts(model, [b, c], (), CONFIG))  # positions 0, 1: other random numbers
    assert shifted != whole[1:]


def test_bad_streams(model, seeded_states) -> None:
    with pytest.raises(ValueError, match="streams must be 2 non-negative ints"):
        run_rollouts(model, seeded_states[:2], (), CONFIG, streams=[0])
    with pytest.raises(ValueError, match="streams must be 2 non-negative ints"):
        run_rollouts(model, seeded_states[:2], (), CONFIG, streams=[0, -1])
