"""The checkpoint file format: read a file into a policy (safely, every failure named), write one.

Formats read by :func:`read_policy` (always with ``weights_only=True``: a
checkpoint is data, never code):

* **published** -- ``{"model_state_dict": ..., "optimizer_state_dict": ...}``,
  as released with the goal-misgeneralization maze agents;
* **ours** -- ``{"model_state_dict": ..., "metadata": {...}}`` plus an optional
  ``"optimizer_state_dict"``, written by :func:`save_policy`;
* a **bare state dict** (``str`` → tensor).

The scale is inferred from ``embedder.block1.conv.weight.shape[0] // 16``.
Every failure raises a subclass of :class:`CheckpointError` whose message
names the file. Names of checkpoints (shipped agents, ``published:NAME``) are
resolved by :mod:`mazeinterp.checkpoints.registry`, which re-exports everything here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import pickle
import pickletools
import re
import sys
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mazeinterp.runtime.limits import MAX_CHECKPOINT_BYTES, check_memory, format_bytes
from mazeinterp.core.model import BASE_WIDTHS, ImpalaPolicy

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "CheckpointHashError",
    "CheckpointKeyError",
    "CheckpointNotFoundError",
    "CheckpointShapeError",
    "CheckpointTooLargeError",
    "NonFiniteWeightsError",
    "NotACheckpointError",
    "UnreadableCheckpointError",
    "UnsafeCheckpointError",
    "UnsupportedScaleError",
    "file_sha256",
    "read_policy",
    "save_policy",
    "unsafe_global",
]

FORMAT_VERSION = 1
"""Version of the format written by :func:`save_policy`."""

_SCALE_KEY = "embedder.block1.conv.weight"


class CheckpointError(Exception):
    """Base class of every checkpoint failure; ``path`` is the file concerned."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = path


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No such checkpoint file, or an unknown registry name."""


class CheckpointHashError(CheckpointError):
    """A shipped name's file does not have the sha256 the registry records; ``expected`` and ``found`` are hex."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, expected: str | None = None,
                 found: str | None = None) -> None:
        super().__init__(message, path=path)
        self.expected = expected
        self.found = found


class NotACheckpointError(CheckpointError):
    """The file cannot be read by ``torch.load(weights_only=True)`` or holds no state dict."""


class CheckpointKeyError(CheckpointError):
    """The state dict's keys differ from the policy's; ``missing`` and ``unexpected`` are sorted lists."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.missing = missing or []
        self.unexpected = unexpected or []


class CheckpointShapeError(CheckpointError):
    """A tensor has the wrong shape; ``key``, ``expected`` and ``found`` say which and how."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        key: str | None = None,
        expected: tuple[int, ...] | None = None,
        found: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.key = key
        self.expected = expected
        self.found = found


class UnreadableCheckpointError(CheckpointError):
    """The operating system refused to read the file (permissions, a folder, an I/O error); ``reason`` says how."""


class UnsafeCheckpointError(NotACheckpointError):
    """The file's pickle would load a Python global that can run code; ``global_name`` names it."""

    global_name: str


class NonFiniteWeightsError(CheckpointError):
    """A weight tensor holds NaN or inf (``key`` names it), or finite weights give non-finite outputs (``key`` None)."""

    key: str | None


class CheckpointTooLargeError(NotACheckpointError):
    """The file is larger than any checkpoint (:data:`mazeinterp.runtime.limits.MAX_CHECKPOINT_BYTES`); it is not read."""


