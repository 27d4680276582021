"""Where a trial runs: the backend interface of the dispatcher (runner.py), and its worker-process backend.

A backend turns one claimed trial into a :class:`TrialRun`, whose :meth:`TrialRun.next` yields the same JSON
messages a worker process writes (worker.py: ``progress``, ``result``, ``error``), plus ``lost`` when whatever
ran the trial died under it (with the reason). The dispatcher copies them into the store; it neither knows
nor cares whether a local process or a Ray cluster ran the trial.

    ProcessBackend   one worker process per slot on this machine (the default; nothing else to install)
    RayBackend       (ray_backend.py) tasks on a Ray cluster, through one bridge process

A worker that dies mid-trial (segfault, OOM kill, ``kill -9``) fails that trial with the exit code or signal;
the slot starts a fresh worker for the next trial. With a memory limit the run reads its worker's resident
memory from /proc every MEMORY_POLL s (from this process: a worker stuck in C code cannot dodge it) and kills a
worker that passes it; that trial fails with a reason naming the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from abc import ABC, abstractmethod
from typing import Any

from .devices import cuda_device_count
from .store import TrialRecord
from .worker import PARENT_ENV

__all__ = [
    "CANCEL_GRACE",
    "LINE_LIMIT",
    "MEMORY_POLL",
    "STARTUP_GRACE",
    "ProcessBackend",
    "TrialBackend",
    "TrialRun",
    "exit_reason",
    "memory_reason",
    "resident_mb",
]

#: Seconds a worker gets, beyond the trial's own budget, to start (import torch) and report.
STARTUP_GRACE = 120.0
#: Seconds a running trial gets to stop after a cancel before its worker is killed.
CANCEL_GRACE = 10.0
#: Longest line a worker may send (a race's result with its curves).
LINE_LIMIT = 64 * 1024 * 1024
#: Seconds between two reads of a running worker's resident memory (under a memory limit).
MEMORY_POLL = 0.05
log = logging.getLogger("optirec.service.trials")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def exit_reason(returncode: int | None) -> str:
    """A worker's exit status in words."""
    if returncode is None:
        return "the trial worker stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory, or killed by an operator)" if -returncode == signal.SIGKILL else ""
        return f"the trial worker was killed by {name}{hint}"
    return f"the trial worker exited unexpectedly with code {returncode}"


def memory_reason(rss_mb: float, limit_mb: int) -> str:
    """The error of a trial whose worker passed the server's memory limit."""
    return (
        f"the trial ran out of memory: its worker process held {rss_mb:.0f} MiB, over the server's limit of "
        f"{limit_mb} MiB (trial_max_memory_mb); try a smaller size or workload"
    )


def resident_mb(pid: int) -> float | None:
    """A process's resident memory in MiB (Linux /proc), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * _PAGE_SIZE / 2**20


class TrialRun(ABC):
    """One trial being run by a backend."""

    #: The pid of the process running the trial, where there is one on this machine (stored with the trial).
    pid: int | None = None
    #: Seconds the trial may take from now, beyond the server's own budget (start-up, imports, scheduling).
    grace: float = STARTUP_GRACE

    @abstractmethod
    async def next(self, timeout: float) -> dict[str, Any]:
        """The trial's next message (``progress``, ``result``, ``error`` or ``lost`` with a ``message``).

        Raises TimeoutError after ``timeout`` s without one, ValueError for a message too large to take."""

    @abstractmethod
    def cancel(self) -> None:
        """Ask the trial to stop; it is stopped by force within CANCEL_GRACE s if it does not."""

    @abstractmethod
    async def abort(self) -> None:
        """Stop the trial now (it ran past its time); whatever ran it may be thrown away."""

    async def close(self) -> None:  # noqa: B027 - most runs have nothing to release
        """The trial has ended (its end is recorded); release what it held."""


class TrialBackend(ABC):
    """A place trials run. All methods run on the event loop's thread."""

    name: str = ""

    async def start(self) -> None:  # noqa: B027 - the process backend starts its workers on first use
        """Get ready to run trials (called once, before any ``open``)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop every run and whatever runs them."""

    def check(self) -> str:
        """For /readyz: "ok", or "failed: why" while no trial can be started."""
        return "ok"

    async def cuda_devices(self) -> tuple[int | None, str]:
        """CUDA devices trials can use (0: none; None: cannot tell) and, for none, where they were looked for."""
        count = await asyncio.to_thread(cuda_device_count)  # a child process, once per server (devices.py)
        return count, "this server's trial workers have no CUDA device (torch.cuda.is_available() is false here)"

    async def wait_available(self) -> None:  # noqa: B027 - the process backend is always available
        """Return once a trial can be started (the Ray backend waits for its cluster)."""

    @abstractmethod
    async def open(self, slot: int, record: TrialRecord) -> TrialRun:
        """Start ``record``'s job on behalf of ``slot``; OSError when that cannot even begin."""


