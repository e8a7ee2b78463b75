"""Exact sweeps: per-condition numbers against independent outcome probabilities, workers, Ray, resumption.

One small exact sweep of the shipped default agent (scale 1) serves the tests: level seeds 18-23
(mazes of side 3 to 11) in 3 shards, channel 7 × (mean ablation, scale) × coefficients (1, 30):
4 conditions, 30 steps at most.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mazeinterp import cli
from mazeinterp.analysis.references import mean_ablation
from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.core.interventions import MeanAblate, Scale
from mazeinterp.rollout import load_mazes, place_cheese
from mazeinterp.analysis.stats import bootstrap_interval
from mazeinterp.sweep.runner import (
    Condition,
    SweepConfig,
    SweepConfigError,
    load_sweep_config,
    merge_exact,
    run_shard,
    run_sweep,
)
from mazeinterp.sweep.exact import EXACT_COLUMNS, placements
from mazeinterp.analysis.vfield import EXACT_OUTCOMES, outcome_probabilities

HOOK = "embedder.block2.res1.resadd_out"
EXACT = SweepConfig(checkpoint=DEFAULT_AGENT, hooks=(HOOK,), channels=(7,), kinds=("mean", "scale"),
                    coefficients=(1.0, 30.0), n_mazes=6, start_level=18, shard_size=2, max_steps=30,
                    reference_mazes=10, estimator="exact")


@pytest.fixture(scope="module")
def serial(agent, tmp_path_factory):
    """The small exact sweep run in this process, uninterrupted."""
    return run_sweep(EXACT, tmp_path_factory.mktemp("exact") / "out", workers=0, model=agent, progress=False)


def _files(out: Path) -> dict[str, bytes]:
    """results.csv and the shards' probabilities (not their timings), to compare two runs byte for byte."""
    shards = [json.loads(p.read_text()) for p in sorted((out / "shards").glob("shard-*.json"))]
    outcomes = [(s["shard"], s["level_seeds"], s["baseline"], s["treated"]) for s in shards]
    return {"results.csv": (out / "results.csv").read_bytes(), "shards": json.dumps(outcomes).encode()}


def test_exact_sweep_equals_outcome_probabilities_of_each_condition(agent, serial) -> None:
    """Every row is the mean over mazes of outcome_probabilities, computed here on all six mazes at once."""
    states = load_mazes(EXACT.level_seeds)
    mean = mean_ablation(agent, HOOK, EXACT.reference_mazes, seed=EXACT.reference_seed).mean
    edits = {("mean", 1.0): MeanAblate(HOOK, mean, channels=(7,)), ("scale", 1.0): Scale(HOOK, 1.0, channels=(7,)),
             ("scale", 30.0): Scale(HOOK, 30.0, channels=(7,))}
    base = outcome_probabilities(agent, states, max_steps=EXACT.max_steps, progress=False)
    checked = 0
    for row in serial.rows:
        assert row["estimator"] == "exact" and row["n"] == 6
        for j, name in enumerate(EXACT_OUTCOMES):
            assert row[f"p_{name}_baseline"] == pytest.approx(base[:, j].mean(), abs=1e-12)
        edit = edits.get((row["kind"], row["coefficient"]))
        if edit is None:
            continue
        treated = outcome_probabilities(agent, states, [edit], max_steps=EXACT.max_steps, progress=False)
        for j, name in enumerate(EXACT_OUTCOMES):
            prefix = "" if name == "cheese" else f"{name}_"
            diff = treated[:, j] - base[:, j]
            assert row[f"p_{name}"] == pytest.approx(treated[:, j].mean(), abs=1e-12), (row, name)
            assert row[f"{prefix}effect"] == pytest.approx(diff.mean(), abs=1e-12), (row, name)
            low, high = bootstrap_interval(diff, seed=EXACT.seeds[0])[1:]
            assert (row[f"{prefix}effect_low"], row[f"{prefix}effect_high"]) == pytest.approx((low, high), abs=1e-12)
            assert row[f"{prefix}effect_low"] <= row[f"{prefix}effect"] <= row[f"{prefix}effect_high"]
        checked += 1
    assert checked == 3
    identity = [r for r in serial.rows if r["kind"] == "scale" and r["coefficient"] == 1.0]
    assert [(r["effect"], r["effect_low"], r["effect_high"]) for r in identity] == [(0.0, 0.0, 0.0)]
    strong = [r for r in serial.rows if r["coefficient"] == 30.0]
    assert all(r["effect_high"] < -0.1 for r in strong), "scaling a channel by 30 should cost P(cheese) here"


