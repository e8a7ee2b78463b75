"""Download published checkpoints by name into a per-user cache: resumable, hash-checked, with progress.

:func:`fetch` takes a name of :data:`mazeinterp.published.PUBLISHED` and returns
the path of the cached file, downloading it first if needed, with pooch:

* the cache is ``$MAZEINTERP_CACHE`` if set, else the user cache folder
  (``~/.cache/mazeinterp`` on Linux), sub-folder ``published/``;
* the download shows a progress bar (on a terminal) and streams into
  ``FILE.part``; an interrupted download leaves that file, and the next call
  asks the server for the rest only (an HTTP ``Range`` request);
* the finished file is checked against the expected sha256 -- the one given
  to :func:`fetch`, else the table's, else the one this cache recorded -- and
  moved into place only if it matches;
* with no hash known anywhere, the file must load as a published-format
  checkpoint (``{"model_state_dict", ...}`` that
  :func:`mazeinterp.load_policy` accepts); then its sha256 is recorded in
  ``published/hashes.json`` in the cache and required from then on. A hash
  passed to :func:`fetch` is recorded too (pinned).

Every failure is a :class:`FetchError` whose message names the checkpoint, the
URL and, for a hash mismatch, both hashes.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from pathlib import Path
from typing import Any

from mazeinterp.checkpoint_file import CheckpointError, read_policy
from mazeinterp.published import PUBLISHED, PublishedCheckpoint

__all__ = ["FetchError", "cache_dir", "fetch", "recorded_hashes"]

CACHE_ENV = "MAZEINTERP_CACHE"
"""Environment variable that overrides the cache folder."""

_CHUNK = 1 << 16


class FetchError(CheckpointError):
    """A published checkpoint could not be fetched: unknown name, server unreachable, cut download, bad hash."""


def cache_dir() -> Path:
    """The folder of fetched checkpoints: ``$MAZEINTERP_CACHE/published`` or the user cache's ``mazeinterp/published``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "published"
    import pooch

    return Path(pooch.os_cache("mazeinterp")) / "published"


def _hashes_path() -> Path:
    return cache_dir() / "hashes.json"


def recorded_hashes() -> dict[str, dict[str, Any]]:
    """Hashes recorded in the cache: name → ``{"sha256", "url", "recorded", "pinned"}``."""
    path = _hashes_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FetchError(f"{path} is not valid JSON ({exc}); fix or delete it", path=path) from None
    return data if isinstance(data, dict) else {}