class _ProcessRun(TrialRun):
    def __init__(self, backend: ProcessBackend, slot: int, proc: asyncio.subprocess.Process, fresh: bool) -> None:
        self.backend = backend
        self.slot = slot
        self.proc = proc
        self.pid = proc.pid
        self.grace = STARTUP_GRACE * (2 if fresh else 1)
        self.trial_id = ""
        self.over: list[float] = []  # the worker's resident MiB when the memory watch killed it
        self.watch: asyncio.Task[None] | None = None
        self.ended = False

    async def next(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=max(0.0, timeout))
            if not line:  # the worker died
                returncode = await self.proc.wait()
                self.backend.forget(self.slot, self.proc)
                limit = self.backend.memory_limit_mb
                reason = memory_reason(self.over[0], limit) if self.over else exit_reason(returncode)
                return {"type": "lost", "id": self.trial_id, "message": reason}
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("id") == self.trial_id:
                return message

    def cancel(self) -> None:
        _send(self.proc, {"type": "cancel", "id": self.trial_id})
        asyncio.get_running_loop().call_later(CANCEL_GRACE, self._kill_if_still)

    def _kill_if_still(self) -> None:
        if not self.ended and self.proc.returncode is None:
            log.warning("trial %s: the worker ignored the cancel for %g s; killing it", self.trial_id, CANCEL_GRACE)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def abort(self) -> None:
        await self.backend.drop(self.slot)

    async def close(self) -> None:
        self.ended = True
        if self.watch is not None:
            self.watch.cancel()

    async def watch_memory(self, limit_mb: int) -> None:
        """Kill the worker once its resident memory passes ``limit_mb`` (read from /proc every MEMORY_POLL s)."""
        proc = self.proc
        while proc.returncode is None:
            rss = resident_mb(proc.pid)
            if rss is None:  # no /proc (warned at start-up), or the worker has just exited
                return
            if rss > limit_mb:
                self.over.append(rss)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                return
            await asyncio.sleep(MEMORY_POLL)


def _send(proc: asyncio.subprocess.Process, message: dict[str, Any]) -> bool:
    if proc.stdin is None or proc.stdin.is_closing():
        return False
    try:
        proc.stdin.write((json.dumps(message) + "\n").encode())
    except (BrokenPipeError, ConnectionResetError, RuntimeError):
        return False
    return True


class ProcessBackend(TrialBackend):
    """One worker process per slot (``python -m optirec.service.trials.worker``), started on first use and kept
    warm for the slot's next trial; the job goes over its stdin as one JSON line."""

    name = "process"

    def __init__(self, slots: int, memory_limit_mb: int) -> None:
        self.memory_limit_mb = memory_limit_mb
        self._procs: list[asyncio.subprocess.Process | None] = [None] * slots

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = {**os.environ, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "optirec.service.trials.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=LINE_LIMIT,
        )

    def forget(self, slot: int, proc: asyncio.subprocess.Process) -> None:
        """``proc`` has exited: the slot's next trial starts a fresh worker."""
        if self._procs[slot] is proc:
            self._procs[slot] = None

    async def drop(self, slot: int) -> None:
        """Kill the slot's worker (if any) and wait for it."""
        proc, self._procs[slot] = self._procs[slot], None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()

    async def stop(self) -> None:
        for slot in range(len(self._procs)):
            await self.drop(slot)

    async def open(self, slot: int, record: TrialRecord) -> TrialRun:
        proc = self._procs[slot]
        fresh = proc is None or proc.returncode is not None
        if fresh:
            proc = self._procs[slot] = await self._spawn()
        assert proc is not None and proc.stdin is not None
        run = _ProcessRun(self, slot, proc, fresh)
        run.trial_id = record.id
        if _send(proc, {"type": "job", "id": record.id, "job": record.job}):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await proc.stdin.drain()
        if self.memory_limit_mb:
            run.watch = asyncio.create_task(run.watch_memory(self.memory_limit_mb))
        return run
