"""Fetch published checkpoints by name into a per-user cache: from their URL, a mirror or a local copy.

:func:`fetch` takes a name of :data:`mazeinterp.checkpoints.published.PUBLISHED` and returns
the path of the cached file, downloading it first if needed, with pooch;
:func:`fetch_from_file` puts a copy the user already has into the cache under
the same checks:

* the cache is ``$MAZEINTERP_CACHE`` if set, else the user cache folder
  (``~/.cache/mazeinterp`` on Linux), sub-folder ``published/``; a cache path
  that is a file, or a folder that cannot be written, is reported in one line;
* the file comes from ``url=`` if given, else from
  ``$MAZEINTERP_PUBLISHED_URL/FILENAME`` if that mirror base is set, else from
  the table's URL;
* before streaming, the download's size (the server's ``Content-Length``, the
  table's ``size``, else :data:`DEFAULT_MAX_BYTES`) is checked against the
  free disk space and the size limit; the stream stops at that limit, so a
  server that sends more, or lies about its size, cannot fill the disk
  (the partial file is deleted);
* the download shows a progress bar (on a terminal) and streams into
  ``FILE.part``; an interrupted download leaves that file, and the next call
  asks the server for the rest only (an HTTP ``Range`` request);
* the finished file is checked against the expected sha256 -- the one given
  to :func:`fetch`, else the table's, else the one this cache recorded -- and
  moved into place only if it matches;
* with no hash known anywhere, the file must load as a published-format
  checkpoint (``{"model_state_dict", ...}`` that
  :func:`mazeinterp.load_policy` accepts); then its sha256 is recorded in
  ``published/hashes.json`` in the cache (see :mod:`mazeinterp.checkpoints.fetch_hashes`)
  and required from then on. A hash passed to :func:`fetch` is recorded too (pinned).

Every failure is a :class:`FetchError` whose one-line message names the
checkpoint, the URL or file and, for a hash mismatch, both hashes.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from mazeinterp.checkpoints.file_format import CheckpointError, read_policy
from mazeinterp.checkpoints.fetch_hashes import HashesFileError, read_hashes, write_hashes
from mazeinterp.checkpoints.published import PUBLISHED, PublishedCheckpoint

__all__ = ["CACHE_ENV", "DEFAULT_MAX_BYTES", "MIRROR_ENV", "FetchError", "cache_dir", "fetch", "fetch_from_file",
           "recorded_hashes", "source_url"]

CACHE_ENV = "MAZEINTERP_CACHE"
"""Environment variable that overrides the cache folder."""

MIRROR_ENV = "MAZEINTERP_PUBLISHED_URL"
"""Environment variable naming a mirror's base URL: a checkpoint is fetched from ``BASE/FILENAME``."""

DEFAULT_MAX_BYTES = 256 * 2**20
"""Size limit (256 MiB) of a checkpoint whose size the table does not give; the published agent
with its optimizer state is far smaller."""

_CHUNK = 1 << 16


class FetchError(CheckpointError):
    """A published checkpoint could not be fetched: unknown name, server unreachable, cut download, bad hash,
    too large, no disk space, unusable cache."""


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
    """Hashes recorded in the cache: name → ``{"sha256", "url", "recorded", "pinned"}``.

    Raises:
        FetchError: ``hashes.json`` is unreadable, malformed or was edited (one line naming it).
    """
    try:
        return read_hashes(_hashes_path())
    except HashesFileError as exc:
        raise FetchError(str(exc), path=_hashes_path()) from None


