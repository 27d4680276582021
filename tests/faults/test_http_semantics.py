"""Hostile or plain clients and HTTP details (issue 22, item 7), against the real ``optirec serve``.

Once: HEAD was a 405 on every GET route (/healthz included); ``Host: evil.example`` came back in the slash
redirect's Location; ``X-Forwarded-For`` from loopback was believed, so the access log showed whatever a
local process claimed. Now HEAD answers as GET without a body (service/middleware.py HeadAsGet), redirects
point at a path (RelativeRedirects) and forwarded headers are read only from ``OPTIREC_FORWARDED_ALLOW_IPS``
(default: none; service/server.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.routing import Mount
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from optirec.service.app import create_app
from optirec.service.middleware import relative_location
from optirec.service.server import build_server
from optirec.service.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(module_live_server: Callable[..., Any]) -> Any:
    """One real server (tests/conftest.py LiveServer); log level info, for the access-log checks."""
    return module_live_server(OPTIREC_LOG_LEVEL="info")


def _get_paths() -> list[str]:
    """Every GET route of the app create_app() builds, path parameters filled in, and a file of each mount.

    FastAPI 0.165 keeps an included router as ``_IncludedRouter`` (its ``original_router`` and the include's
    ``prefix``, fastapi/routing.py), so the walk descends into those."""
    app = create_app(Settings(trial_store=":memory:"))
    paths: list[str] = []
    stack: list[tuple[str, Any]] = [("", route) for route in app.routes]
    while stack:
        prefix, route = stack.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            more = prefix + getattr(getattr(route, "include_context", None), "prefix", "")
            stack.extend((more, r) for r in included.routes)
        elif isinstance(route, Mount):
            paths.append(prefix + route.path + "/app.css")
        elif "GET" in (getattr(route, "methods", None) or ()):
            params = getattr(route, "param_convertors", {})
            paths.append(prefix + str(route.path).format(**{name: "no-such-id" for name in params}))
    return sorted(set(paths))


GET_PATHS = _get_paths()


def test_the_route_table_is_the_whole_app() -> None:
    """The table below covers what the app serves: health, the catalog, trials, metrics, docs, the web form."""
    for expected in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/", "/static/app.css"):
        assert expected in GET_PATHS
    assert any(p.startswith("/trials/no-such-id") for p in GET_PATHS)
    assert len(GET_PATHS) >= 12, GET_PATHS


@pytest.mark.parametrize("path", GET_PATHS)
def test_head_answers_every_get_route_as_get_without_a_body(server: Any, path: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        got = client.get(path)
        head = client.head(path)
    assert head.status_code == got.status_code != 405, (path, head.status_code, got.status_code)
    assert head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")
    if got.headers.get("content-length") and path not in ("/metrics", "/readyz"):
        assert head.headers["content-length"] == got.headers["content-length"]


def test_head_is_still_405_where_get_is(server: Any) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/recommend").status_code == 405
        assert client.head("/recommend").status_code == 405


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1:1"])
def test_slash_redirects_never_echo_the_host_header(server: Any, host: str) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /healthz/?x=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 307"), head
    assert "location: /healthz?x=1\r\n" in head + "\r\n", head
    assert host.split(":")[0] not in head.replace("host", "")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://evil.example/healthz", "/healthz"),
        ("https://EVIL.example/a?b=1#c", "/a?b=1#c"),
        ("http://evil.example//other.example/x", "/other.example/x"),
        ("http://other.example/x", "http://other.example/x"),
        ("/already/relative", "/already/relative"),
    ],
    ids=["host", "case-query-fragment", "no-network-path", "elsewhere-kept", "relative"],
)
def test_relative_location(location: str, expected: str) -> None:
    assert relative_location(location, {"evil.example"}) == expected


def test_forwarded_headers_from_loopback_are_not_believed_by_default(server: Any) -> None:
    spoofed = "203.0.113.66"
    r = httpx.get(f"{server.url}/healthz", headers={"X-Forwarded-For": spoofed, "X-Forwarded-Proto": "https"})
    assert r.status_code == 200
    time.sleep(0.3)
    access = [line for line in server.output().splitlines() if "GET /healthz" in line]
    assert access and spoofed not in "\n".join(access), access[-3:]
    assert "127.0.0.1:" in access[-1]


@pytest.mark.parametrize(
    ("trusted", "wrapped"),
    [([], False), (["127.0.0.1"], True), (["10.0.0.0/8", "::1"], True)],
    ids=["default-none", "loopback", "networks"],
)
def test_forwarded_headers_only_from_configured_proxies(trusted: list[str], wrapped: bool) -> None:
    settings = Settings(trial_store=":memory:", forwarded_allow_ips=trusted)
    server = build_server(settings, app=create_app(settings))
    server.config.load()
    app = server.config.loaded_app
    assert isinstance(app, ProxyHeadersMiddleware) == wrapped
    if wrapped:
        assert isinstance(app, ProxyHeadersMiddleware)
        assert not app.trusted_hosts.always_trust
        for host in trusted:
            assert host.split("/")[0] in app.trusted_hosts or any(
                host == str(net) for net in app.trusted_hosts.trusted_networks
            )
        assert "192.0.2.1" not in app.trusted_hosts