class UnsupportedScaleError(CheckpointError):
    """The first conv's out-channels are not a positive multiple of 16, or metadata disagrees."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_failure(err: Exception) -> str:
    """A one-line reason why ``torch.load(weights_only=True)`` failed (torch's advice left out)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # torch prefixes its reason with advice to turn weights_only off: never repeat that
    reasons = [line for line in lines if "weights_only" not in line and "docs" not in line.lower()]
    return f"torch.load cannot read it ({type(err).__name__}: {(reasons or ['no detail'])[0]})"


def _pickle_bytes(data: bytes) -> bytes:
    """The (first) pickle stream of a checkpoint's bytes: ``*/data.pkl`` of a zip file, else the bytes themselves."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return archive.read(names[0]) if names else b""
    return data


def unsafe_global(data: bytes) -> str | None:
    """The first Python global in a checkpoint's pickle (``data``: the file's bytes) that torch's weights-only
    loader does not allow.

    None when every global is one of torch's allowed ones (tensors, storages,
    ``OrderedDict``...), or when the pickle cannot be scanned.
    """
    from torch import _weights_only_unpickler

    allowed = set(_weights_only_unpickler._get_allowed_globals())
    # hasattr drops the (global, name) pairs, which the checker cannot follow
    allowed |= {f"{g.__module__}.{g.__qualname__}" for g in torch.serialization.get_safe_globals()  # type: ignore[union-attr]
                if hasattr(g, "__qualname__")}
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(_pickle_bytes(data)):
            if isinstance(arg, str) and "UNICODE" in opcode.name:
                strings = [*strings[-1:], arg]
            if opcode.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
            elif opcode.name == "STACK_GLOBAL" and len(strings) == 2:
                name = ".".join(strings)
            else:
                continue
            if name not in allowed and not re.fullmatch(r"torch\.\w*Storage", name):
                return name
    except Exception:  # noqa: BLE001 -- a pickle we cannot walk: torch's own reason is reported instead
        return None
    return None


def _read(path: Path) -> Any:
    # the file is read here, so that an OS error (permissions, I/O) is told apart from bad content
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # reading it says what is wrong
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointTooLargeError(
            f"{path} is {format_bytes(size)}, larger than any checkpoint (the limit is "
            f"{format_bytes(MAX_CHECKPOINT_BYTES)}, mazeinterp.runtime.limits.MAX_CHECKPOINT_BYTES); it was not read",
            path=path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UnreadableCheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}", path=path) from err
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:
        name = unsafe_global(data) if isinstance(err, pickle.UnpicklingError) else None
        if name is not None:
            error = UnsafeCheckpointError(
                f"{path} is refused: its pickle loads the Python global {name}, which can run code; "
                "a checkpoint may hold only tensors and plain data", path=path)
            error.global_name = name
            raise error from None
        raise NotACheckpointError(f"{path} is not a checkpoint: {_load_failure(err)}", path=path) from err


def _check_finite(state: Mapping[str, Tensor], path: Path) -> None:
    """Refuse weights with NaN or inf, naming the first such key."""
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            error = NonFiniteWeightsError(f"{path}: {key} holds {bad} NaN or inf value(s); the weights are broken",
                                          path=path)
            error.key = key
            raise error


def _split(obj: Any, path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Return (state dict, metadata) of a loaded checkpoint object."""
    if not isinstance(obj, Mapping):
        raise NotACheckpointError(
            f"{path} holds a {type(obj).__name__}, expected a dict with 'model_state_dict' "
            "or a state dict",
            path=path,
        )
    metadata: Any = {}
    state = obj
    if "model_state_dict" in obj:
        state = obj["model_state_dict"]
        metadata = obj.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise NotACheckpointError(f"{path}: 'metadata' is a {type(metadata).__name__}, expected a dict", path=path)
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items())
    ):
        raise NotACheckpointError(
            f"{path} holds no state dict: expected a non-empty mapping of str to tensor "
            "(directly or under 'model_state_dict')",
            path=path,
        )
    return dict(state), dict(metadata)


def _infer_scale(state: Mapping[str, Tensor], metadata: Mapping[str, Any], path: Path) -> int:
    weight = state[_SCALE_KEY]
    out_channels = weight.shape[0] if weight.ndim else 0
    if out_channels <= 0 or out_channels % BASE_WIDTHS[0]:
        raise UnsupportedScaleError(
            f"{path}: {_SCALE_KEY} has {out_channels} output channels, "
            f"expected a positive multiple of {BASE_WIDTHS[0]} (16 · scale)",
            path=path,
        )
    scale = out_channels // BASE_WIDTHS[0]
    if "scale" in metadata and metadata["scale"] != scale:
        raise UnsupportedScaleError(
            f"{path}: metadata says scale {metadata['scale']!r}, but the weights have scale {scale} "
            f"({_SCALE_KEY} has {out_channels} output channels)",
            path=path,
        )
    return scale