def _record(entry: PublishedCheckpoint, sha256: str, pinned: bool) -> None:
    hashes = recorded_hashes()
    hashes[entry.name] = {"sha256": sha256, "url": entry.url, "pinned": pinned,
                          "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        write_hashes(_hashes_path(), hashes)
    except OSError as exc:
        raise FetchError(f"cannot write {_hashes_path()}: {exc.strerror or type(exc).__name__}",
                         path=_hashes_path()) from None


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


def source_url(name: str, url: str | None = None) -> str:
    """The URL that checkpoint ``name`` is fetched from: ``url``, else ``$MAZEINTERP_PUBLISHED_URL/FILENAME``,
    else the table's.

    Raises:
        FetchError: unknown name, or a URL that is not ``http://`` or ``https://``.
    """
    entry = _entry(name)
    base = os.environ.get(MIRROR_ENV, "").strip()
    if url is not None:
        chosen, what = url.strip(), "the given URL"
    elif base:
        chosen, what = f"{base.rstrip('/')}/{entry.filename}", f"${MIRROR_ENV}"
    else:
        chosen, what = entry.url, "the table's URL"
    if not re.match(r"https?://[^/\s]+", chosen):
        raise FetchError(f"{name}: {what} {chosen!r} is not an http:// or https:// URL")
    return chosen


def _cache_folder(name: str) -> Path:
    """Create the cache folder if needed and prove it can be written; one-line errors otherwise."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FetchError(f"{name}: the cache folder {folder} is a file, not a folder (set ${CACHE_ENV} "
                         "to another folder)", path=folder) from None
    except OSError as exc:
        raise FetchError(f"{name}: cannot create the cache folder {folder}: {exc.strerror or type(exc).__name__} "
                         f"(set ${CACHE_ENV} to another folder)", path=folder) from None
    probe = folder / f".write-test.{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FetchError(f"{name}: the cache folder {folder} cannot be written: {exc.strerror or type(exc).__name__} "
                         f"(set ${CACHE_ENV} to another folder)", path=folder) from None
    return folder


def _size_limit(entry: PublishedCheckpoint) -> int:
    return entry.size if entry.size is not None else DEFAULT_MAX_BYTES


def _check_room(entry: PublishedCheckpoint, folder: Path, needed: int, origin: str) -> None:
    """Refuse before writing when ``folder``'s disk has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise FetchError(f"{entry.name}: {origin} needs {needed} bytes but only {free} are free in {folder}; "
                         "nothing was written")


def _check_size(entry: PublishedCheckpoint, size: int, origin: str) -> None:
    """Refuse a file whose (declared) size is not the published one, or exceeds the limit."""
    if entry.size is not None and size != entry.size:
        raise FetchError(f"{entry.name}: {origin} is {size} bytes, but the published file is {entry.size} bytes")
    if size > _size_limit(entry):
        raise FetchError(f"{entry.name}: {origin} is {size} bytes, more than the limit of {_size_limit(entry)} "
                         "bytes for a checkpoint of unknown size")


def _network_reason(exc: BaseException) -> str:
    """What went wrong on the network, in words (the OS's reason), without the HTTP library's internals."""
    import requests

    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection closed before the end"
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        cause = stack.pop()
        if not isinstance(cause, BaseException) or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.strerror and not isinstance(cause, requests.RequestException):
            return cause.strerror
        stack.extend([cause.__cause__, cause.__context__, getattr(cause, "reason", None), *cause.args])
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed"
    return "the connection failed" if isinstance(exc, requests.ConnectionError) else type(exc).__name__


