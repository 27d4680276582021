"""``OPTIREC_RAY_ADDRESS``: its forms, and whether a Ray cluster answers there, found out without importing Ray.

Settings calls these at start-up when ``trial_backend`` is ``ray``, so that ``optirec serve`` refuses with one
line (exit code 2) instead of starting a service whose trials could never run. The check is a TCP connection
to the cluster's bootstrap port (the GCS for ``host:port``, the Ray Client server for ``ray://host:port``):
cheap, and free of Ray's import (seconds, hundreds of MB) in the API process. Connecting as a Ray driver
happens in the bridge process (service/trials/ray_bridge.py), which reports a cluster that answers TCP but
refuses a driver through /readyz.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile
from dataclasses import dataclass

__all__ = ["CONNECT_TIMEOUT", "RayAddress", "parse_ray_address", "ray_missing", "resolve_ray_address", "unreachable"]

#: Seconds the start-up check waits for the cluster's port to accept a connection.
CONNECT_TIMEOUT = 3.0
_FORMS = "'auto', 'host:port' (the head's GCS, default port 6379) or 'ray://host:port' (Ray Client, port 10001)"


@dataclass(frozen=True)
class RayAddress:
    """A parsed ray_address: ``auto`` (resolved when used), a GCS ``host:port`` or a Ray Client ``ray://``."""

    text: str
    kind: str  # "auto", "gcs" or "client"
    host: str = ""
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


def _host_port(text: str, whole: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{whole[:120]!r} is not a Ray address; use {_FORMS}")
    return host, int(port)


def parse_ray_address(value: str) -> RayAddress:
    """The address's form; ValueError naming the valid forms when it has none of them."""
    text = value.strip()
    if text == "auto":
        return RayAddress(text, "auto")
    if text.startswith("ray://"):
        host, port = _host_port(text[len("ray://") :], value)
        return RayAddress(text, "client", host, port)
    if "://" in text:
        raise ValueError(f"{value[:120]!r} is not a Ray address; use {_FORMS}")
    host, port = _host_port(text, value)
    return RayAddress(text, "gcs", host, port)


def _current_cluster_file() -> str:
    # ray/_common/utils.py get_ray_address_file + get_default_ray_temp_dir: <RAY_TMPDIR or the temp dir>/ray
    return os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), "ray", "ray_current_cluster")


def resolve_ray_address(address: RayAddress) -> RayAddress | None:
    """``auto`` as ``ray.init(address="auto")`` resolves it (ray/_private/services.py
    get_ray_address_from_environment): RAY_ADDRESS, else the cluster ``ray start`` last started here. None when
    neither says."""
    if address.kind != "auto":
        return address
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env != "auto":
        return parse_ray_address(env)
    try:
        with open(_current_cluster_file(), encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    try:
        return parse_ray_address(text) if text else None
    except ValueError:
        return None


def ray_missing() -> str | None:
    """Why Ray cannot be used from this interpreter (not installed), or None."""
    if importlib.util.find_spec("ray") is None:
        return "trials on Ray need Ray, which is not installed: pip install 'optirec[ray]' (or use 'process')"
    return None


def unreachable(address: RayAddress, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why no Ray cluster answers at ``address``, or None when its bootstrap port accepts a connection."""
    resolved = resolve_ray_address(address)
    if resolved is None:
        return (
            "'auto' found no Ray cluster: RAY_ADDRESS is unset and `ray start --head` has not run on this machine; "
            f"start one or give its address ({_FORMS})"
        )
    try:
        with socket.create_connection((resolved.host, resolved.port), timeout=timeout):
            return None
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        return f"no Ray cluster answers at {resolved.text} ({why}); start one (`ray start --head`) or fix the address"
