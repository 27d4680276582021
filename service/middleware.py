"""Two small ASGI middlewares of the app: HEAD on every GET route, and redirects that never repeat the Host header.

- FastAPI registers only the methods a route names (fastapi/routing.py APIRoute ``methods``), so HEAD was a 405
  on every GET route, /healthz included. :class:`HeadAsGet` runs a HEAD request as the GET it asks about and
  sends its status and headers (Content-Length included, RFC 9110 §9.3.2) without the body.
- Starlette's slash redirect (starlette/routing.py Router ``redirect_slashes``) builds an absolute Location from
  ``URL(scope=...)``, i.e. from the client's Host header, so ``Host: evil.example`` came back as
  ``location: http://evil.example/healthz``. :class:`RelativeRedirects` makes every Location that points at the
  request's own authority relative (a path, RFC 9110 §10.2.2 allows a URI reference), and refuses to let a
  path that starts with ``//`` (a network-path reference to another host) through as one.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGet", "RelativeRedirects", "relative_location"]


class HeadAsGet:
    """Answer ``HEAD`` as ``GET`` without the body (a route that has no GET still answers 405, as for GET)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = False

        async def headers_only(message: Message) -> None:
            nonlocal done
            if done:
                return  # the rest of a streamed body: the client asked for none of it
            if message["type"] == "http.response.body":
                done = True  # one empty, final body message ends the response (an endless stream too)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # a copy: the server's own scope keeps "HEAD" (uvicorn then sends no body bytes either)
        await self.app({**scope, "method": "GET"}, receive, headers_only)


def relative_location(location: str, authorities: set[str]) -> str:
    """``location`` as a path when it points at one of ``authorities`` (host[:port], lower case), else as is."""
    parts = urlsplit(location)
    if not parts.netloc or parts.netloc.lower() not in authorities:
        return location
    path = "/" + parts.path.lstrip("/")  # never "//host/...": that would send the client elsewhere
    return urlunsplit(("", "", path, parts.query, parts.fragment))


def _relative(location: bytes, authorities: set[str]) -> bytes:
    return relative_location(location.decode("latin-1"), authorities).encode("latin-1")


class RelativeRedirects:
    """Rewrite the Location of a response that points at the request's own Host (or server address) to a path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorities = {v.decode("latin-1").lower() for k, v in scope.get("headers", []) if k == b"host"}
        server = scope.get("server")
        if server:
            authorities |= {f"{server[0]}:{server[1]}", str(server[0])}

        async def send_relative(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                headers = [
                    (k, _relative(v, authorities) if k == b"location" else v) for k, v in message.get("headers", [])
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_relative)
