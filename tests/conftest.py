"""Shared fixtures of the optirec test suite.

pytest runs with ``--import-mode=importlib`` and the test folders have no ``__init__.py``, so test
modules cannot import each other: whatever several files need lives here, as fixtures.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from optirec.rules import DATA_DIR, Rulebook, default_rulebook

#: The repository root (tests/ sits directly under it).
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root: pyproject.toml, rules/, service/, optirec/."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def book() -> Rulebook:
    """The bundled knowledge base, as the engine uses it."""
    return default_rulebook()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled ``rules/data`` folder, for tests that break files on purpose."""
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


@pytest.fixture(scope="session")
def run_python(repo_root: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``sys.executable`` with arguments in a fresh process (cwd = repository root) and return the result.

    ``OPTIREC_RULES_DIR`` is removed from the environment so that the child uses the bundled rulebook.
    """

    def run(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "OPTIREC_RULES_DIR"}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return subprocess.run(
            [sys.executable, *args],
            cwd=repo_root,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


class LiveServer:
    """``python -m optirec serve`` in a subprocess on a free loopback port; stdout and stderr go to ``log``."""

    def __init__(self, repo_root: Path, log: Path, env: dict[str, str]) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        environ = {k: v for k, v in os.environ.items() if not k.startswith("OPTIREC_")}
        environ.update(env)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "optirec", "serve", "--port", str(self.port)],
                cwd=REPO_ROOT,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def _wait_until_up(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"the server exited with {self.proc.returncode}: {self.output()[-2000:]}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not start within {timeout:g} s"
            time.sleep(0.1)

    def output(self) -> str:
        """Everything the server process has written to stdout and stderr so far."""
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    @functools.cached_property
    def client(self) -> Any:
        """An ``OptirecClient`` for this server (closed by :meth:`stop`)."""
        from optirec.service.client import OptirecClient

        return OptirecClient(self.url, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if "client" in self.__dict__:
            self.__dict__.pop("client").close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _servers(folder: Path) -> Iterator[Callable[..., LiveServer]]:
    """A factory of real servers, each with its own store and log in ``folder``; all killed when it ends."""
    started: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        n = len(started)
        settings = {
            "OPTIREC_TRIAL_STORE": str(folder / f"live-{n}.sqlite3"),
            "OPTIREC_TRIAL_CONCURRENCY": "0",
            "OPTIREC_LOG_LEVEL": "warning",
            **env,
        }
        server = LiveServer(REPO_ROOT, folder / f"live-{n}.log", settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers: ``live_server(OPTIREC_API_KEY="...")``; each gets its own store and log in tmp_path.

    Defaults: ``OPTIREC_TRIAL_CONCURRENCY=0`` (trials are queued, never run) and ``OPTIREC_LOG_LEVEL=warning``;
    keyword arguments override them. Every server is killed at the end of the test.
    """
    yield from _servers(tmp_path)


@pytest.fixture(scope="module")
def module_live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LiveServer]]:
    """:func:`live_server` for a module-scoped fixture: its servers live until the module's tests are done."""
    yield from _servers(tmp_path_factory.mktemp("live"))


@pytest.fixture
def serve(repo_root: Path) -> Callable[..., tuple[subprocess.CompletedProcess[str], float]]:
    """``serve(store, **env)``: one ``optirec serve`` on ``store`` that is expected to refuse to start, as
    (its result, the seconds it took); ``env`` adds settings (``OPTIREC_TRIAL_CONCURRENCY="1"``, ...)."""
    import socket

    def run(store: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIREC_")}
        env.update({"OPTIREC_TRIAL_STORE": str(store), "PYTHONDONTWRITEBYTECODE": "1", **extra})
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "optirec", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=repo_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,  # a server that starts after all would hang here: the test fails instead of blocking
            check=False,
        )
        return result, time.monotonic() - started

    return run
