"""Fetching published checkpoints by name, from a local HTTP server on 127.0.0.1 (never the internet).

The server serves a synthetic published-format file (a random scale-1 network saved as
``{"model_state_dict", "optimizer_state_dict"}``), supports HTTP Range requests, and can be told
to cut a response short (an interrupted download) or to serve a truncated file.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import threading
import errno
import os
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from mazeinterp import cli
from mazeinterp.checkpoints.registry import CheckpointError, load_policy
from mazeinterp.checkpoints import fetch as fetch_module
from mazeinterp.checkpoints.fetch import MIRROR_ENV, FetchError, cache_dir, fetch, fetch_from_file, recorded_hashes
from mazeinterp.checkpoints.fetch_hashes import write_hashes
from mazeinterp.core.model import ImpalaPolicy
from mazeinterp.checkpoints.published import PUBLISHED, PublishedCheckpoint

NAME = "test-agent"


def _published_bytes() -> bytes:
    torch.manual_seed(1)
    buffer = io.BytesIO()
    torch.save({"model_state_dict": ImpalaPolicy(scale=1).state_dict(), "optimizer_state_dict": {}}, buffer)
    return buffer.getvalue()


GOOD = _published_bytes()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class _Server:
    """A local file server: ``files`` path → bytes; ``cut_after`` bytes → the next response stops there."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        self.no_length = False
        """Send no Content-Length: the body ends when the connection closes."""
        self.declared: int | None = None
        """Declare this Content-Length, whatever the body is."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                data = server.files.get(self.path)
                server.ranges.append(self.headers.get("Range"))
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if server.declared is not None:
                    self.send_header("Content-Length", str(server.declared))
                elif not server.no_length:
                    self.send_header("Content-Length", str(len(body)))
                self.close_connection = True
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MAZEINTERP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "published"


def _publish(monkeypatch, url: str, sha256: str | None = None, size: int | None = None) -> PublishedCheckpoint:
    entry = PublishedCheckpoint(name=NAME, url=url, filename="agent.pth", source="a test", description="random",
                                sha256=sha256, size=size)
    monkeypatch.setitem(PUBLISHED, NAME, entry)
    return entry


def test_the_real_table_names_the_research_url() -> None:
    entry = PUBLISHED["maze-rand-region-5"]
    assert entry.url == "https://nerdsniper.net/mats/model_rand_region_5.pth"
    assert entry.filename == "model_rand_region_5.pth" and "procgen_tools/utils.py" in entry.source


def test_good_file_without_a_known_hash_is_verified_and_its_hash_recorded(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth")
    path = fetch(NAME)
    assert path == cache / "agent.pth" and path.read_bytes() == GOOD
    assert recorded_hashes()[NAME]["sha256"] == GOOD_SHA and recorded_hashes()[NAME]["pinned"] is False
    policy = load_policy(f"published:{NAME}")
    assert policy.scale == 1 and policy.source == path
    assert len(server.ranges) == 1  # the second call found the file in the cache
    server.files["/agent.pth"] = GOOD[:-10] + b"0123456789"  # the file changes upstream
    path.unlink()
    with pytest.raises(FetchError, match=f"has sha256 [0-9a-f]{{64}}, but recorded in .*hashes.json sha256 is "
                                         f"{GOOD_SHA}"):
        fetch(NAME)
    assert not path.exists()


def test_known_hash_is_checked(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth", sha256=GOOD_SHA)
    assert fetch(NAME).read_bytes() == GOOD
    assert NAME not in recorded_hashes()  # the table's hash needs no record


def test_wrong_hash_names_both_hashes_and_keeps_nothing(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    wrong = "0" * 64
    entry = _publish(monkeypatch, server.url + "/agent.pth", sha256=wrong)
    with pytest.raises(FetchError) as err:
        fetch(NAME)
    message = str(err.value)
    assert NAME in message and entry.url in message and GOOD_SHA in message and wrong in message
    assert sorted(p.name for p in cache.iterdir()) == []


def test_truncated_file_is_refused(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD[: len(GOOD) // 2]  # served completely, but half a checkpoint
    _publish(monkeypatch, server.url + "/agent.pth")
    with pytest.raises(FetchError, match=rf"{NAME}: the file downloaded from http://127.0.0.1:\d+/agent.pth is "
                                         "not a valid published-format checkpoint"):
        fetch(NAME)
    assert not (cache / "agent.pth").exists() and NAME not in recorded_hashes()
    _publish(monkeypatch, server.url + "/agent.pth", sha256=GOOD_SHA)
    with pytest.raises(FetchError, match=f"but the table's sha256 is {GOOD_SHA}"):
        fetch(NAME)


def test_not_a_published_checkpoint_is_refused(server, monkeypatch, cache) -> None:
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, buffer)
    server.files["/agent.pth"] = buffer.getvalue()
    _publish(monkeypatch, server.url + "/agent.pth")
    with pytest.raises(FetchError, match="not a valid published-format checkpoint .*holds no 'model_state_dict'"):
        fetch(NAME)


def test_interrupted_download_resumes_with_a_range_request(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth", sha256=GOOD_SHA)
    server.cut_after = 100_000
    with pytest.raises(FetchError, match=rf"stopped at \d+ of {len(GOOD)} bytes.*run again to resume") as err:
        fetch(NAME)
    kept = (cache / "agent.pth.part").stat().st_size
    assert 0 < kept <= 100_000 and f"stopped at {kept} of" in str(err.value)
    assert fetch(NAME).read_bytes() == GOOD
    assert server.ranges == [None, f"bytes={kept}-"]
    assert not (cache / "agent.pth.part").exists()


def test_server_down_and_missing_file(server, monkeypatch) -> None:
    _publish(monkeypatch, server.url + "/missing.pth")
    with pytest.raises(FetchError, match=rf"{NAME}: the server answered HTTP 404 .*\(http://127.0.0.1:\d+/missing"):
        fetch(NAME)
    url = server.url + "/agent.pth"
    server.close()
    _publish(monkeypatch, url)
    with pytest.raises(FetchError, match=rf"^{NAME}: cannot reach the server \(Connection refused\) \({url}\)$"):
        fetch(NAME, timeout=5)


def test_unknown_name_and_bad_pin(monkeypatch) -> None:
    with pytest.raises(FetchError, match="no published checkpoint named 'nope' .*maze-rand-region-5"):
        fetch("nope")
    with pytest.raises(CheckpointError, match="no published checkpoint named 'nope'"):
        load_policy("published:nope")
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth")
    with pytest.raises(FetchError, match="'abc' is not a sha256"):
        fetch(NAME, sha256="abc")


def test_pinning_a_hash_records_it(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth")
    fetch(NAME, sha256=GOOD_SHA.upper())
    assert recorded_hashes()[NAME] | {"recorded": None} == {"sha256": GOOD_SHA, "url": server.url + "/agent.pth",
                                                             "pinned": True, "recorded": None}
    assert cache_dir() == cache


def test_cli_fetch(server, monkeypatch, cache, capsys) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth")
    assert cli.main(["fetch", NAME]) == 0
    out = capsys.readouterr().out
    assert str(cache / "agent.pth") in out and GOOD_SHA in out
    assert cli.main(["fetch", "--list"]) == 0
    assert "maze-rand-region-5" in capsys.readouterr().out
    monkeypatch.setitem(PUBLISHED, NAME, replace(PUBLISHED[NAME], sha256="1" * 64))
    (cache / "agent.pth").unlink()
    assert cli.main(["fetch", NAME]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"mazeinterp fetch: error: {NAME}: the file downloaded from")
    assert json.loads((cache / "hashes.json").read_text())["entries"][NAME]["sha256"] == GOOD_SHA


# ----- sizes, disk space and limits -------------------------------------------------------


def test_no_content_length_stops_at_the_default_cap(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = b"x" * 1_000_000
    server.no_length = True
    monkeypatch.setattr(fetch_module, "DEFAULT_MAX_BYTES", 300_000)
    _publish(monkeypatch, server.url + "/agent.pth")
    with pytest.raises(FetchError, match=rf"^{NAME}: the server sent more than 300000 bytes \(the limit for a "
                                         "checkpoint of unknown size\); the download was stopped and deleted"):
        fetch(NAME)
    assert sorted(p.name for p in cache.iterdir()) == []  # no .part left behind


def test_no_content_length_stops_at_the_published_size(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD + b"trailing junk"
    server.no_length = True
    _publish(monkeypatch, server.url + "/agent.pth", sha256=GOOD_SHA, size=len(GOOD))
    with pytest.raises(FetchError, match=rf"sent more than {len(GOOD)} bytes \(the published size\)"):
        fetch(NAME)
    assert sorted(p.name for p in cache.iterdir()) == []
    server.files["/agent.pth"] = GOOD  # the exact file, still without a Content-Length, is fine
    assert fetch(NAME).read_bytes() == GOOD


def test_a_declared_50_gb_is_refused_before_streaming(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    server.declared = 50 * 10**9
    _publish(monkeypatch, server.url + "/agent.pth")
    with pytest.raises(FetchError, match=rf"^{NAME}: the file at .* \(as the server declares it\) is 50000000000 "
                                         "bytes, more than the limit of 268435456 bytes"):
        fetch(NAME)
    assert sorted(p.name for p in cache.iterdir()) == []
    # a published size of 50 GB passes the size check, but not the free-space check (10 GB free)
    _publish(monkeypatch, server.url + "/agent.pth", size=50 * 10**9)
    real = fetch_module.shutil.disk_usage
    monkeypatch.setattr(fetch_module.shutil, "disk_usage", lambda p: real(p)._replace(free=10**10))
    with pytest.raises(FetchError, match=r"needs 50000000000 bytes but only 10000000000 are free in .*; nothing was "
                                         "written"):
        fetch(NAME)
    assert sorted(p.name for p in cache.iterdir()) == []


def test_free_disk_space_is_checked_first(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth", sha256=GOOD_SHA)
    real = fetch_module.shutil.disk_usage
    monkeypatch.setattr(fetch_module.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(FetchError, match=rf"needs {len(GOOD)} bytes but only 1000 are free"):
        fetch(NAME)
    server.no_length = True  # unknown size: room for the whole cap is asked for
    with pytest.raises(FetchError, match=r"needs 268435456 bytes but only 1000 are free"):
        fetch(NAME)
    with pytest.raises(FetchError, match=rf"copying .* needs {len(GOOD)} bytes but only 1000 are free"):
        fetch_from_file(NAME, _write(cache.parent.parent / "copy.pth", GOOD))
    assert sorted(p.name for p in cache.iterdir()) == []


def test_a_full_disk_during_the_download_leaves_no_part(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth", sha256=GOOD_SHA)
    real_open = open

    class FullDisk:
        def __init__(self, handle) -> None:
            self.handle = handle

        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullDisk(handle) if str(path).endswith(".part") else handle

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(FetchError, match="the disk filled up during the download; the partial file was deleted"):
        fetch(NAME)
    monkeypatch.undo()
    assert not (cache / "agent.pth.part").exists()


# ----- mirrors and local copies -----------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_mirror_base_from_the_environment(server, monkeypatch, cache) -> None:
    server.files["/mirror/agent.pth"] = GOOD
    _publish(monkeypatch, "http://127.0.0.1:9/unreachable/agent.pth", sha256=GOOD_SHA)
    monkeypatch.setenv(MIRROR_ENV, server.url + "/mirror/")
    assert fetch(NAME).read_bytes() == GOOD
    assert server.ranges == [None]
    (cache / "agent.pth").unlink()
    server.files["/mirror/agent.pth"] = GOOD[:-1] + b"!"  # a mirror serving another file is refused
    with pytest.raises(FetchError, match=rf"downloaded from {server.url}/mirror/agent.pth has sha256 "
                                         rf"[0-9a-f]{{64}}, but the table's sha256 is {GOOD_SHA}"):
        fetch(NAME)
    assert not (cache / "agent.pth").exists()


def test_url_argument_wins_and_is_checked(server, monkeypatch, cache, capsys) -> None:
    server.files["/copy.pth"] = GOOD
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth")
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9/elsewhere")
    assert cli.main(["fetch", NAME, "--url", server.url + "/copy.pth"]) == 0
    assert (cache / "agent.pth").read_bytes() == GOOD
    assert recorded_hashes()[NAME]["url"] == server.url + "/copy.pth"  # no hash was known: recorded with its source
    capsys.readouterr()
    assert cli.main(["fetch", NAME, "--url", "ftp://example/agent.pth"]) == 2
    assert capsys.readouterr().err.strip() == (f"mazeinterp fetch: error: {NAME}: the given URL "
                                               "'ftp://example/agent.pth' is not an http:// or https:// URL")
    with pytest.raises(SystemExit):
        cli.main(["fetch", NAME, "--url", server.url, "--from-file", "x.pth"])  # one source at a time


def test_from_file_is_hash_checked_like_a_download(tmp_path, monkeypatch, cache) -> None:
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth", sha256=GOOD_SHA)
    other = _write(tmp_path / "other.pth", GOOD[:-1] + b"!")
    with pytest.raises(FetchError, match=rf"^{NAME}: {other} has sha256 [0-9a-f]{{64}}, but the table's sha256 is "
                                         rf"{GOOD_SHA}; it was not kept"):
        fetch_from_file(NAME, other)
    assert sorted(p.name for p in cache.iterdir()) == [] and other.read_bytes() == GOOD[:-1] + b"!"
    copy = _write(tmp_path / "copy.pth", GOOD)
    path = fetch_from_file(NAME, copy)
    assert path == cache / "agent.pth" and path.read_bytes() == GOOD and copy.exists()
    assert sorted(p.name for p in cache.iterdir()) == ["agent.pth"]
    assert fetch(NAME) == path  # the cache now answers without the (unreachable) server


def test_from_file_without_a_known_hash_verifies_and_records(tmp_path, monkeypatch, cache, capsys) -> None:
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth")
    buffer = io.BytesIO()
    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "when": datetime.date(2020, 1, 1)}, buffer)
    unsafe = _write(tmp_path / "unsafe.pth", buffer.getvalue())
    with pytest.raises(FetchError) as err:
        fetch_from_file(NAME, unsafe)
    message = str(err.value)
    assert message.startswith(f"{NAME}: {unsafe} is not a valid published-format checkpoint (")
    assert "weights_only" not in message and "\n" not in message and "datetime.date" in message
    assert sorted(p.name for p in cache.iterdir()) == []
    assert cli.main(["fetch", NAME, "--from-file", str(_write(tmp_path / "good.pth", GOOD))]) == 0
    assert GOOD_SHA in capsys.readouterr().out
    assert recorded_hashes()[NAME]["sha256"] == GOOD_SHA and recorded_hashes()[NAME]["pinned"] is False
    assert cli.main(["fetch", NAME, "--from-file", str(tmp_path / "missing.pth")]) == 2
    assert capsys.readouterr().err.strip() == f"mazeinterp fetch: error: {NAME}: {tmp_path / 'missing.pth'} does not exist"
    assert cli.main(["fetch", NAME, "--from-file", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{tmp_path} is not a file")


def test_from_file_larger_than_the_limit_is_refused_unread(tmp_path, monkeypatch, cache) -> None:
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth", size=len(GOOD))
    big = _write(tmp_path / "big.pth", GOOD + b"x")
    with pytest.raises(FetchError, match=rf"{big} is {len(GOOD) + 1} bytes, but the published file is {len(GOOD)}"):
        fetch_from_file(NAME, big)
    assert sorted(p.name for p in cache.iterdir()) == []


# ----- an unusable cache ------------------------------------------------------------------


def test_cache_folder_that_is_a_file(monkeypatch, tmp_path, capsys) -> None:
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth")
    _write(tmp_path / "cache" / "published", b"not a folder")
    assert cli.main(["fetch", NAME]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"mazeinterp fetch: error: {NAME}: the cache folder {tmp_path / 'cache' / 'published'} is a file, "
                   "not a folder (set $MAZEINTERP_CACHE to another folder)")
    monkeypatch.setenv("MAZEINTERP_CACHE", str(tmp_path / "cache" / "published" / "below"))
    assert cli.main(["fetch", NAME]) == 2
    assert "cannot create the cache folder" in capsys.readouterr().err


def test_read_only_cache_folder(monkeypatch, cache, capsys) -> None:
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth")
    cache.mkdir(parents=True)
    cache.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: make the folder refuse as a read-only one would
        real = Path.write_bytes
        monkeypatch.setattr(Path, "write_bytes", lambda self, data: (
            (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied")) if self.parent == cache
            else real(self, data)))
    try:
        assert cli.main(["fetch", NAME]) == 2
    finally:
        cache.chmod(0o755)
    assert capsys.readouterr().err.strip() == (f"mazeinterp fetch: error: {NAME}: the cache folder {cache} cannot be "
                                               "written: Permission denied (set $MAZEINTERP_CACHE to another folder)")


@pytest.mark.parametrize(("content", "problem"), [
    (b'{"test-agent": {"sha256": 5}}', r"has keys \['test-agent'\], expected"),
    (b"[1, 2]", "holds a JSON list, expected an object"),
    (b"\xff\xfe", "not UTF-8 text"),
    (b'{"format": "mazeinterp-hashes/1", "entries": {"test-agent": "abc"}, "checksum": ""}',
     "entry 'test-agent' is a str, expected an object"),
    (b'{"format": "mazeinterp-hashes/1", "entries": {"test-agent": {"sha256": "ab", "url": "", "pinned": false, '
     b'"recorded": ""}}, "checksum": ""}', "entry 'test-agent': sha256 'ab' is not 64 lowercase hex digits"),
])
def test_malformed_hashes_json_is_one_line(monkeypatch, cache, capsys, content: bytes, problem: str) -> None:
    _publish(monkeypatch, "http://127.0.0.1:9/agent.pth")
    _write(cache / "hashes.json", content)
    assert cli.main(["fetch", NAME]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(rf"error: {cache / 'hashes.json'}: .*{problem}.*; delete it to record", err[0])
    assert (cache / "hashes.json").read_bytes() == content  # nothing the user had is overwritten
    assert cli.main(["fetch", "--list"]) == 2


def test_an_edited_hash_is_refused_not_trusted(server, monkeypatch, cache) -> None:
    server.files["/agent.pth"] = GOOD
    _publish(monkeypatch, server.url + "/agent.pth")
    fetch(NAME)
    (cache / "agent.pth").unlink()
    text = (cache / "hashes.json").read_text()
    (cache / "hashes.json").write_text(text.replace(GOOD_SHA, "0" * 64))
    with pytest.raises(FetchError, match="its checksum does not match its entries"):
        fetch(NAME)
    write_hashes(cache / "hashes.json", {})
    assert fetch(NAME).read_bytes() == GOOD
