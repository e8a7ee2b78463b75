"""Property tests: a mutated resume file, shard or sweep.json is refused with one line or read back identically.

The files are real: a resume file of a random scale-1 policy's interrupted run
(5 mazes, 3 finished), and a shard and manifest sealed as a sweep writes them.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing.files import fuzz_file, manifest_reader, mutate, reseal, resume_reader, shard_reader, try_file
from mazeinterp.runtime.digests import data_sha256
from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts
from mazeinterp.rollout.resume import RESUME_FILE, ResumeError, ResumeKey, save_partial
from mazeinterp.sweep.runner import SweepConfig, SweepConfigError
from mazeinterp.sweep.files import MANIFEST, claim_folder, seal_shard, shard_path

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SWEEP = SweepConfig(n_mazes=5, shard_size=2, seeds=(0, 1), start_level=40)


@pytest.fixture(scope="module")
def resume(model, tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("resume")
    states = load_mazes(range(20, 25))
    config = RolloutConfig(max_steps=15, seed=1, progress=False, record_trajectories=True, record_action_probs=True)
    key = ResumeKey.of({"seed": 1}, model, config, states)
    save_partial(folder, run_rollouts(model, states, config=config, indices=[0, 2, 4]), key)
    return {"text": (folder / RESUME_FILE).read_text(), "read": resume_reader(folder, key, states)}


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sweep")
    result = {"format": 2, "shard": 1, "level_seeds": [42, 43], "baseline": [[0, 2], [1, 0]],
              "treated": [[[2, 2], [0, 1]], [[1, 1], [0, 0]]], "episodes": 12, "seconds": 0.5}
    path = shard_path(out, 1)
    path.parent.mkdir()
    path.write_text(json.dumps(seal_shard(result, SWEEP, "c" * 64)))
    return {"text": path.read_text(), "read": shard_reader(path, SWEEP, "c" * 64, 2, 1)}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("manifest") / "out"
    data = {"config": SWEEP.as_dict(), "checkpoint": "maze-s1-r5-v5", "model_sha256": "d" * 64,
            "conditions": 2, "conditions_sha256": "e" * 64, "numerics": "fast"}
    claim_folder(out, data)
    return {"text": (out / MANIFEST).read_text(), "read": manifest_reader(out, data)}


def _check(file: dict[str, Any], rnd: random.Random, refusals: tuple[type[Exception], ...],
           resealed: bool = False) -> None:
    mutated, what = mutate(file["text"], rnd)
    kind, note = try_file(reseal(mutated) if resealed else mutated, file["read"], file["read"](file["text"]), refusals)
    # a re-sealed edit the schema accepts is a valid file of other contents: only crashes are wrong then
    assert kind in ("refused", "identical", *(("different",) if resealed else ())), f"{what}: {kind}: {note}"


@FUZZ
@given(rnd=st.randoms(use_true_random=False))
def test_a_mutated_resume_file_is_refused_or_identical(resume, rnd: random.Random) -> None:
    _check(resume, rnd, (ResumeError,))


@FUZZ
@given(rnd=st.randoms(use_true_random=False))
def test_a_mutated_shard_is_refused_or_identical(shard, rnd: random.Random) -> None:
    _check(shard, rnd, (SweepConfigError,))


@FUZZ
@given(rnd=st.randoms(use_true_random=False))
def test_a_mutated_manifest_is_refused_or_identical(manifest, rnd: random.Random) -> None:
    _check(manifest, rnd, (SweepConfigError,))


@FUZZ
@given(rnd=st.randoms(use_true_random=False))
def test_a_resealed_resume_file_or_shard_is_never_a_traceback(resume, shard, rnd: random.Random) -> None:
    _check(resume, rnd, (ResumeError,), resealed=True)
    _check(shard, rnd, (SweepConfigError,), resealed=True)


def test_the_fuzz_counts_what_it_sees(shard) -> None:
    """A reader that trusts every file is caught giving different results; one that crashes, tracebacks."""

    def trusting(text: str) -> Any:
        return json.loads(text)

    counts = fuzz_file("shard", shard["text"], trusting, (ValueError,), 300, seed=0)
    assert counts.mutations == 300 and counts.counts["different"] > 0 and counts.failures > 0
    assert counts.counts["refused"] > 0  # broken JSON: json's ValueError
    crashing = fuzz_file("shard", shard["text"], lambda text: json.loads(text)["baseline"][1][0], (), 50, seed=0)
    assert crashing.counts["traceback"] > 0 and "traceback" in str(crashing)


def test_resealed_edits_are_caught_by_the_schema(shard) -> None:
    data = json.loads(shard["text"])
    data.pop("checksum")
    data["baseline"][0][0] = 5
    data["checksum"] = data_sha256(data)
    kind, note = try_file(json.dumps(data), shard["read"], None, (SweepConfigError,))
    assert kind == "refused" and "baseline holds 5" in note
