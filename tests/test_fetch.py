"""Fetching published checkpoints by name, from a local HTTP server on 127.0.0.1 (never the internet).

The server serves a synthetic published-format file (a random scale-1 network saved as
``{"model_state_dict", "optimizer_state_dict"}``), supports HTTP Range requests, and can be told
to cut a response short (an interrupted download) or to serve a truncated file.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from mazeinterp import cli
from mazeinterp.checkpoint import CheckpointError, load_policy
from mazeinterp.fetch import FetchError, cache_dir, fetch, recorded_hashes
from mazeinterp.model import ImpalaPolicy
from mazeinterp.published import PUBLISHED, PublishedCheckpoint

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
                self.send_header("Content-Length", str(len(body)))
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


def _publish(monkeypatch, url: str, sha256: str | None = None) -> PublishedCheckpoint:
    entry = PublishedCheckpoint(name=NAME, url=url, filename="agent.pth", source="a test", description="random",
                                sha256=sha256)
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
    with pytest.raises(FetchError, match=rf"{NAME}: cannot reach the server: ConnectionError.*\({url}\)"):
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
    assert json.loads((cache / "hashes.json").read_text())[NAME]["sha256"] == GOOD_SHA
