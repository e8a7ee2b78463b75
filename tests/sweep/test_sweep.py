"""Sweeps: the grid, equivalence with plain rollouts, with worker processes and Ray, resumption, outputs.

One small sweep of the shipped default agent (scale 1) serves every test: 6 mazes in 3 shards,
2 channels × (mean ablation, scale) × coefficients (1, 30): 8 conditions, 30 steps at most.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mazeinterp import cli
from mazeinterp.analysis.references import mean_ablation
from mazeinterp.checkpoints.registry import DEFAULT_AGENT, load_policy
from mazeinterp.core.hooks import run_with_cache
from mazeinterp.core.interventions import MeanAblate, PerEpisodeIntervention, Scale, ZeroAblate
from mazeinterp.core.numerics import reference_numerics
from mazeinterp.rollout import RolloutConfig, load_mazes, run_rollouts
from mazeinterp.sweep.runner import (
    Condition,
    EditsByEpisode,
    PartialAblation,
    SweepConfig,
    SweepConfigError,
    conditions,
    load_sweep_config,
    run_sweep,
)

HOOK = "embedder.block2.res1.resadd_out"
SMALL = SweepConfig(checkpoint=DEFAULT_AGENT, hooks=(HOOK,), channels=(1, 7), kinds=("mean", "scale"),
                    coefficients=(1.0, 30.0), n_mazes=6, shard_size=2, max_steps=30, reference_mazes=10,
                    batch_size=16)


@pytest.fixture(scope="module")
def serial(agent, tmp_path_factory):
    """The small sweep run in this process, uninterrupted."""
    return run_sweep(SMALL, tmp_path_factory.mktemp("serial") / "out", workers=0, model=agent, progress=False)


def _numbers(result) -> list[dict]:
    return [dict(row) for row in result.rows]


def _shard_outcomes(out: Path) -> list[tuple]:
    files = sorted((out / "shards").glob("shard-*.json"))
    return [(d["shard"], d["level_seeds"], d["baseline"], d["treated"]) for d in map(json.loads, map(Path.read_text, files))]


def test_grid_order_and_bad_grids(agent) -> None:
    shapes = agent.hook_points()
    grid = conditions(SMALL, shapes)
    assert grid[:3] == [Condition(HOOK, 1, "mean", 1.0), Condition(HOOK, 7, "mean", 1.0),
                        Condition(HOOK, 1, "mean", 30.0)]
    assert len(grid) == 8
    every = conditions(SweepConfig(hooks=(HOOK,), kinds=("zero",)), shapes)
    assert [c.channel for c in every] == list(range(shapes[HOOK][0]))
    with pytest.raises(SweepConfigError, match=r"channel 40 is out of range for hook point .*32 channels"):
        conditions(SweepConfig(hooks=(HOOK,), channels=(40,)), shapes)
    with pytest.raises(SweepConfigError, match="hooks: unknown hook point 'embedder.nope'"):
        conditions(SweepConfig(hooks=("embedder.nope",)), shapes)
    with pytest.raises(SweepConfigError, match="hooks: hook point .fc_policy_out. has shape \\(15,\\); this needs a \\(C, H, W\\) map"):
        conditions(SweepConfig(hooks=("fc_policy_out",)), shapes)
    with pytest.raises(SweepConfigError, match="unknown kind 'ablate'"):
        SweepConfig(kinds=("ablate",))
    with pytest.raises(SweepConfigError, match="shard_size"):
        SweepConfig(shard_size=0)


def test_edits_by_episode_routes_each_row_to_its_block() -> None:
    act = torch.arange(4 * 2 * 3 * 1.0).view(4, 2, 3, 1) / 7 + 1  # batch 4, 2 channels, 3×1 maps, no zeros
    edits = EditsByEpisode("h", edits=(None, ZeroAblate("h", channels=(1,)), Scale("h", 2.0)), block=2)
    edits.set_episode_indices([5, 0, 2, 3])  # blocks 2, 0, 1, 1
    out = edits(act)
    assert torch.equal(out[0], act[0] * 2)
    assert torch.equal(out[1], act[1])  # block 0: untouched, bit for bit
    for row in (2, 3):
        assert torch.equal(out[row, 0], act[row, 0]) and not out[row, 1].any()
    edits.set_episode_indices([0, 1, 0, 1])
    assert edits(act) is act  # no edit in the batch: the activation itself
    assert isinstance(edits, PerEpisodeIntervention), "run_rollouts finds it by its declared protocol"
    copy = dataclasses.replace(edits, block=1)
    assert copy.rows is not edits.rows and copy.rows.indices is None, "a copy does not share the batch rows"
    with pytest.raises(dataclasses.FrozenInstanceError):
        edits.block = 3  # type: ignore[misc]


def test_mean_and_resample_references_come_from_one_pass(model, monkeypatch) -> None:
    """Both kinds at two hook points: one set of mazes, one forward pass; the numbers of a pass per hook and kind."""
    from mazeinterp.maze.env import MazeEnv
    from mazeinterp.sweep.shard import reference_activations

    hooks = (HOOK, "embedder.relu3_out")
    config = SweepConfig(hooks=hooks, kinds=("mean", "resample"), reference_mazes=5, reference_seed=3)
    level_seeds = np.random.default_rng(3).integers(0, 2**31 - 1, size=5).tolist()
    expected = {}
    for hook in hooks:
        for kind in ("mean", "resample"):  # the two passes per hook point of before, computed independently
            with MazeEnv.from_seeds(level_seeds) as env:
                obs = env.observe()[1]
            _, cache = run_with_cache(model, obs, [hook])
            if kind == "mean":
                expected[f"{hook}|mean"] = cache[hook].mean(0)
            else:
                expected[f"{hook}|sources"] = cache[hook]

    built, passes = [], []
    from_seeds = MazeEnv.from_seeds
    monkeypatch.setattr(MazeEnv, "from_seeds", lambda seeds, *a, **k: built.append(list(seeds)) or from_seeds(seeds, *a, **k))
    handle = model.register_forward_pre_hook(lambda _m, args: passes.append(args[0].shape[0]))
    try:
        refs = reference_activations(model, config)
    finally:
        handle.remove()
    assert built == [level_seeds], "the reference mazes are built once"
    assert passes == [5], "one forward pass records every hook point for both kinds"
    assert sorted(refs) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(refs[key], value), key
    assert reference_activations(model, SweepConfig(hooks=hooks, kinds=("zero", "scale"))) == {}


def test_partial_ablation_interpolates() -> None:
    act = torch.full((1, 2, 1, 1), 4.0)
    half = PartialAblation("h", ablation=MeanAblate("h", torch.ones(2, 1, 1), channels=(0,)), strength=0.25,
                           channels=(0,))
    assert half(act).flatten().tolist() == [4.0 - 0.25 * 3.0, 4.0]


def test_sweep_equals_plain_rollouts_of_each_condition(agent, serial) -> None:
    """Every row is what run_rollouts gives for that one intervention on all the mazes (same seed)."""
    states = load_mazes(SMALL.level_seeds)
    config = RolloutConfig(seed=0, max_steps=SMALL.max_steps, progress=False)
    base = run_rollouts(agent, states, (), config).reached("cheese")
    mean = mean_ablation(agent, HOOK, SMALL.reference_mazes, seed=SMALL.reference_seed).mean
    plain = {("mean", 1.0): lambda c: MeanAblate(HOOK, mean, channels=(c,)),
             ("scale", 1.0): lambda c: Scale(HOOK, 1.0, channels=(c,)),
             ("scale", 30.0): lambda c: Scale(HOOK, 30.0, channels=(c,))}
    checked = 0
    for row in serial.rows:
        make = plain.get((row["kind"], row["coefficient"]))
        assert row["p_cheese_baseline"] == base.mean()
        if make is None:
            continue
        treated = run_rollouts(agent, states, [make(row["channel"])], config).reached("cheese")
        assert row["p_cheese"] == treated.mean(), row
        assert row["effect"] == pytest.approx(treated.mean() - base.mean())
        checked += 1
    assert checked == 6
    scale_one = [r for r in serial.rows if r["kind"] == "scale" and r["coefficient"] == 1.0]
    assert all(r["effect"] == 0 and r["effect_low"] < 0 < r["effect_high"] for r in scale_one)
    assert any(r["effect"] != 0 for r in serial.rows), "no edit changed anything: the check above is vacuous"


def test_worker_processes_give_the_same_result(agent, serial, tmp_path: Path) -> None:
    result = run_sweep(SMALL, tmp_path / "out", workers=2, model=agent, progress=False)
    assert _numbers(result) == _numbers(serial)
    assert _shard_outcomes(tmp_path / "out") == _shard_outcomes(serial.paths["csv"].parent)
    assert result.ran == (0, 1, 2)


def test_local_ray_gives_the_same_result(agent, serial, tmp_path: Path, local_ray) -> None:
    result = run_sweep(SMALL, tmp_path / "out", ray_address="local", model=agent, progress=False)
    assert _numbers(result) == _numbers(serial)
    assert _shard_outcomes(tmp_path / "out") == _shard_outcomes(serial.paths["csv"].parent)


def test_killed_sweep_resumes_and_skips_finished_shards(agent, serial, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def die_after_first(shard: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(SMALL, out, workers=0, model=agent, progress=False, on_shard=die_after_first)
    written = sorted(p.name for p in (out / "shards").iterdir())
    assert written == ["shard-00000.json"]  # one complete file, no temporary left behind
    assert not (out / "results.csv").exists()
    resumed = run_sweep(SMALL, out, workers=0, model=agent, progress=False)
    assert resumed.ran == (1, 2)
    assert _numbers(resumed) == _numbers(serial)
    again = run_sweep(SMALL, out, workers=0, model=agent, progress=False)
    assert again.ran == () and again.episodes == 0 and _numbers(again) == _numbers(serial)


def test_folder_of_another_sweep_is_refused_and_kept(agent, serial, tmp_path: Path) -> None:
    out = serial.paths["csv"].parent
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = SweepConfig(**{**SMALL.as_dict(), "max_steps": 41})
    with pytest.raises(SweepConfigError, match="holds another sweep.*max_steps"):
        run_sweep(other, out, workers=0, model=agent, progress=False)
    assert json.loads((out / "summary.json").read_text())["numerics"] == "fast"
    with reference_numerics(), pytest.raises(SweepConfigError, match="numerics: fast there, reference now"):
        run_sweep(SMALL, out, workers=0, model=agent, progress=False)  # results of two numerics never mix
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SweepConfigError, match="holds no sweep"):
        run_sweep(SMALL, tmp_path, workers=0, model=agent, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_table_files_and_heatmap(serial) -> None:
    import pyarrow.parquet as pq

    with serial.paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert [float(r["effect"]) for r in rows] == [r["effect"] for r in serial.rows]
    table = pq.read_table(serial.paths["parquet"]).to_pylist()
    assert table == _numbers(serial)
    assert serial.paths["heatmap"].stat().st_size > 1000
    summary = json.loads(serial.paths["summary"].read_text())
    assert summary["conditions"] == 8 and summary["shards"] == 3
    assert serial.top(2) == sorted(serial.rows, key=lambda r: -abs(r["effect"]))[:2]
    assert np.isclose(summary["top"][0]["effect"], serial.top(1)[0]["effect"])


def test_toml_config(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text('hooks = ["embedder.relu3_out"]\nchannels = "all"\nkinds = ["zero", "clamp"]\n'
                    "coefficients = [0.5, 2]\nn_mazes = 20\nseeds = [0, 1]\n")
    config = load_sweep_config(path)
    assert config.channels is None and config.kinds == ("zero", "clamp") and config.coefficients == (0.5, 2.0)
    assert config.seeds == (0, 1) and config.n_shards == 2 and config.shard_levels(1) == list(range(10, 20))
    path.write_text('kinds = ["mean"]\nmazes = 3\n')
    with pytest.raises(SweepConfigError, match=r"sweep.toml: unknown key 'mazes'"):
        load_sweep_config(path)
    path.write_text('coefficients = ["big"]\n')
    with pytest.raises(SweepConfigError, match=r"sweep.toml: coefficients: expected .*finite numbers"):
        load_sweep_config(path)
    path.write_text("n_mazes = [\n")
    with pytest.raises(SweepConfigError, match="not valid TOML"):
        load_sweep_config(path)


def test_cli_sweep(tmp_path: Path, capsys) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(f'hooks = ["{HOOK}"]\nchannels = [3]\nkinds = ["zero"]\nn_mazes = 2\nshard_size = 2\n'
                    "max_steps = 10\n")
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "1 conditions × 2 mazes × 1 seed(s), sampled estimator: 1 shard(s) run" in out
    assert (tmp_path / "out" / "results.csv").exists()
    path.write_text('kinds = ["ablate"]\n')
    assert cli.main(["sweep", str(path), "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("sweep.toml: kinds: unknown kind 'ablate'; choose from zero, mean, resample, "
                                "scale, clamp, add")


def test_a_worker_builds_the_model_once_per_payload_and_the_sweep_keeps_no_module_state(agent) -> None:
    import ast
    import inspect

    from mazeinterp.sweep import runner

    assert not [n for n in ast.walk(ast.parse(inspect.getsource(runner))) if isinstance(n, ast.Global)]
    payload = runner._pack(agent, {"h": torch.ones(2)})
    model, refs = runner._unpack(bytes(payload))
    assert runner._unpack(bytes(bytearray(payload)))[0] is model  # an equal payload, another object: built once
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), agent.state_dict().values()))
    assert not model.training and torch.equal(refs["h"], torch.ones(2))
    other, other_refs = runner._unpack(runner._pack(agent, {"h": torch.zeros(2)}))  # the next sweep's payload
    assert other is not model and torch.equal(other_refs["h"], torch.zeros(2))
