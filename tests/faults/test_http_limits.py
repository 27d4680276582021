"""Fault: huge request heads and slow or stalled clients against the real ``optirec serve`` (issue 22, item 2).

Once a 64 MiB header was read whole and answered 200 (5.4 s of server CPU, /healthz stalled 3.7 s) and a
client that sent a partial head, a partial body or an endless chunked body was held forever. The server
(service/server.py) now answers 431 past ``max_header_bytes`` and 408 past ``header_timeout`` /
``body_timeout``, then disconnects. Everything here is raw sockets to 127.0.0.1 against a real server process
started with short deadlines.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optirec.service.server import LINGER_SECONDS

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MAX_HEADER_BYTES = 64 * 1024
#: On top of a deadline: the event loop's timer slack and a loaded 2-core machine.
SLACK = 1.5


def cpu_seconds(server: Any) -> float:
    """User + system CPU the server process has used (Linux /proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def get(port: int, path: str) -> bytes:
    """One whole GET answer (Connection: close)."""
    with connect(port) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset after its answer counts as the close)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.fixture(scope="module")
def server(module_live_server: Callable[..., Any]) -> Any:
    """One real server (tests/conftest.py LiveServer) with short deadlines and a small head limit."""
    return module_live_server(
        OPTIREC_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        OPTIREC_BODY_TIMEOUT=str(BODY_TIMEOUT),
        OPTIREC_MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
    )


class HealthProbe:
    """Times GET /healthz in a loop from a thread while a test runs: the server must stay responsive."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                answer = get(self.port, "/healthz")
                if not answer.startswith(b"HTTP/1.1 200"):
                    self.failures.append(answer[:80].decode(errors="replace"))
            except OSError as exc:
                self.failures.append(repr(exc))
            self.latencies.append(time.monotonic() - start)
            time.sleep(0.05)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def stream_header(port: int, total: int, limit_seconds: float = 8.0) -> tuple[bytes, int, float]:
    """Send ``GET /healthz`` with one header of ``total`` bytes in 64 KiB pieces (never built whole), reading
    at the same time; returns (what the server answered, bytes sent, seconds until it closed)."""
    piece = b"a" * 65536
    sock = connect(port)
    sock.setblocking(False)
    start = time.monotonic()
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Big: "
    pending = head
    sent = 0
    answer = b""
    try:
        while time.monotonic() - start < limit_seconds:
            want_write = [sock] if sent < total + len(head) else []
            readable, writable, _ = select.select([sock], want_write, [], 0.5)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
            elif writable:
                if not pending:
                    rest = total + len(head) - sent
                    pending = piece if rest >= len(piece) else piece[:rest] + b"\r\n\r\n"
                try:
                    n = sock.send(pending)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += n
                pending = pending[n:]
        return answer, sent, time.monotonic() - start
    finally:
        sock.close()


def status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_a_64_mib_header_is_a_431_fast_and_healthz_stays_responsive(server: Any) -> None:
    cpu_before = cpu_seconds(server)
    with HealthProbe(server.port) as probe:
        answer, sent, seconds = stream_header(server.port, 64 * 1024 * 1024)
    cpu = cpu_seconds(server) - cpu_before
    assert status(answer) == 431, answer[:300]
    assert b"headers_too_large" in answer and str(MAX_HEADER_BYTES).encode() in answer
    assert seconds < LINGER_SECONDS + SLACK + 1, f"{seconds:.2f} s to close"
    assert sent < 64 * 1024 * 1024, "the server read the whole header"
    assert cpu < 2.0, f"the server spent {cpu:.2f} s of CPU on it"
    assert probe.failures == [] and probe.latencies, probe.failures
    assert max(probe.latencies) < 1.0, f"/healthz took up to {max(probe.latencies):.2f} s"
    print(
        f"64 MiB header: 431 after {sent} bytes sent, closed in {seconds:.2f} s, server CPU {cpu:.2f} s, "
        f"/healthz max {max(probe.latencies) * 1000:.0f} ms over {len(probe.latencies)} probes"
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [(MAX_HEADER_BYTES - 4096, 200), (MAX_HEADER_BYTES + 1, 431), (16 * 1024 * 1024, 431)],
    ids=["under-the-limit", "one-over", "16MiB"],
)
def test_the_head_limit(server: Any, size: int, expected: int) -> None:
    answer, _, _ = stream_header(server.port, size)
    assert status(answer) == expected, answer[:300]


def _slow(port: int, first: bytes, trickle: bytes = b"", every: float = 0.2) -> tuple[bytes, float]:
    """Send ``first``, then ``trickle`` every ``every`` seconds until the server closes; (answer, seconds)."""
    sock = connect(port)
    sock.settimeout(0.05)
    start = time.monotonic()
    if first:
        sock.sendall(first)
    answer = b""
    try:
        while time.monotonic() - start < 20:
            try:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            except TimeoutError:
                pass
            except ConnectionResetError:
                break
            if trickle:
                try:
                    sock.sendall(trickle)
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(every)
        return answer, time.monotonic() - start
    finally:
        sock.close()


POST = b"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("first", "trickle", "deadline", "answered"),
    [
        (b"", b"", HEADER_TIMEOUT, False),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"", HEADER_TIMEOUT, True),
        (b"GET /healthz HTTP/1.1\r\n", b"X-Slow: 1\r\n", HEADER_TIMEOUT, True),
        (POST + b"Content-Length: 100\r\n\r\n{", b"", BODY_TIMEOUT, True),
        (POST + b"Content-Length: 100000\r\n\r\n{", b" ", BODY_TIMEOUT, True),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n", b"1\r\n \r\n", BODY_TIMEOUT, True),
    ],
    ids=["silent", "partial-head", "dribbled-head", "partial-body", "dribbled-body", "endless-chunked"],
)
def test_slow_clients_are_disconnected_after_the_deadline(
    server: Any, first: bytes, trickle: bytes, deadline: float, answered: bool
) -> None:
    answer, seconds = _slow(server.port, first, trickle)
    if answered:
        assert status(answer) == 408, answer[:300]
        assert b"request_timeout" in answer and f"{deadline:g} s".encode() in answer
    else:
        assert answer == b""
    # the 408 and the end of the stream come at the deadline; one that keeps sending is cut off after the linger
    budget = deadline + SLACK + (LINGER_SECONDS if trickle else 0)
    assert deadline - 0.1 <= seconds <= budget, f"closed after {seconds:.2f} s (deadline {deadline:g} s)"
    print(f"{first[:40]!r}+{trickle!r}: closed after {seconds:.2f} s")


def test_a_crowd_of_slow_clients_does_not_starve_healthz(server: Any) -> None:
    """Twenty stalled connections (partial heads and bodies) at once: /healthz answers throughout and all
    twenty are gone after the longer deadline."""
    socks: list[socket.socket] = []
    try:
        with HealthProbe(server.port) as probe:
            for i in range(20):
                sock = connect(server.port)
                sock.sendall(b"GET /healthz HTTP/1.1\r\n" if i % 2 else POST + b"Content-Length: 50\r\n\r\n{")
                socks.append(sock)
            time.sleep(BODY_TIMEOUT + SLACK)
        for sock in socks:
            sock.settimeout(0.5)
            assert status(read_all(sock)) == 408
        assert probe.failures == [] and probe.latencies, probe.failures
        assert max(probe.latencies) < 1.0, f"/healthz took up to {max(probe.latencies):.2f} s"
    finally:
        for sock in socks:
            sock.close()


def test_a_kept_alive_connection_still_works_and_idles_out(server: Any) -> None:
    """Two requests on one connection (the deadlines re-arm per request), then the keep-alive close."""
    sock = connect(server.port)
    sock.settimeout(10)
    try:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = sock.recv(65536)
            while b"\r\n\r\n" not in answer:
                answer += sock.recv(65536)
            head, body = answer.split(b"\r\n\r\n", 1)
            length = int(
                next(v for k, v in (h.split(b": ", 1) for h in head.split(b"\r\n")[1:]) if k == b"content-length")
            )
            while len(body) < length:
                body += sock.recv(65536)
            assert status(answer) == 200 and b'"status"' in body
            time.sleep(HEADER_TIMEOUT + 0.3)  # longer than the head deadline, shorter than keep-alive (5 s)
        start = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - start < 5 + SLACK
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OPTIREC_HEADER_TIMEOUT", "0"),
        ("OPTIREC_BODY_TIMEOUT", "-1"),
        ("OPTIREC_MAX_HEADER_BYTES", "100"),
        ("OPTIREC_KEEP_ALIVE_TIMEOUT", "0"),
        ("OPTIREC_FORWARDED_ALLOW_IPS", '["*"]'),
        ("OPTIREC_FORWARDED_ALLOW_IPS", '["10.0.0.1/8"]'),
        ("OPTIREC_RECOMMEND_CACHE_BYTES", "-1"),
    ],
    ids=["header-timeout", "body-timeout", "header-bytes", "keep-alive", "trust-all", "bad-network", "cache-bytes"],
)
def test_bad_limits_refuse_to_start_naming_the_setting(
    run_python: Callable[..., subprocess.CompletedProcess[str]],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)  # run_python passes the environment on
    result = run_python("-m", "optirec", "serve", "--port", "1", timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable[len("OPTIREC_") :].lower() in lines[0], result.stderr


def _pipelined_gets(port: int, count: int, path: str) -> socket.socket:
    """A connection with a small receive buffer that sends ``count`` pipelined GETs of ``path`` at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() * count)
    return sock