def _check_keys(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: Path) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [f"{len(names)} {kind} ({_first_names(names)})"
                 for kind, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise CheckpointKeyError(
            f"{path}: state dict keys do not match ImpalaPolicy: {'; '.join(parts)}{_prefix_hint(state, expected)}",
            path=path,
            missing=missing,
            unexpected=unexpected,
        )


def _first_names(names: Sequence[str], shown: int = 4) -> str:
    """``names`` joined with commas, cut after ``shown`` with a count of the rest."""
    rest = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + rest


def _prefix_hint(state: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> str:
    """A hint when every key carries one extra leading component (a wrapper's ``module.``, say)."""
    prefixes = {key.split(".", 1)[0] for key in state}
    if len(prefixes) != 1 or not all("." in key for key in state):
        return ""
    prefix = f"{prefixes.pop()}."
    if {key[len(prefix):] for key in state} != set(expected):
        return ""
    return f"; every key starts with {prefix!r}: remove that prefix from the keys and load again"


def _check_shapes(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: Path) -> None:
    for key, reference in expected.items():
        want, got = tuple(reference.shape), tuple(state[key].shape)
        if want != got:
            raise CheckpointShapeError(
                f"{path}: {key} has shape {got}, expected {want}",
                path=path,
                key=key,
                expected=want,
                found=got,
            )


def _expected_state(scale: int) -> dict[str, Tensor]:
    """The state dict of a scale-``scale`` policy on the meta device: its keys and shapes, no memory."""
    with torch.device("meta"):
        return ImpalaPolicy(scale=scale).state_dict()


def _check_memory(expected: Mapping[str, Tensor], scale: int, path: Path) -> None:
    needed = sum(t.numel() * t.element_size() for t in expected.values())
    check_memory(f"{path}: a scale-{scale} policy", needed, "this checkpoint cannot be loaded here")


_PROBE_SEED = 0


def _check_outputs(model: ImpalaPolicy, path: Path) -> None:
    """Refuse finite weights whose outputs overflow: one forward pass of a black, a white and a noise input."""
    noise = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(_PROBE_SEED))
    x = torch.stack([torch.zeros(3, 64, 64), torch.ones(3, 64, 64), noise])
    with torch.inference_mode():
        logits, value = model(x)
    if not (bool(logits.isfinite().all()) and bool(value.isfinite().all())):
        error = NonFiniteWeightsError(
            f"{path}: the weights are finite, but the policy's outputs on a probe input are not (NaN or inf); "
            "the weights overflow float32", path=path)
        error.key = None
        raise error


def read_policy(path: str | os.PathLike) -> ImpalaPolicy:
    """The policy in checkpoint file ``path``, on the CPU, in eval mode.

    The returned model has ``model.metadata`` (the checkpoint's metadata dict;
    empty for published checkpoints and bare state dicts) and ``model.source``
    (``path``). To load by a shipped or published name, use
    :func:`mazeinterp.checkpoints.registry.load_policy`.

    Before anything is built, the file's size is checked (a file larger than
    :data:`~mazeinterp.runtime.limits.MAX_CHECKPOINT_BYTES` is not read), then its keys
    and shapes, and the memory the model would need; after loading, one probe
    forward pass must give finite outputs.

    Raises:
        NotACheckpointError, CheckpointTooLargeError, UnsafeCheckpointError, UnreadableCheckpointError,
        NonFiniteWeightsError, CheckpointKeyError, CheckpointShapeError,
        UnsupportedScaleError: see their docstrings.
        mazeinterp.runtime.limits.ResourceLimitError: the model would not fit in this machine's memory.
    """
    path = Path(path)
    state, metadata = _split(_read(path), path)
    _check_keys(state, _expected_state(1), path)
    scale = _infer_scale(state, metadata, path)
    expected = _expected_state(scale)  # shapes are checked before any model is built
    _check_shapes(state, expected, path)
    _check_memory(expected, scale, path)
    _check_finite(state, path)
    model = ImpalaPolicy(scale=scale)
    model.load_state_dict(state)
    model.metadata = metadata
    model.source = path
    _check_outputs(model.eval(), path)
    return model


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as data that ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, Mapping):
        if not all(isinstance(k, (str, int)) for k in value):
            raise TypeError(f"{where} has a key that is not a str or int")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint metadata must be plain data "
        "(None, bool, int, float, str, list, tuple, dict, tensor)"
    )


def _package_version() -> str:
    try:
        return importlib.metadata.version("mazeinterp")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(sys.modules.get("mazeinterp"), "__version__", "unknown"))


def save_policy(
    model: ImpalaPolicy,
    path: str | os.PathLike,
    metadata: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` in our format, atomically, and return the path.

    The file holds ``{"model_state_dict", "metadata"}`` (plus
    ``"optimizer_state_dict"`` when given). ``metadata`` is the caller's plain
    data plus ``scale``, ``format_version`` and ``mazeinterp_version``.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        TypeError: metadata or optimizer state that is not plain data.
        ValueError: metadata states a scale other than the model's.
    """
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    meta = _plain(dict(metadata or {}), "metadata")
    if "scale" in meta and meta["scale"] != model.scale:
        raise ValueError(f"metadata scale {meta['scale']!r} differs from the model's scale {model.scale}")
    meta.update(scale=model.scale, format_version=FORMAT_VERSION, mazeinterp_version=_package_version())
    payload: dict[str, Any] = {
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": meta,
    }
    if optimizer_state is not None:
        payload["optimizer_state_dict"] = _plain(optimizer_state, "optimizer_state")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        tmp_name.unlink(missing_ok=True)
        raise
    return path