def _record(entry: PublishedCheckpoint, sha256: str, pinned: bool) -> None:
    hashes = recorded_hashes()
    hashes[entry.name] = {"sha256": sha256, "url": entry.url, "pinned": pinned,
                          "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = _hashes_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(hashes, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _entry(name: str) -> PublishedCheckpoint:
    if name not in PUBLISHED:
        known = ", ".join(sorted(PUBLISHED)) or "none"
        raise FetchError(f"no published checkpoint named {name!r} (known: {known})")
    return PUBLISHED[name]


def _check_hex(sha256: str, what: str) -> str:
    sha256 = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise FetchError(f"{what}: {sha256!r} is not a sha256 (64 hex digits)")
    return sha256


class _ResumingDownloader:
    """A pooch downloader that streams into ``partial`` and resumes it with an HTTP Range request."""

    def __init__(self, entry: PublishedCheckpoint, partial: Path, progress: bool, timeout: float) -> None:
        self.entry = entry
        self.partial = partial
        self.progress = progress
        self.timeout = timeout
        self.sha256: str | None = None
        """sha256 of the last complete download (set before pooch checks it)."""

    def _fail(self, what: str) -> FetchError:
        return FetchError(f"{self.entry.name}: {what} ({self.entry.url})")

    def _get(self, offset: int) -> Any:
        import requests

        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = requests.get(self.entry.url, headers=headers, stream=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._fail(f"cannot reach the server: {type(exc).__name__}: {exc}") from None
        if response.status_code == 416 and offset:  # the part file is no prefix of the file: start afresh
            response.close()
            self.partial.unlink(missing_ok=True)
            return self._get(0)
        if response.status_code not in (200, 206):
            response.close()
            raise self._fail(f"the server answered HTTP {response.status_code} {response.reason}")
        return response

    def __call__(self, url: str, output_file: Any, pooch: Any, check_only: bool = False) -> None:
        """Download ``url`` (resuming ``partial``), then move it to ``output_file`` for pooch's hash check."""
        import requests
        from tqdm.auto import tqdm

        offset = self.partial.stat().st_size if self.partial.exists() else 0
        response = self._get(offset)
        resumed = response.status_code == 206
        offset = offset if resumed else 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        written = offset
        with response, open(self.partial, "ab" if resumed else "wb") as handle, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
            desc=f"{self.entry.name}" + (" (resumed)" if resumed else ""),
            disable=None if self.progress else True,  # None: shown on a terminal only
        ) as bar:
            try:
                for chunk in response.iter_content(_CHUNK):
                    handle.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except (requests.RequestException, OSError) as exc:
                handle.flush()
                raise self._fail(f"the download stopped at {written} of {total or '?'} bytes "
                                 f"({type(exc).__name__}); run again to resume it") from None
        if total is not None and written != total:
            raise self._fail(f"the download stopped at {written} of {total} bytes; run again to resume it")
        import pooch as pooch_module

        self.sha256 = pooch_module.file_hash(str(self.partial))
        os.replace(self.partial, output_file)


def _verify_published(entry: PublishedCheckpoint, path: Path) -> None:
    """Raise FetchError unless ``path`` is a published-format checkpoint that loads."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or "model_state_dict" not in obj:
            raise CheckpointError(f"{path} holds no 'model_state_dict'", path=path)
        del obj
        read_policy(path)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FetchError(f"{entry.name}: the file downloaded from {entry.url} is not a valid published-format "
                         f"checkpoint ({reason}); it was deleted", path=path) from None


def fetch(name: str, *, sha256: str | None = None, progress: bool = True, timeout: float = 30.0) -> Path:
    """Return the path of the published checkpoint ``name`` in the cache, downloading it if needed.

    Args:
        name: a key of :data:`mazeinterp.published.PUBLISHED`, e.g. ``"maze-rand-region-5"``.
        sha256: expected hex sha256; overrides the table's and the recorded one, and is recorded
            (pinned) once a download matches it.
        progress: show a progress bar (on a terminal).
        timeout: seconds to wait for the server to connect or send data.

    Raises:
        FetchError: unknown name, server unreachable or refusing, download cut short (run again to
            resume), sha256 mismatch (the file is discarded), or -- with no hash known -- a file that
            is not a valid published-format checkpoint.
    """
    import pooch
    import requests

    entry = _entry(name)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    recorded = recorded_hashes().get(name, {}).get("sha256")
    if sha256 is not None:
        expected, origin = _check_hex(sha256, "sha256"), "given"
    elif entry.sha256:
        expected, origin = entry.sha256, "the table's"
    elif recorded:
        expected, origin = _check_hex(recorded, str(_hashes_path())), f"recorded in {_hashes_path()}"
    else:
        expected, origin = None, None
    target = folder / entry.filename
    downloader = _ResumingDownloader(entry, folder / f"{entry.filename}.part", progress, timeout)
    pooch.get_logger().setLevel("WARNING")
    try:
        path = Path(pooch.retrieve(entry.url, known_hash=f"sha256:{expected}" if expected else None,
                                   fname=entry.filename, path=folder, downloader=downloader))
    except ValueError as exc:
        if expected is None or "hash" not in str(exc).lower():
            raise
        got = downloader.sha256 or "?"
        raise FetchError(f"{name}: the file downloaded from {entry.url} has sha256 {got}, but {origin} sha256 is "
                         f"{expected}; the download was discarded (if the file changed on purpose, pass its "
                         "hash with --sha256 / sha256=)", path=target) from None
    except requests.RequestException as exc:
        raise FetchError(f"{name}: download from {entry.url} failed: {type(exc).__name__}: {exc}") from None
    if expected is None:
        try:
            _verify_published(entry, path)
        except FetchError:
            path.unlink(missing_ok=True)
            raise
        _record(entry, pooch.file_hash(str(path)), pinned=False)
    elif origin == "given" and recorded != expected:
        _record(entry, expected, pinned=True)
    return path