def test_a_client_that_stops_reading_its_answers_is_dropped_after_the_body_timeout(server: Any) -> None:
    """Pipelined GETs of a large page, never read: the writes stall (uvicorn would wait in drain() forever);
    the server aborts the connection once writing has been paused for body_timeout, and keeps serving."""
    size = len(get(server.port, "/openapi.json"))
    count = 1 + (32 * 1024 * 1024) // size  # more answer than any socket buffer on the way holds
    sock = _pipelined_gets(server.port, count, "/openapi.json")
    try:
        with HealthProbe(server.port) as probe:
            deadline = time.monotonic() + BODY_TIMEOUT + 2 * SLACK + 5
            while "read none of its answer" not in server.log.read_text(errors="replace"):
                assert time.monotonic() < deadline, "the stalled reader was never dropped"
                time.sleep(0.1)
        received = len(read_all(sock))  # what was buffered on the way, then the abort's close
        assert received < count * size  # the answers were cut short, not delivered
        assert probe.failures == [] and probe.latencies, probe.failures
    finally:
        sock.close()


def test_a_slow_reader_that_keeps_reading_gets_every_answer(server: Any) -> None:
    """The write deadline is for a stall, not for slowness: a reader taking at most 4 KiB (its receive buffer)
    every 0.05 s, about 80 kB/s, gets every answer although the whole takes several times body_timeout."""
    size = len(get(server.port, "/openapi.json"))
    count = 1 + int(BODY_TIMEOUT * 4 / 0.05 * 4096) // size  # about 4x body_timeout at that pace
    sock = _pipelined_gets(server.port, count, "/openapi.json")
    received = b""
    start = time.monotonic()
    try:
        while received.count(b"HTTP/1.1 200") < count or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {received.count(b'HTTP/1.1 200')} of {count} answers"
            received += chunk
            time.sleep(0.05)
    finally:
        sock.close()
    assert time.monotonic() - start > BODY_TIMEOUT
