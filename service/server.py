"""The embedded HTTP server: uvicorn with a bounded request head and read deadlines (``optirec serve``).

uvicorn (0.55) alone bounds neither: its httptools backend (uvicorn/protocols/http/httptools_impl.py, the
``auto`` choice when httptools is installed, as uvicorn[standard] does) feeds every byte to llhttp, which has
no header-size limit, and arms no timer until a first response is complete (``timeout_keep_alive`` is set in
``on_response_complete`` only), so a connection that sends a partial head, a partial body or a chunked body
that never ends is held forever. The h11 backend has ``h11_max_incomplete_event_size`` (h11/_connection.py
DEFAULT_MAX_INCOMPLETE_EVENT_SIZE = 16 KiB), but uvicorn answers its "Receive buffer too long" with a generic
400 (h11_impl.py handle_events, send_400_response), ignores h11's ``error_status_hint=431``, has the same
missing read timers, and costs more CPU per request than httptools (pure Python).

So the server keeps httptools and subclasses its protocol (:class:`GuardedHttpToolsProtocol`):

- **Head size**: the request line and headers may take at most ``max_header_bytes`` (Settings); past that, the
  server answers ``431 Request Header Fields Too Large`` (RFC 6585 §5) and closes, having read no more than
  the limit into the parser.
- **Head deadline**: a head must be complete ``header_timeout`` seconds after the connection opens (or, on a
  kept-alive connection, after its first byte; the idle time before it is uvicorn's ``timeout_keep_alive``).
- **Body deadline**: the body must be complete ``body_timeout`` seconds after its head, however it trickles
  in (a deadline, not an idle timer: a byte a second would reset an idle timer forever). With the default
  1 MB body limit and 30 s that is at least 33 kB/s.
- A client past a deadline gets ``408 Request Timeout`` (RFC 9110 §15.5.9) and is disconnected; one that sent
  nothing is just closed.
- **Write stall**: a client that stops reading its answer fills the socket and the transport's buffer, and
  uvicorn's ``send`` then waits in ``flow.drain()`` (httptools_impl.py RequestResponseCycle.send) for as long as
  the client likes. While writing is paused (asyncio's ``pause_writing``, past the transport's high-water mark)
  the server checks every ``body_timeout`` seconds whether the transport's write buffer has shrunk since the
  last check; when it has not, the client has read nothing for that long and the connection is aborted (the
  answer cannot be delivered; its task and buffers are freed). A slow reader makes progress and is never cut
  off.
- After a 431 or 408 the connection lingers (write side shut, what the client still sends read and
  discarded, at most LINGER_SECONDS and LINGER_BYTES) so that the client reads the answer instead of a TCP
  reset from a close with unread data; then it is closed.

``limit_concurrency`` (uvicorn config.py, a 503 to every new request past N connections) is left unset: with
the deadlines above a stalled client holds a connection for seconds, not forever, and a connection cap would
let a few hundred slow clients turn every real request into a 503, which is the starvation the deadlines
prevent. Forwarded headers (``proxy_headers``, uvicorn/middleware/proxy_headers.py) are read only from
``Settings.forwarded_allow_ips``; uvicorn's own default trusts 127.0.0.1 and ::1 (config.py
``forwarded_allow_ips``, or the ``FORWARDED_ALLOW_IPS`` variable), which lets any local process set the client
address the access log shows.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import Settings

__all__ = ["LINGER_BYTES", "LINGER_SECONDS", "GuardedHttpToolsProtocol", "Limits", "build_server", "serve"]

#: After a 431/408: how long, and how many bytes, the server reads and drops before it closes.
LINGER_SECONDS = 2.0
LINGER_BYTES = 8 * 1024 * 1024


class Limits:
    """What a connection may take: head bytes, head and body deadlines (seconds)."""

    def __init__(self, max_header_bytes: int, header_timeout: float, body_timeout: float) -> None:
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_header_bytes, settings.header_timeout, settings.body_timeout)


def _error(status: int, reason: bytes, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response with the service's error body, closing the connection."""
    body = json.dumps({"error": {"status": status, "code": code, "message": message}}).encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        reason,
        len(body),
    )
    return head + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head-size limit and head/body deadlines (see the module docstring).

    Built per server by :func:`guarded_protocol`, which sets ``limits``. The parser callbacks it extends
    (``on_message_begin``, ``on_headers_complete``, ``on_message_complete``) are uvicorn's, called by
    httptools.HttpRequestParser during ``feed_data``.
    """

    limits: ClassVar[Limits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers (or waiting for one)
        self._head_bytes = 0
        self._started = False  # any byte of the current request seen
        self._deadline: asyncio.TimerHandle | None = None
        self._lingering = -1  # -1: not lingering; else the bytes dropped while lingering
        self._write_deadline: asyncio.TimerHandle | None = None  # armed while writing is paused
        self._write_backlog = 0  # the transport's unsent bytes at the last check of a paused write

    # -- deadlines
    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if what == "head" and not self._started:
            self.transport.close()  # nothing sent at all: no request to answer
            return
        seconds = self.limits.header_timeout if what == "head" else self.limits.body_timeout
        self._refuse(
            408,
            b"Request Timeout",
            "request_timeout",
            f"the request {what} did not arrive within {seconds:g} s; the connection is closed",
        )

    def _refuse(self, status: int, reason: bytes, code: str, message: str) -> None:
        """Answer ``status``, stop the request, linger, then close; only close where an answer to this or an
        earlier request on the connection is still being sent, or was sent for this one already."""
        self._disarm()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        self.logger.warning("%s: %d %s", client, status, message)
        cycle = self.cycle  # the current request's (body phase) or the previous one's (head phase)
        busy = cycle is not None and not cycle.response_complete
        if busy:
            cycle.disconnected = True  # the app's receive() now returns http.disconnect, its send() is dropped
            cycle.message_event.set()
        if (busy and (self._in_head or cycle.response_started)) or (
            cycle is not None and not busy and not self._in_head
        ):
            self.transport.close()  # an answer is on the wire, or this request had one: an error would garble it
            return
        self.transport.write(_error(status, reason, code, message))
        self._lingering = 0
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, "head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_write_deadline()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_backlog = self.transport.get_write_buffer_size()
            self._write_deadline = self.loop.call_later(self.limits.body_timeout, self._write_check)

    def resume_writing(self) -> None:
        self._stop_write_deadline()
        super().resume_writing()

    def _stop_write_deadline(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _write_check(self) -> None:
        """Still paused after body_timeout: go on if the client read something since the last check, else drop."""
        self._write_deadline = None
        if self.transport.is_closing():
            return
        backlog = self.transport.get_write_buffer_size()
        if backlog < self._write_backlog:  # progress: the client is slow, not stalled
            self._write_backlog = backlog
            self._write_deadline = self.loop.call_later(self.limits.body_timeout, self._write_check)
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        self.logger.warning(
            "%s: read none of its answer for %g s; the connection is dropped", client, self.limits.body_timeout
        )
        self.transport.abort()  # connection_lost follows: uvicorn marks the cycle disconnected and frees its send

    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.close()
            return
        if self._in_head:
            if self._deadline is None:  # the first byte of a request on a kept-alive connection
                self._arm(self.limits.header_timeout, "head")
            self._started = True
            room = self.limits.max_header_bytes - self._head_bytes
            if len(data) > room:
                head, data = data[:room], data[room:]
                self._head_bytes += len(head)
                super().data_received(head)
                if self.transport.is_closing() or self._lingering >= 0:
                    return
                if self._in_head:
                    limit = self.limits.max_header_bytes
                    self._refuse(
                        431,
                        b"Request Header Fields Too Large",
                        "headers_too_large",
                        f"the request line and headers are larger than {limit} bytes",
                    )
                    return
            else:
                self._head_bytes += len(data)
        super().data_received(data)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection now belongs to the WebSocket protocol, with its own ping timeouts
        super().handle_websocket_upgrade()

    # -- httptools parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._started = True
        if self._deadline is None:  # a pipelined request, begun inside the read that ended the last one
            self._arm(self.limits.header_timeout, "head")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm(self.limits.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._head_bytes = 0
        self._started = False
        super().on_message_complete()


def guarded_protocol(limits: Limits) -> type[GuardedHttpToolsProtocol]:
    """A GuardedHttpToolsProtocol class bound to ``limits`` (uvicorn builds one protocol object per connection
    from ``Config.http`` when it is a class: config.py ``load``, server.py ``create_protocol``)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def build_server(settings: Settings, app: Any = None) -> uvicorn.Server:
    """The uvicorn Server for ``settings`` (``app`` defaults to ``create_app(settings)``)."""
    if app is None:
        from .app import create_app

        app = create_app(settings)
    trusted = list(settings.forwarded_allow_ips)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=guarded_protocol(Limits.from_settings(settings)),
        timeout_keep_alive=settings.keep_alive_timeout,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
    )
    return uvicorn.Server(config)


def serve(settings: Settings) -> None:
    """Run the service until it is stopped (SIGINT/SIGTERM: uvicorn's graceful shutdown)."""
    build_server(settings).run()
