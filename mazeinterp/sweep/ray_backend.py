"""Connecting a sweep to Ray: every way it can fail (no ray package, no client support, no cluster, no server
at a ``ray://`` address) becomes one :class:`RayUnavailableError` line, found before any work starts."""

from __future__ import annotations

import socket
import warnings
from types import ModuleType

__all__ = ["RAY_CLIENT_PREFIX", "RayUnavailableError", "connect_ray"]

RAY_CLIENT_PREFIX = "ray://"
"""Addresses of this form reach a cluster's Ray client server (``ray://HOST:10001``); they need ``ray[client]``."""

_PROBE_TIMEOUT_S = 5.0


class RayUnavailableError(RuntimeError):
    """Ray cannot run the sweep: not installed, or nothing answers at the address; the message says which."""


def _client_host_port(address: str) -> tuple[str, int]:
    """(host, port) of a ``ray://HOST:PORT`` address; ValueError naming the address when it has none."""
    rest = address[len(RAY_CLIENT_PREFIX):].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayUnavailableError(f"a ray:// address needs a host and a port (ray://HOST:10001), got {address!r}")
    return host.strip("[]"), int(port)


def _check_client_server(address: str) -> None:
    """Refuse a ``ray://`` address whose port does not accept a connection (Ray itself would retry for a minute)."""
    try:
        import grpc  # noqa: F401 -- what ray[client] adds to ray
    except ImportError:
        raise RayUnavailableError(f"the address {address} needs Ray's client: pip install \"mazeinterp[ray]\" "
                                  "(it installs ray[client])") from None
    host, port = _client_host_port(address)
    try:
        socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayUnavailableError(f"no Ray client server answers at {address} ({reason})") from None


def connect_ray(address: str) -> ModuleType:
    """The ``ray`` module, connected to the cluster at ``address`` (``"auto"``, ``"local"``, ``"ray://HOST:PORT"``).

    An already initialised Ray is used as it is. Raises :class:`RayUnavailableError` (one line) when ray is not
    installed, a ``ray://`` address has no host and port or no server answering there, or ``ray.init`` fails.
    """
    try:
        import ray
    except ImportError:
        raise RayUnavailableError('running a sweep on Ray needs the ray package: pip install "mazeinterp[ray]"') from None
    if ray.is_initialized():
        return ray
    if address.startswith(RAY_CLIENT_PREFIX):
        _check_client_server(address)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ray warns on stderr before it raises; the error says it all
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise RayUnavailableError(f"cannot connect to Ray at {address!r}: {lines[0] if lines else type(exc).__name__}"
                                  ) from None
    return ray
