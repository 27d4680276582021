"""The trial dispatcher of the API process: a bounded queue in the store, run by a trial backend.

``TrialRunner.start()`` (from the app's lifespan) recovers the store and starts ``trial_concurrency``
slot tasks. Each slot claims the oldest queued trial, hands it to the backend (backends.py): by default its
own worker process (``python -m optirec.service.trials.worker``, started on first use and kept warm for the
next trial), or with ``trial_backend=ray`` a task on a Ray cluster (ray_backend.py); it copies progress and
the result into the store. Nothing here blocks the event loop for long: the training happens elsewhere, and
the store's writes are single-row SQLite statements.

Whatever ran a trial dying mid-trial (a worker's segfault, OOM kill or ``kill -9``; a Ray worker or node
lost) fails that trial with the reason; the slot goes on with the next trial and the server keeps serving.
With a memory limit (``trial_max_memory_mb``, by default derived from the machine: envelope.memory_limit_mb),
a worker process that passes it is killed and its trial fails naming the limit (POST /trials refuses up front
a trial whose estimated peak is over it). While the backend cannot start trials (the Ray head is gone) the
slots claim nothing: queued trials stay queued and run once it returns.

A store that cannot be written (a full disk: ``StoreFullError``, or any other SQLite error) never stops the
dispatcher. A progress update that cannot be stored is skipped (the next one carries the same numbers); the
end of a trial (its result, or why it failed) is kept in memory and written again every STORE_RETRY s until
the store takes it, so a trial that finishes on a full disk keeps its result and reads succeeded once space
returns; meanwhile its slot claims nothing else. A claim that fails waits STORE_RETRY s and tries again, so
the queue resumes by itself once space returns: nothing submitted is lost and no restart is needed. While the
disk is full, POST /trials answers 507 (nothing is queued) and /readyz says the store cannot be written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optirec.rules.errors import OptirecError

from ..settings import Settings
from .backends import CANCEL_GRACE, ProcessBackend, TrialBackend, TrialRun, memory_reason, resident_mb
from .envelope import memory_limit_mb
from .models import FINISHED
from .ray_backend import RayBackend
from .store import INTERRUPTED, StoreError, TrialRecord, TrialStore

__all__ = ["CANCEL_GRACE", "QueueFullError", "TrialFinishedError", "TrialRunner", "memory_reason", "resident_mb"]

log = logging.getLogger("optirec.service.trials")

#: Seconds between two tries of a store write that failed (a full disk) in the dispatcher.
STORE_RETRY = 1.0
#: Seconds between two log lines about the same store trouble.
STORE_LOG_EVERY = 30.0


class QueueFullError(OptirecError):
    """The queue holds ``trial_queue_size`` trials already."""

    def __init__(self, size: int, retry_after: int) -> None:
        self.size = size
        self.retry_after = retry_after
        super().__init__(f"the trial queue is full ({size} queued); retry in {retry_after} s")


class TrialFinishedError(OptirecError):
    """A finished trial cannot be cancelled."""

    def __init__(self, trial_id: str, status: str) -> None:
        self.trial_id = trial_id
        self.status = status
        super().__init__(f"trial {trial_id!r} has already finished ({status}); only queued or running trials cancel")


@dataclass
class _Slot:
    index: int
    run: TrialRun | None = None
    trial_id: str | None = None


class TrialRunner:
    """Queue, dispatch, cancel and watch trials. All methods run on the event loop's thread."""

    def __init__(
        self,
        store: TrialStore,
        settings: Settings,
        on_finish: Callable[[str], None] | None = None,
        backend: TrialBackend | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._on_finish = on_finish
        self._slots = [_Slot(i) for i in range(settings.trial_concurrency)]
        #: The most resident MiB a worker may hold while it runs a trial (0: no limit).
        #: On Ray only an explicit trial_max_memory_mb counts: this machine's memory says nothing of the cluster's.
        local = settings.trial_backend == "process" or settings.trial_max_memory_mb is not None
        self.memory_limit_mb = (
            memory_limit_mb(settings.trial_max_memory_mb, settings.trial_memory_fraction, settings.trial_concurrency)
            if local
            else 0
        )
        #: Where the trials run (settings.trial_backend).
        self.backend = backend or _backend(settings, self.memory_limit_mb)
        self._tasks: list[asyncio.Task[None]] = []
        self._work = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._started = False
        self._stopping = False
        self._last_store_log: dict[str, float] = {}  # kind of store trouble -> when it was last logged

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover the store (running -> failed "interrupted"; queued stay queued) and start the slots."""
        if self.memory_limit_mb and resident_mb(os.getpid()) is None:
            log.warning("a trial memory limit is set, but this platform has no /proc: the limit is not enforced")
        interrupted, queued = self.store.recover()
        if interrupted or queued:
            log.warning("trial store: %d interrupted trial(s) marked failed, %d queued resumed", interrupted, queued)
        await self.backend.start()
        self._tasks = [asyncio.create_task(self._slot_loop(s), name=f"trial-slot-{s.index}") for s in self._slots]
        self._work.set()
        self._started = True

    async def stop(self) -> None:
        """Stop the slots and their workers; a trial still running is marked failed ("interrupted")."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backend.stop()
        try:
            self.store.fail_running(INTERRUPTED)
        except (StoreError, sqlite3.Error) as exc:  # the next start-up's recovery marks it instead
            log.warning("trial store: cannot mark the running trial interrupted at shutdown: %s", exc)
        for trial_id in list(self._waiters):
            self._notify(trial_id)

    def alive(self) -> bool:
        """True while the dispatcher runs (every slot task is alive)."""
        return self._started and not self._stopping and not any(t.done() for t in self._tasks)

    # -- the API's operations ----------------------------------------------------------------------------

    def submit(self, request: dict[str, Any], job: dict[str, Any], steps_total: int) -> TrialRecord:
        """Queue a trial; raises QueueFullError when ``trial_queue_size`` trials wait already."""
        if self.store.count("queued") >= self.settings.trial_queue_size:
            raise QueueFullError(self.settings.trial_queue_size, self.settings.trial_retry_after)
        record = self.store.create(uuid.uuid4().hex, request, job, steps_total)
        self._work.set()
        return record

    def cancel(self, trial_id: str) -> TrialRecord | None:
        """Cancel a queued or running trial; None when unknown, TrialFinishedError when finished."""
        record = self.store.get(trial_id)
        if record is None:
            return None
        if record.status in FINISHED:
            raise TrialFinishedError(trial_id, record.status)
        if self.store.finish(trial_id, "cancelled"):
            self._finished("cancelled")
        for slot in self._slots:
            if slot.trial_id == trial_id and slot.run is not None:
                slot.run.cancel()  # stopped by force after CANCEL_GRACE s
        self._notify(trial_id)
        return self.store.get(trial_id)

    def watch(self, trial_id: str) -> asyncio.Future[None]:
        """A future resolved at the trial's next status or progress change (pass it to ``wait``)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(trial_id, set()).add(future)
        return future

    async def wait(self, trial_id: str, future: asyncio.Future[None], timeout: float) -> bool:
        """Wait for a ``watch`` future at most ``timeout`` s; True when the trial changed."""
        try:
            if future.done():
                return True
            if timeout <= 0:
                return False
            done, _ = await asyncio.wait({future}, timeout=timeout)
            return bool(done)
        finally:
            waiters = self._waiters.get(trial_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[trial_id]
            if not future.done():
                future.cancel()

    async def wait_change(self, trial_id: str, timeout: float) -> bool:
        """Wait until the trial's status or progress changes, at most ``timeout`` s; True when it changed."""
        return await self.wait(trial_id, self.watch(trial_id), timeout)

    # -- internals ---------------------------------------------------------------------------------------

    def _notify(self, trial_id: str) -> None:
        for future in self._waiters.pop(trial_id, set()):
            if not future.done():
                future.set_result(None)

    def _finished(self, status: str) -> None:
        if self._on_finish is not None:
            self._on_finish(status)

    def _finish(
        self, trial_id: str, status: str, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        if self.store.finish(trial_id, status, result=result, error=error):
            self._finished(status)
        self._notify(trial_id)

    async def _slot_loop(self, slot: _Slot) -> None:
        while True:
            await self.backend.wait_available()  # a Ray head that is gone: queued trials stay queued
            try:
                record = self.store.claim_next()
            except (StoreError, sqlite3.Error) as exc:  # a full disk: wait and claim again
                self._store_trouble("claim", "cannot claim the next queued trial", exc)
                await asyncio.sleep(STORE_RETRY)
                continue
            if record is None:
                self._work.clear()
                await self._work.wait()
                continue
            self._notify(record.id)
            try:
                await self._run(slot, record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in the dispatcher must not stop it
                log.exception("trial %s: dispatcher error", record.id)
                if slot.run is not None:
                    await slot.run.abort()
                reason = f"internal error while running the trial ({type(exc).__name__})"
                await self._finish_durably(record.id, "failed", error=reason)
            finally:
                if slot.run is not None:
                    await slot.run.close()
                slot.run = None
                slot.trial_id = None

    def _store_trouble(self, kind: str, what: str, exc: BaseException) -> None:
        """Log a store write the dispatcher could not make (each ``kind`` at most once per STORE_LOG_EVERY s)."""
        now = asyncio.get_running_loop().time()
        if now - self._last_store_log.get(kind, -math.inf) >= STORE_LOG_EVERY:
            self._last_store_log[kind] = now
            log.warning("trial store: %s: %s", what, exc)

    def _record_quietly(self, write: Callable[..., object], *args: Any) -> bool:
        """A store write that may be skipped (progress, the worker's pid): False (and logged) when it failed."""
        try:
            write(*args)
        except (StoreError, sqlite3.Error) as exc:
            self._store_trouble("progress", "skipped a progress update", exc)
            return False
        return True

    async def _finish_durably(
        self,
        trial_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        progress: tuple[int, int, float | None] | None = None,
    ) -> None:
        """``_finish``, tried again every STORE_RETRY s until the store takes it (the result waits in memory);
        ``progress`` is the last progress update the store missed, written first."""
        while True:
            try:
                if progress is not None:
                    self.store.progress(trial_id, *progress)
                    progress = None
                self._finish(trial_id, status, result=result, error=error)
                return
            except (StoreError, sqlite3.Error) as exc:
                what = f"cannot record the end of trial {trial_id} ({status}); retrying"
                self._store_trouble(f"end {trial_id}", what, exc)
                await asyncio.sleep(STORE_RETRY)

    async def _run(self, slot: _Slot, record: TrialRecord) -> None:
        try:
            run = await self.backend.open(slot.index, record)
        except OSError as exc:
            reason = f"cannot start a trial worker: {exc.strerror or exc}"
            await self._finish_durably(record.id, "failed", error=reason)
            return
        slot.run, slot.trial_id = run, record.id
        if run.pid is not None:
            self._record_quietly(self.store.set_worker, record.id, run.pid)
        self._notify(record.id)
        limit = self.settings.trial_max_seconds + run.grace
        await self._follow(record, run, asyncio.get_running_loop().time() + limit, limit)

    async def _follow(self, record: TrialRecord, run: TrialRun, deadline: float, limit: float) -> None:
        """Copy the run's messages about ``record`` into the store until the trial ends."""
        loop = asyncio.get_running_loop()
        missed: tuple[int, int, float | None] | None = None  # the last progress the store could not take
        while True:
            try:
                message = await run.next(max(0.0, deadline - loop.time()))
            except TimeoutError:
                await run.abort()
                reason = f"the trial did not finish within the server's {limit:g} s"
                await self._finish_durably(record.id, "failed", error=reason)
                return
            except ValueError:  # a line over LINE_LIMIT
                await run.abort()
                await self._finish_durably(record.id, "failed", error="the trial's result was too large to store")
                return
            kind = message.get("type")
            if kind == "progress":
                loss = message.get("loss")
                done, total = int(message.get("steps_done", 0)), int(message.get("steps_total", record.steps_total))
                value = float(loss) if isinstance(loss, int | float) else None
                stored = self._record_quietly(self.store.progress, record.id, done, total, value)
                missed = None if stored else (done, total, value)
                self._notify(record.id)
            elif kind == "result":
                result = message.get("result")
                status = "cancelled" if message.get("cancelled") else "succeeded"
                kept = result if isinstance(result, dict) else None
                await self._finish_durably(record.id, status, result=kept, progress=missed)
                return
            elif kind in ("error", "lost"):
                why = str(message.get("message") or "the trial failed")
                if kind == "lost":
                    log.warning("trial %s: %s", record.id, why)
                await self._finish_durably(record.id, "failed", error=why, progress=missed)
                return


def _backend(settings: Settings, memory_limit: int) -> TrialBackend:
    if settings.trial_backend == "ray":
        return RayBackend(settings)
    return ProcessBackend(settings.trial_concurrency, memory_limit)
