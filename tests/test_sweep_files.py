"""A sweep's files: shards and the manifest are checked before anything is merged; finding them is cheap.

Most tests use hand-made shards of a 5-maze sweep in shards of 2 (shards 0, 1, 2;
2 conditions, 2 seeds); one runs a tiny real sweep through the command line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mazeinterp import cli
from mazeinterp.checkpoint import DEFAULT_AGENT, load_policy
from mazeinterp.digests import data_sha256
from mazeinterp.sweep import SweepConfig, SweepConfigError, run_sweep
from mazeinterp.sweep_files import (
    MANIFEST,
    SweepFileError,
    claim_folder,
    finished_shards,
    read_shard,
    seal_shard,
    shard_path,
)

CONFIG = SweepConfig(n_mazes=5, shard_size=2, seeds=(0, 1), start_level=40)
HASH = "a" * 64
CONDITIONS = 2


def _result(shard: int) -> dict[str, Any]:
    """What run_shard returns for ``shard`` of CONFIG (made up outcomes)."""
    levels = CONFIG.shard_levels(shard)
    n = len(levels)
    return {"format": 2, "shard": shard, "level_seeds": levels, "baseline": [[0] * n, [1] * n],
            "treated": [[[2] * n, [0] * n] for _ in range(CONDITIONS)], "episodes": n * 2 * (CONDITIONS + 1),
            "seconds": 0.25}


def _write(out: Path, data: Any) -> Path:
    path = shard_path(out, data["shard"] if isinstance(data, dict) and "shard" in data else 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _refused(path: Path, match: str, shard: int = 1) -> None:
    with pytest.raises(SweepFileError, match=match) as error:
        read_shard(path, CONFIG, HASH, CONDITIONS, shard)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_a_sealed_shard_reads_back_as_written(tmp_path: Path) -> None:
    sealed = seal_shard(_result(2), CONFIG, HASH)
    assert sealed["mazes"] == [4, 5] and sealed["sweep_sha256"] == HASH and sealed["level_seeds"] == [44]
    path = _write(tmp_path, sealed)
    assert read_shard(path, CONFIG, HASH, CONDITIONS, 2) == sealed
    assert finished_shards(tmp_path, CONFIG, HASH, CONDITIONS) == {2: sealed}


def _resealed(change) -> dict[str, Any]:
    data = seal_shard(_result(1), CONFIG, HASH)
    data.pop("checksum")
    change(data)
    data["checksum"] = data_sha256(data)
    return data


@pytest.mark.parametrize(("change", "match"), [
    (lambda d: d.pop("baseline"), "missing key 'baseline'"),
    (lambda d: d["baseline"][0].__setitem__(1, 3), r"baseline holds 3, not an outcome code \[0, 1, 2\]"),
    (lambda d: d["baseline"][0].__setitem__(1, True), "baseline holds True, not an outcome code"),
    (lambda d: d["baseline"][0].__setitem__(1, "0"), "baseline holds '0', not an outcome code"),
    (lambda d: d["baseline"].pop(), "baseline is not a list of 2"),
    (lambda d: d["treated"].pop(), "treated is not a list of 2"),
    (lambda d: d["treated"][1][0].append(0), "treated is not a list of 2"),
    (lambda d: d.update(level_seeds=[0, 1]), r"level_seeds is \[0, 1\], not this shard's \[42, 43\]"),
    (lambda d: d.update(mazes=[0, 2]), r"mazes is \[0, 2\], not this shard's \[2, 4\]"),
    (lambda d: d.update(shard=True), "shard is True, not this shard's 1"),
    (lambda d: d.update(episodes=7), "episodes is 7, not this shard's 12"),
    (lambda d: d.update(seconds=float("nan")), "seconds is nan, not a duration"),
    (lambda d: d.update(sweep_sha256="b" * 64), "it belongs to another sweep"),
])
def test_a_foreign_or_inconsistent_shard_is_refused_naming_the_problem(tmp_path: Path, change, match) -> None:
    _refused(_write(tmp_path, _resealed(change)), match)


def test_any_edit_breaks_the_checksum(tmp_path: Path) -> None:
    data = seal_shard(_result(1), CONFIG, HASH)
    data["baseline"][1][0] = 0  # a valid code: only the checksum can tell
    _refused(_write(tmp_path, data), "checksum does not match its contents .*delete it to run that shard again")


@pytest.mark.parametrize(("content", "match"), [
    (b"", r"is not a shard file \(half-written or corrupted\?\).*Expecting value"),
    (b'{"format": 2, "shard": 1, "level_s', "is not a shard file .*Unterminated string"),
    (bytes(range(256)), "is not a shard file .*codec can't decode"),
    (b"{", "is not a shard file"),
    (b"[0, 1, 2]", "a JSON list, not a shard object"),
    (b'{"format": 7}', "unknown format 7"),
    (json.dumps({k: v for k, v in _result(1).items() if k != "format"}).encode(), "earlier version of mazeinterp"),
    (json.dumps({**_result(1), "format": 1}).encode(), "earlier version of mazeinterp"),
])
def test_damaged_and_old_shards_are_one_line_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = shard_path(tmp_path, 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    _refused(path, match)


def test_finding_shards_lists_the_folder_only(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in (".shard-00001.json.123.tmp", "notes.txt", "shard-1.json", "shard-000001.json"):
        (folder / name).write_text("not a shard")  # none is a name the sweep writes: ignored
    assert finished_shards(tmp_path, CONFIG, HASH, CONDITIONS) == {}
    shard_path(tmp_path, 1).mkdir()
    with pytest.raises(SweepFileError, match="shard-00001.json is not a shard file .*Is a directory"):
        finished_shards(tmp_path, CONFIG, HASH, CONDITIONS)
    shard_path(tmp_path, 1).rmdir()
    _write(tmp_path, {**seal_shard(_result(1), CONFIG, HASH), "shard": 3})
    with pytest.raises(SweepFileError, match="shard 3 is beyond this sweep's 3 shards"):
        finished_shards(tmp_path, CONFIG, HASH, CONDITIONS)


def test_finding_shards_of_a_huge_sweep_costs_the_files_present(tmp_path: Path) -> None:
    huge = SweepConfig(n_mazes=1073741823, shard_size=10)  # 107,374,183 shards possible
    for shard in (0, 107374182):
        data = {**_result(0), "shard": shard, "level_seeds": huge.shard_levels(shard), "baseline": [[0] * 10],
                "treated": [], "episodes": 10, "seconds": 1.0}
        if shard == 107374182:
            data.update(baseline=[[0] * 3], episodes=3)
        _write(tmp_path, seal_shard(data, huge, HASH))
    started = time.perf_counter()
    found = finished_shards(tmp_path, huge, HASH, 0)
    assert sorted(found) == [0, 107374182] and found[107374182]["mazes"] == [1073741820, 1073741823]
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(("content", "match"), [
    (b"[1, 2]", r"sweep.json is not a sweep manifest \(no config object\)"),
    (b'{"config": {"n_mazes": 5}', "sweep.json is not a sweep manifest .*Expecting"),
    (bytes(range(256)), "sweep.json is not a sweep manifest .*codec can't decode"),
    (json.dumps({"config": {**CONFIG.as_dict(), "n_mazes": 6}}).encode(), "holds another sweep .*n_mazes"),
    (json.dumps({"config": {**CONFIG.as_dict(), "kinds\nx": 1}}).encode(), r"holds another sweep .*'kinds\\nx'"),
])
def test_a_manifest_that_is_not_this_sweeps_is_refused_and_kept(tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / MANIFEST).write_bytes(content)
    with pytest.raises(SweepConfigError, match=match) as error:
        claim_folder(tmp_path, {"config": CONFIG.as_dict()})
    assert "\n" not in str(error.value) and (tmp_path / MANIFEST).read_bytes() == content


def test_a_manifest_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).mkdir()
    with pytest.raises(SweepConfigError, match="sweep.json is not a sweep manifest .*Is a directory"):
        claim_folder(tmp_path, {"config": CONFIG.as_dict()})


def test_the_command_line_refuses_bad_shards_with_one_line(tmp_path: Path, capsys) -> None:
    toml = tmp_path / "sweep.toml"
    toml.write_text('hooks = ["embedder.relu3_out"]\nchannels = [3]\nkinds = ["zero"]\nn_mazes = 2\n'
                    "shard_size = 1\nmax_steps = 5\n")
    toml.write_text(f'checkpoint = "{DEFAULT_AGENT}"\n' + toml.read_text())
    model = load_policy(DEFAULT_AGENT)
    config = SweepConfig(checkpoint=DEFAULT_AGENT, hooks=("embedder.relu3_out",), channels=(3,), kinds=("zero",),
                         n_mazes=2, shard_size=1, max_steps=5)
    first = run_sweep(config, tmp_path / "a", workers=0, model=model, progress=False)
    other = run_sweep(SweepConfig(**{**config.as_dict(), "max_steps": 6}), tmp_path / "b", workers=0,
                      model=model, progress=False)
    assert first.rows and other.rows
    table = (tmp_path / "a" / "results.csv").read_bytes()
    shard = shard_path(tmp_path / "a", 1)
    shard.write_bytes(shard_path(tmp_path / "b", 1).read_bytes())  # copied from another sweep
    with pytest.raises(SweepFileError, match="shard-00001.json: it belongs to another sweep"):
        run_sweep(config, tmp_path / "a", workers=0, model=model, progress=False)
    shard.write_bytes(shard.read_bytes()[:40])  # half-written
    assert cli.main(["sweep", str(toml), "--out", str(tmp_path / "a"), "--workers", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "shard-00001.json is not a shard file" in err[0]
    assert (tmp_path / "a" / "results.csv").read_bytes() == table
    (tmp_path / "a" / MANIFEST).write_text("[]")
    assert cli.main(["sweep", str(toml), "--out", str(tmp_path / "a"), "--workers", "0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "sweep.json is not a sweep manifest" in err[0]