class _ResumingDownloader:
    """A pooch downloader that streams into ``partial``, resumes it with an HTTP Range request, and stops
    at the size limit."""

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
            raise self._fail(f"cannot reach the server ({_network_reason(exc)})") from None
        if response.status_code == 416 and offset:  # the part file is no prefix of the file: start afresh
            response.close()
            self.partial.unlink(missing_ok=True)
            return self._get(0)
        if response.status_code not in (200, 206):
            response.close()
            raise self._fail(f"the server answered HTTP {response.status_code} {response.reason}")
        return response

    def _declared_total(self, response: Any, offset: int) -> int | None:
        length = response.headers.get("Content-Length")
        if length is None:
            return None
        if not length.strip().isdigit():
            raise self._fail(f"the server declared a size of {length!r}, which is no number")
        return offset + int(length)

    def __call__(self, url: str, output_file: Any, pooch: Any, check_only: bool = False) -> None:
        """Download ``url`` (resuming ``partial``), then move it to ``output_file`` for pooch's hash check."""
        import requests
        from tqdm.auto import tqdm

        limit = _size_limit(self.entry)
        offset = self.partial.stat().st_size if self.partial.exists() else 0
        if offset > limit:  # not a prefix of any acceptable file
            self.partial.unlink()
            offset = 0
        response = self._get(offset)
        resumed = response.status_code == 206
        offset = offset if resumed else 0
        with response:
            total = self._declared_total(response, offset)
            if total is not None:
                _check_size(self.entry, total, f"the file at {self.entry.url} (as the server declares it)")
            _check_room(self.entry, self.partial.parent, (limit if total is None else total) - offset,
                        f"the download from {self.entry.url}")
            written = self._stream(response, offset, total, limit, resumed, tqdm, requests)
        if total is not None and written != total:
            raise self._fail(f"the download stopped at {written} of {total} bytes; run again to resume it")
        import pooch as pooch_module

        self.sha256 = pooch_module.file_hash(str(self.partial))
        os.replace(self.partial, output_file)

    def _stream(self, response: Any, offset: int, total: int | None, limit: int, resumed: bool, tqdm: Any,
                requests: Any) -> int:
        """Append the response's body to ``partial``; return the bytes it then holds. Never past ``limit``."""
        written = offset
        with open(self.partial, "ab" if resumed else "wb") as handle, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
            desc=f"{self.entry.name}" + (" (resumed)" if resumed else ""),
            disable=None if self.progress else True,  # None: shown on a terminal only
        ) as bar:
            try:
                for chunk in response.iter_content(_CHUNK):
                    if written + len(chunk) > limit:
                        raise self._over_limit(handle, limit)
                    handle.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    handle.close()
                    self.partial.unlink(missing_ok=True)
                    raise self._fail("the disk filled up during the download; the partial file was deleted") from None
                handle.flush()
                raise self._fail(f"the download stopped at {written} of {total or '?'} bytes "
                                 f"({_network_reason(exc)}); run again to resume it") from None
            except requests.RequestException as exc:
                handle.flush()
                raise self._fail(f"the download stopped at {written} of {total or '?'} bytes "
                                 f"({_network_reason(exc)}); run again to resume it") from None
        return written

    def _over_limit(self, handle: Any, limit: int) -> FetchError:
        handle.close()
        self.partial.unlink(missing_ok=True)
        what = "the published size" if self.entry.size is not None else "the limit for a checkpoint of unknown size"
        return self._fail(f"the server sent more than {limit} bytes ({what}); the download was stopped and deleted")


def _verify_published(entry: PublishedCheckpoint, path: Path, origin: str) -> None:
    """Raise FetchError unless ``path`` is a published-format checkpoint that loads."""
    import torch

    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            read_policy(path)  # raises the reason in one line, without torch's advice to load unsafely
            raise CheckpointError(f"{path} is not a checkpoint torch can read safely", path=path) from None
        if not isinstance(obj, dict) or "model_state_dict" not in obj:
            raise CheckpointError(f"{path} holds no 'model_state_dict'", path=path)
        del obj
        read_policy(path)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FetchError(f"{entry.name}: {origin} is not a valid published-format checkpoint ({reason}); "
                         "it was not kept", path=path) from None


def _expected_hash(entry: PublishedCheckpoint, sha256: str | None) -> tuple[str | None, str | None, str | None]:
    """(expected hash, where it comes from, the recorded hash) for a fetch of ``entry``."""
    recorded = recorded_hashes().get(entry.name, {}).get("sha256")
    if sha256 is not None:
        return _check_hex(sha256, "sha256"), "given", recorded
    if entry.sha256:
        return entry.sha256, "the table's", recorded
    if recorded:
        return recorded, f"recorded in {_hashes_path()}", recorded
    return None, None, recorded


def _mismatch(entry: PublishedCheckpoint, origin_file: str, got: str, expected: str, origin: str,
              target: Path) -> FetchError:
    return FetchError(f"{entry.name}: {origin_file} has sha256 {got}, but {origin} sha256 is {expected}; it was "
                      "not kept (if the file changed on purpose, pass its hash with --sha256 / sha256=)", path=target)


