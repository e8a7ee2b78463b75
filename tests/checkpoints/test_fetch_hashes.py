"""hashes.json of the fetch cache: exact round trips, one-line refusals, and mutated files never read as other entries."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mazeinterp.checkpoints.fetch_hashes import FORMAT, MAX_FILE_BYTES, HashesFileError, entries_checksum, read_hashes, write_hashes

ROOT = Path(__file__).resolve().parents[2]

ENTRY = {"sha256": "ab" * 32, "url": "https://example.org/a.pth", "pinned": False,
         "recorded": "2026-01-01T00:00:00+00:00"}

entries_strategy = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.fixed_dictionaries({"sha256": st.text("0123456789abcdef", min_size=64, max_size=64), "url": st.text(max_size=30),
                           "pinned": st.booleans(), "recorded": st.text(max_size=25)}),
    max_size=3)


def test_checksum_is_the_sha256_of_canonical_json() -> None:
    canonical = '{"a":{"pinned":false,"recorded":"2026-01-01T00:00:00+00:00","sha256":"' + "ab" * 32 + \
                '","url":"https://example.org/a.pth"}}'
    assert entries_checksum({"a": ENTRY}) == hashlib.sha256(canonical.encode()).hexdigest()


def test_written_file_reads_back_and_names_its_format(tmp_path: Path) -> None:
    path = tmp_path / "hashes.json"
    assert read_hashes(path) == {}  # no file yet: nothing recorded
    write_hashes(path, {"a": ENTRY})
    obj = json.loads(path.read_text())
    assert obj["format"] == FORMAT and obj["entries"] == {"a": ENTRY}
    assert read_hashes(path) == {"a": ENTRY}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hashes.json"]  # no temporary file left


def test_a_malformed_entry_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "hashes.json"
    with pytest.raises(HashesFileError, match=r"refusing to write .*: entry 'a': pinned is 'no', expected a bool"):
        write_hashes(path, {"a": ENTRY | {"pinned": "no"}})
    assert not path.exists()


@pytest.mark.parametrize(("text", "problem"), [
    ('{"format": "mazeinterp-hashes/1", "entries": {}, "checksum": "x", "format": "y"}', "the key 'format' appears twice"),
    ('{"format": "mazeinterp-hashes/0", "entries": {}, "checksum": ""}', "format is 'mazeinterp-hashes/0'"),
    ('{"format": "mazeinterp-hashes/1", "entries": [], "checksum": ""}', "entries is a list"),
    ('{"format": "mazeinterp-hashes/1", "entries": {}, "checksum": NaN}', "NaN is not a JSON value"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"format": "mazeinterp-hashes/1", "entries": {"a": {"sha256": "' + "ab" * 32 + '", "url": "", "pinned": 1, '
     '"recorded": ""}}, "checksum": ""}', "entry 'a': pinned is 1, expected a bool"),
    ('{"format": "mazeinterp-hashes/1", "entries": {"a": {"sha256": "' + "AB" * 32 + '", "url": "", "pinned": true, '
     '"recorded": ""}}, "checksum": ""}', "sha256 'ABAB.* is not 64 lowercase hex digits"),
    ('{"format": "mazeinterp-hashes/1", "entries": {"a": {"url": "", "pinned": true, "recorded": "", "x": 1}}, '
     '"checksum": ""}', r"entry 'a' has fields .* \(missing \['sha256'\]\) \(unknown \['x'\]\)"),
    ('{"format": "mazeinterp-hashes/1", "entries": {}, "checksum": ""}', "its checksum does not match its entries"),
])
def test_malformed_files_are_refused_in_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "hashes.json"
    path.write_text(text)
    with pytest.raises(HashesFileError, match=rf"^{path}: .*{problem}.*; delete it to record the hashes afresh") as err:
        read_hashes(path)
    assert "\n" not in str(err.value)


def test_a_folder_or_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "hashes.json").mkdir()
    with pytest.raises(HashesFileError, match=r"hashes.json: is not a file"):
        read_hashes(tmp_path / "hashes.json")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(HashesFileError, match=rf"is {MAX_FILE_BYTES + 1} bytes, more than any real one"):
        read_hashes(huge)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=entries_strategy)
def test_any_valid_entries_round_trip_exactly(tmp_path: Path, entries) -> None:
    path = tmp_path / "hashes.json"
    write_hashes(path, entries)
    assert read_hashes(path) == entries


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=entries_strategy, data=st.data())
def test_a_mutated_file_is_refused_or_reads_identically(tmp_path: Path, entries, data) -> None:
    path = tmp_path / "hashes.json"
    write_hashes(path, entries)
    raw = path.read_bytes()
    start = data.draw(st.integers(0, len(raw)), label="start")
    stop = data.draw(st.integers(start, min(len(raw), start + 8)), label="stop")
    mutated = raw[:start] + data.draw(st.binary(max_size=8), label="replacement") + raw[stop:]
    path.write_bytes(mutated)
    try:
        got = read_hashes(path)
    except HashesFileError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert got == entries


def test_fuzz_script_reports_no_silent_difference_and_no_traceback() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "fuzz_hashes.py"), "--n", "400", "--seed", "3"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(part.rsplit(" ", 1) for part in result.stdout.strip().split(": ", 1)[1].split(", "))
    assert counts["different"] == "0" and counts["traceback"] == "0"
    assert int(counts["refused"]) > 0 and int(counts["identical"]) > 0
    assert sum(int(v) for v in counts.values()) == 400