def test_worker_processes_give_byte_identical_results(agent, serial, tmp_path: Path) -> None:
    result = run_sweep(EXACT, tmp_path / "out", workers=2, model=agent, progress=False)
    assert result.ran == (0, 1, 2)
    assert _files(tmp_path / "out") == _files(serial.paths["csv"].parent)


def test_local_ray_gives_byte_identical_results(agent, serial, tmp_path: Path, local_ray) -> None:
    run_sweep(EXACT, tmp_path / "out", ray_address="local", model=agent, progress=False)
    assert _files(tmp_path / "out") == _files(serial.paths["csv"].parent)


def test_killed_exact_sweep_resumes_byte_identical(agent, serial, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def die_after_first(shard: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(EXACT, out, workers=0, model=agent, progress=False, on_shard=die_after_first)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["shard-00000.json"]
    assert not (out / "results.csv").exists()
    resumed = run_sweep(EXACT, out, workers=0, model=agent, progress=False)
    assert resumed.ran == (1, 2)
    assert _files(out) == _files(serial.paths["csv"].parent)


def test_outputs_name_the_estimator(agent, serial, tmp_path: Path) -> None:
    summary = json.loads(serial.paths["summary"].read_text())
    assert summary["estimator"] == "exact" and summary["config"]["estimator"] == "exact"
    header = serial.paths["csv"].read_text().splitlines()[0].split(",")
    assert header[:6] == ["hook", "channel", "kind", "coefficient", "estimator", "n"]
    for name in EXACT_OUTCOMES:
        prefix = "" if name == "cheese" else f"{name}_"
        assert {f"p_{name}", f"{prefix}effect_low", f"{prefix}effect_high"} <= set(header)
    assert serial.paths["heatmap"].stat().st_size > 1000
    # the folder of an exact sweep is not resumed as a sampled one, and is left as it was
    out = serial.paths["csv"].parent
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    sampled = SweepConfig(**{**EXACT.as_dict(), "estimator": "sampled"})
    with pytest.raises(SweepConfigError, match="holds another sweep.*estimator"):
        run_sweep(sampled, out, workers=0, model=agent, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_merge_by_hand() -> None:
    """Two mazes in two shards, one condition: the effect is the mean of the two per-maze differences."""
    config = SweepConfig(n_mazes=2, shard_size=1, estimator="exact")
    grid = [Condition(HOOK, 0, "zero", 1.0)]

    def shard(k: int, base: list[float], treated: list[float]) -> dict:
        return {"shard": k, "estimator": "exact", "level_seeds": [k], "baseline": [[base]], "treated": [[[treated]]]}

    shards = {0: shard(0, [0.5, 0.25, 0.25, 0.5], [0.25, 0.5, 0.25, 1.0]),
              1: shard(1, [1.0, 0.0, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0])}
    row = merge_exact(config, grid, shards)[0]
    # differences: cheese -0.25 and -0.5, top-right +0.25 and +0.25, neither 0 and +0.25, region +0.5 and 0
    assert row["p_cheese_baseline"] == 0.75 and row["p_cheese"] == 0.375 and row["n"] == 2
    assert (row["effect"], row["top_right_effect"], row["neither_effect"], row["region_first_effect"]) == (
        -0.375, 0.25, 0.125, 0.25)
    assert (row["top_right_effect_low"], row["top_right_effect_high"]) == (0.25, 0.25)  # no spread, no width
    assert row["effect_low"] == -0.5 and row["effect_high"] == -0.25  # the bootstrap of two values spans them
    shards[1]["treated"][0][0][0][2] = float("nan")
    with pytest.raises(ValueError, match="shard 1: condition 0 has values that are not finite"):
        merge_exact(config, grid, shards)
    shards[1] = {"shard": 1, "level_seeds": [1], "baseline": [[0]], "treated": [[[2]]]}  # a sampled shard
    with pytest.raises(ValueError, match="shard 1: baseline holds no exact outcome probabilities .*'sampled'"):
        merge_exact(config, grid, shards)


def test_cheese_placements_follow_the_rollouts(agent) -> None:
    states = load_mazes(EXACT.level_seeds[:2])
    assert placements(EXACT, 0, states) == [states]
    regional = SweepConfig(**{**EXACT.as_dict(), "cheese_region": 3, "seeds": [4, 9]})
    placed = placements(regional, 0, states)
    assert placed == [place_cheese(states, 3, seed=4), place_cheese(states, 3, seed=9)]
    # a later shard's mazes keep the random stream of their position in the whole sweep
    later = placements(regional, 1, load_mazes(regional.shard_levels(1)))
    whole = place_cheese(load_mazes(regional.level_seeds[:4]), 3, seed=4)
    assert [s.cheese for s in later[0]] == [s.cheese for s in whole[2:4]]
    assert [s.cheese for s in placed[0]] != [s.cheese for s in placed[1]]  # the seeds do place it differently
    assert EXACT_COLUMNS == EXACT_OUTCOMES
    with pytest.raises(ValueError, match="run_shard samples rollouts; a sweep with estimator 'exact'"):
        run_shard(agent, EXACT, 0, [], {})


def test_bad_estimators_are_one_line_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(SweepConfigError, match=r"^estimator: unknown estimator 'exakt'; choose from sampled, exact$"):
        SweepConfig(estimator="exakt")
    with pytest.raises(SweepConfigError, match="estimator: 'exact' .* greedy = true needs estimator = 'sampled'"):
        SweepConfig(estimator="exact", greedy=True)
    with pytest.raises(SweepConfigError, match=r"estimator: 'exact' needs n_mazes >= 2"):
        SweepConfig(estimator="exact", n_mazes=1)
    path = tmp_path / "sweep.toml"
    path.write_text("estimator = 'exakt'\n")
    with pytest.raises(SweepConfigError, match=r"sweep.toml: estimator: unknown estimator 'exakt'"):
        load_sweep_config(path)
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "a"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("sweep.toml: estimator: unknown estimator 'exakt'; choose from "
                                             "sampled, exact")
    path.write_text("greedy = true\n")
    assert cli.main(["sweep", str(path), "--estimator", "exact", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "greedy = true needs estimator = 'sampled'" in err[0]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", str(path), "--estimator", "exakt"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "argument --estimator: invalid choice: 'exakt'" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_exact_sweep(tmp_path: Path, capsys) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(f'hooks = ["{HOOK}"]\nchannels = [7]\nkinds = ["zero"]\nn_mazes = 2\nstart_level = 18\n'
                    "shard_size = 2\nmax_steps = 10\n")
    assert cli.main(["sweep", str(path), "--estimator", "exact", "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "1 conditions × 2 mazes × 1 seed(s), exact estimator: 1 shard(s) run" in out
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[4] == "exact"
    assert json.loads((tmp_path / "out" / "sweep.json").read_text())["config"]["estimator"] == "exact"
    assert np.isfinite([float(v) for v in rows[1].split(",")[5:]]).all()


def test_example_config_is_an_exact_sweep() -> None:
    config = load_sweep_config(Path(__file__).resolve().parents[2] / "docs" / "examples" / "exact-sweep.toml")
    assert config.estimator == "exact" and config.channels is None and config.kinds == ("mean",)
    assert config.n_mazes == 100 and config.n_shards == 10


def test_sampled_sweep_folders_from_before_estimators_resume(agent, tmp_path: Path) -> None:
    """A sampled sweep whose manifest was written without the estimator key is resumed, not refused.

    (Its shards are sealed with a checksum, so a shard edited the same way is refused: see test_sweep_files.)"""
    config = SweepConfig(checkpoint=DEFAULT_AGENT, hooks=(HOOK,), channels=(7,), kinds=("zero",), n_mazes=2,
                         start_level=18, shard_size=2, max_steps=10)
    out = tmp_path / "out"
    first = run_sweep(config, out, workers=0, model=agent, progress=False)
    assert first.rows[0]["estimator"] == "sampled"
    manifest = json.loads((out / "sweep.json").read_text())
    manifest["config"].pop("estimator")
    (out / "sweep.json").write_text(json.dumps(manifest))
    again = run_sweep(config, out, workers=0, model=agent, progress=False)
    assert again.ran == () and again.rows == first.rows


def test_a_shard_shares_one_prefix_pass_per_hook_and_equals_each_condition_alone(agent) -> None:
    """shard_outcomes runs the network up to each hook once; every row equals exact_outcomes bit for bit."""
    from mazeinterp.sweep.runner import conditions, reference_activations
    from mazeinterp.sweep.exact import exact_outcomes, shard_outcomes

    config = SweepConfig(checkpoint=DEFAULT_AGENT, hooks=(HOOK, "embedder.relu3_out"), channels=(3, 7),
                         kinds=("zero", "scale"), coefficients=(2.0,), n_mazes=3, start_level=18, shard_size=3,
                         max_steps=30, reference_mazes=10, estimator="exact")
    grid = conditions(config, agent.hook_points())
    refs = reference_activations(agent, config)
    states = load_mazes(config.level_seeds)
    shared = shard_outcomes(agent, states, grid, refs, config)
    assert shared.shape == (1 + len(grid), 3, 4) and len(grid) == 8
    assert np.array_equal(shared[0], exact_outcomes(agent, states, None, refs, config))
    for k, condition in enumerate(grid):
        assert np.array_equal(shared[1 + k], exact_outcomes(agent, states, condition, refs, config)), condition
    assert not np.array_equal(shared[1], shared[0])  # the edits do change the outcomes