def _accept(entry: PublishedCheckpoint, path: Path, expected: str | None, origin: str | None,
            recorded: str | None, origin_file: str) -> None:
    """Verify and record a file that passed (or had no) hash check: the last step of a fetch."""
    if expected is None:
        try:
            _verify_published(entry, path, origin_file)
        except FetchError:
            path.unlink(missing_ok=True)
            raise
        import pooch

        _record(entry, pooch.file_hash(str(path)), pinned=False)
    elif origin == "given" and recorded != expected:
        _record(entry, expected, pinned=True)


def fetch(name: str, *, sha256: str | None = None, url: str | None = None, progress: bool = True,
          timeout: float = 30.0) -> Path:
    """Return the path of the published checkpoint ``name`` in the cache, downloading it if needed.

    Args:
        name: a key of :data:`mazeinterp.checkpoints.published.PUBLISHED`, e.g. ``"maze-rand-region-5"``.
        sha256: expected hex sha256; overrides the table's and the recorded one, and is recorded
            (pinned) once a download matches it.
        url: download from this URL (a mirror or a copy) instead; see :func:`source_url`. The file
            must pass the same hash checks.
        progress: show a progress bar (on a terminal).
        timeout: seconds to wait for the server to connect or send data.

    Raises:
        FetchError: unknown name, server unreachable or refusing, download cut short (run again to
            resume), too large or too little disk space (refused before streaming, or stopped at the
            limit), sha256 mismatch (the file is discarded), an unusable cache folder or
            ``hashes.json``, or -- with no hash known -- a file that is not a valid published-format
            checkpoint.
    """
    import pooch
    import requests

    entry = replace(_entry(name), url=source_url(name, url))
    folder = _cache_folder(name)
    expected, origin, recorded = _expected_hash(entry, sha256)
    target = folder / entry.filename
    downloader = _ResumingDownloader(entry, folder / f"{entry.filename}.part", progress, timeout)
    pooch.get_logger().setLevel("WARNING")
    try:
        path = Path(pooch.retrieve(entry.url, known_hash=f"sha256:{expected}" if expected else None,
                                   fname=entry.filename, path=folder, downloader=downloader))
    except ValueError as exc:
        if expected is None or "hash" not in str(exc).lower():
            raise
        raise _mismatch(entry, f"the file downloaded from {entry.url}", downloader.sha256 or "?", expected,
                        str(origin), target) from None
    except requests.RequestException as exc:
        raise FetchError(f"{name}: download from {entry.url} failed ({_network_reason(exc)})") from None
    _accept(entry, path, expected, origin, recorded, f"the file downloaded from {entry.url}")
    return path


def fetch_from_file(name: str, source: str | os.PathLike, *, sha256: str | None = None) -> Path:
    """Put a local copy of the published checkpoint ``name`` into the cache, checked like a download.

    The copy goes through ``FILE.part`` and replaces the cached file only once
    it matches the expected sha256 (given, the table's, or recorded), or -- with
    none known -- once it loads as a published-format checkpoint, whose hash
    is then recorded. ``source`` itself is never changed.

    Returns:
        The path of the cached file.

    Raises:
        FetchError: unknown name, ``source`` missing, not a file or unreadable, larger than the
            limit or than the free disk space, sha256 mismatch, or not a published-format checkpoint.
    """
    entry = _entry(name)
    source = Path(source)
    if not source.is_file():
        raise FetchError(f"{name}: {source} " + ("is not a file" if source.exists() else "does not exist"),
                         path=source)
    folder = _cache_folder(name)
    expected, origin, recorded = _expected_hash(entry, sha256)
    size = source.stat().st_size
    _check_size(entry, size, str(source))
    _check_room(entry, folder, size, f"copying {source}")
    target, partial = folder / entry.filename, folder / f"{entry.filename}.part"
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(partial, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{name}: cannot copy {source} into the cache: {exc.strerror or type(exc).__name__}",
                         path=source) from None
    got = digest.hexdigest()
    if expected is not None and got != expected:
        partial.unlink()
        raise _mismatch(entry, str(source), got, expected, str(origin), target)
    try:
        _accept(entry, partial, expected, origin, recorded, str(source))
    except FetchError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target
