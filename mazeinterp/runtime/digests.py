"""sha256 digests that tell files, configs and networks apart: of plain data and of a model's weights.

Plain data is hashed in one canonical JSON form (sorted keys, no spaces), so
two files that parse to the same data have the same digest, whatever their
whitespace or key order.

>>> data_sha256({"b": [1, 2], "a": None}) == data_sha256({"a": None, "b": [1, 2]})
True
>>> data_sha256({"a": 1}) == data_sha256({"a": 2})
False
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

__all__ = ["canonical_json", "data_sha256", "model_sha256"]


def canonical_json(data: Any) -> str:
    """``data`` (JSON-able: dicts, lists, str, numbers, bools, None) as one canonical JSON string."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def data_sha256(data: Any) -> str:
    """Hex sha256 of :func:`canonical_json` of ``data``."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def model_sha256(model: nn.Module) -> str:
    """Hex sha256 of the model's weights (parameter names, shapes and values): two networks told apart by content."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
