"""The trial store: one SQLite table (stdlib ``sqlite3``, WAL mode) holding the queue and every result.

Only the API process touches it; workers send progress and results over their pipe. Requests and results
are stored as JSON text (never pickles). At start-up ``recover()`` marks a trial that was running when the
server stopped as failed ("interrupted") and leaves queued ones queued, so nothing submitted is lost.

**One server per store.** Opening a file store takes an exclusive ``flock`` on ``<store>.lock`` (which holds the
owner's pid, host and start time) for as long as the store is open. A second server on the same file gets
``StoreOwnedError`` naming the store and the owner pid, so its start-up recovery can never mark the first
server's live trial "interrupted", nor its graceful stop the other's running trial. A lock rather than an
owner column: the kernel drops it when the owner exits, even by SIGKILL, so there is no stale lease to expire
and no pid liveness to guess (pids are not comparable across containers sharing a volume). ``flock`` is
advisory and local: it holds between processes of one kernel (containers on one host with a shared volume
included), not across NFS clients.

**A full disk.** A write SQLite refuses with SQLITE_FULL raises ``StoreFullError`` (the statement is rolled
back, nothing half-written); ``full_since`` says since when, and the next write that succeeds clears it.
Reads keep working on a full disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optirec.rules.errors import OptirecError

__all__ = [
    "INTERRUPTED",
    "SCHEMA_VERSION",
    "StoreError",
    "StoreFullError",
    "StoreOwnedError",
    "TrialRecord",
    "TrialStore",
    "utcnow",
]

#: The error of a trial that was running when the server stopped.
INTERRUPTED = "interrupted: the server stopped while this trial was running"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    request     TEXT NOT NULL,
    job         TEXT NOT NULL,
    result      TEXT,
    error       TEXT,
    steps_done  INTEGER NOT NULL DEFAULT 0,
    steps_total INTEGER NOT NULL,
    loss        REAL,
    worker_pid  INTEGER,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS trials_status ON trials (status, seq);
"""


class StoreError(OptirecError):
    """The trial store cannot be opened or used (names the path and the reason)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"trial store {path!r}: {reason}")


class StoreOwnedError(StoreError):
    """Another process (an optirec server) has this store open: one store is owned by one server at a time."""

    def __init__(self, path: str, owner: str, pid: int | None) -> None:
        self.owner_pid = pid
        super().__init__(
            path,
            f"it is in use by another optirec server ({owner}); two servers on one store would corrupt each "
            "other's trials: stop that server or give this one another path",
        )


class StoreFullError(StoreError):
    """SQLite could not write: the disk (or file system) holding the store is full. Nothing was changed."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "the disk holding it is full; nothing was written: free space and retry")


#: SQLite's primary result code for "database or disk is full" (sqlite3.h SQLITE_FULL).
_SQLITE_FULL = 13


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+: the extended result code
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_FULL
    return "disk is full" in str(exc)


#: The columns of optirec's ``trials`` table (a file whose table lacks one is another application's).
_COLUMNS = frozenset(
    {"seq", "id", "status", "request", "job", "result", "error", "steps_done", "steps_total", "loss"}
    | {"worker_pid", "created_at", "started_at", "finished_at"}
)
_UNWRITABLE_HINT = "; check that its folder exists and that this process may write there"


class _ForeignSchemaError(sqlite3.DatabaseError):
    """A valid SQLite file that is not an optirec trial store."""


def _check_schema(db: sqlite3.Connection) -> None:
    """Refuse a SQLite file of another application instead of adding a table to it (or failing later)."""
    tables = [
        str(row[0])
        for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    if not tables:
        return  # a new (empty) file
    if "trials" not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise _ForeignSchemaError(f"it holds other tables ({shown}) and no optirec 'trials' table")
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(trials)")}
    missing = sorted(_COLUMNS - columns)
    if missing:
        raise _ForeignSchemaError(f"its 'trials' table is not optirec's (no column {', '.join(missing[:5])})")


def _setup_reason(exc: sqlite3.Error) -> str:
    """Why a file that SQLite opened cannot serve as the store, with what to do about it."""
    text = str(exc)
    if isinstance(exc, _ForeignSchemaError):
        return f"not an optirec trial store: {text}; give a new path or move the file away"
    lowered = text.lower()
    if _is_full(exc):
        return "the disk holding it is full; free space and start again"
    if "readonly" in lowered or "unable to open" in lowered or "permission" in lowered:
        return f"cannot write it ({text}){_UNWRITABLE_HINT}"
    if "locked" in lowered:
        return f"it is locked by another process ({text}); stop that process or give another path"
    return f"not a usable SQLite database ({text}); move it away or fix the path"


def utcnow() -> str:
    """The current time as an ISO-8601 UTC string (milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class TrialRecord:
    """One row of the store, JSON columns decoded."""

    id: str
    status: str
    request: dict[str, Any]
    job: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    steps_done: int
    steps_total: int
    loss: float | None
    worker_pid: int | None
    created_at: str
    started_at: str | None
    finished_at: str | None


def _record(row: sqlite3.Row) -> TrialRecord:
    return TrialRecord(
        id=row["id"],
        status=row["status"],
        request=json.loads(row["request"]),
        job=json.loads(row["job"]),
        result=json.loads(row["result"]) if row["result"] is not None else None,
        error=row["error"],
        steps_done=row["steps_done"],
        steps_total=row["steps_total"],
        loss=row["loss"],
        worker_pid=row["worker_pid"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


class TrialStore:
    """The SQLite-backed queue and result store. Opening validates the file; errors raise StoreError."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._owner_fd: int | None = None
        #: When the last write failed for a full disk (ISO time); None once a write succeeds again.
        self.full_since: str | None = None
        memory = self.path == ":memory:"
        if not memory:
            target = Path(self.path)
            if target.is_dir():
                raise StoreError(self.path, "is a directory; give the path of a SQLite file")
            if not target.parent.exists():
                raise StoreError(self.path, f"the folder {str(target.parent)!r} does not exist")
            elif not target.parent.is_dir():
                raise StoreError(self.path, f"{str(target.parent)!r} is not a folder")
        try:
            self._db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(self.path, f"cannot open it ({exc}){_UNWRITABLE_HINT}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._setup(memory)
        except sqlite3.Error as exc:
            self._db.close()
            self._release()
            raise StoreError(self.path, _setup_reason(exc)) from None
        except StoreError:
            self._db.close()
            self._release()
            raise

    @property
    def lock_path(self) -> str | None:
        """The owner lock file next to the store (None for ':memory:')."""
        return None if self.path == ":memory:" else f"{self.path}.lock"

    def _own(self) -> None:
        """Take the exclusive owner lock, or raise StoreOwnedError naming the owner (its pid, host, start)."""
        lock = self.lock_path
        assert lock is not None
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            reason = f"cannot create its lock file {lock!r} ({exc.strerror}){_UNWRITABLE_HINT}"
            raise StoreError(self.path, reason) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            pid_text = owner.split()[1] if owner.startswith("pid ") and len(owner.split()) > 1 else ""
            pid = int(pid_text) if pid_text.isdigit() else None
            raise StoreOwnedError(self.path, owner or "pid unknown", pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since {utcnow()}\n".encode(), 0)
        self._owner_fd = fd

    def _release(self) -> None:
        fd, self._owner_fd = self._owner_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor drops the flock

    def _setup(self, memory: bool) -> None:
        db = self._db
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"written by a newer optirec (schema {version}; this one reads {SCHEMA_VERSION})"
            )
        _check_schema(db)  # before any write: a foreign file stays as it was
        if not memory:
            self._own()  # before the first write and before recovery: one server per store
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.DatabaseError(f"cannot switch to WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- queries -----------------------------------------------------------------------------------------

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> TrialRecord | None:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return _record(row) if row is not None else None

    def get(self, trial_id: str) -> TrialRecord | None:
        """The trial, or None."""
        return self._one("SELECT * FROM trials WHERE id = ?", (trial_id,))

    def list(self, limit: int = 50, status: str | None = None) -> list[TrialRecord]:
        """Recent trials, newest first."""
        with self._lock:
            if status is None:
                rows = self._db.execute("SELECT * FROM trials ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM trials WHERE status = ? ORDER BY seq DESC LIMIT ?", (status, limit)
                ).fetchall()
        return [_record(r) for r in rows]

    def count(self, status: str) -> int:
        """How many trials are in ``status``."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM trials WHERE status = ?", (status,)).fetchone()[0])

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self._lock:
                self._db.execute("SELECT 1 FROM trials LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    # -- transitions -------------------------------------------------------------------------------------

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> Sequence[sqlite3.Row]:
        """Run one write statement to completion (its rows, for RETURNING); StoreFullError on a full disk.

        Caller holds ``self._lock``. Every statement is its own transaction (autocommit), so a refused write
        leaves the row as it was.
        """
        try:
            rows: Sequence[sqlite3.Row] = self._db.execute(sql, params).fetchall()  # the commit happens here
        except sqlite3.OperationalError as exc:
            if _is_full(exc):
                if self.full_since is None:
                    self.full_since = utcnow()
                raise StoreFullError(self.path) from None
            raise
        self.full_since = None
        return rows

    def _changes(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one write statement; the number of rows it changed. Caller holds ``self._lock``."""
        before = self._db.total_changes
        self._write(sql, params)
        return self._db.total_changes - before

    def writable(self) -> bool:
        """True when a write reaches the disk now (a real, tiny write: the schema version, unchanged)."""
        try:
            with self._lock:
                self._write(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (StoreFullError, sqlite3.Error):
            return False
        return True

    def create(self, trial_id: str, request: dict[str, Any], job: dict[str, Any], steps_total: int) -> TrialRecord:
        """Queue a new trial (StoreFullError on a full disk: then nothing was queued)."""
        with self._lock:
            self._write(
                "INSERT INTO trials (id, status, request, job, steps_total, created_at) "
                "VALUES (?, 'queued', ?, ?, ?, ?)",
                (trial_id, json.dumps(request), json.dumps(job), steps_total, utcnow()),
            )
        record = self.get(trial_id)
        assert record is not None
        return record

    def claim_next(self) -> TrialRecord | None:
        """The oldest queued trial, now marked running; None when the queue is empty."""
        with self._lock:
            rows = self._write(
                "UPDATE trials SET status = 'running', started_at = ? "
                "WHERE seq = (SELECT seq FROM trials WHERE status = 'queued' ORDER BY seq LIMIT 1) RETURNING *",
                (utcnow(),),
            )
        return _record(rows[0]) if rows else None

    def set_worker(self, trial_id: str, pid: int | None) -> None:
        """Record the worker process running the trial."""
        with self._lock:
            self._write("UPDATE trials SET worker_pid = ? WHERE id = ?", (pid, trial_id))

    def progress(self, trial_id: str, steps_done: int, steps_total: int, loss: float | None) -> None:
        """Record progress of a running trial."""
        with self._lock:
            self._write(
                "UPDATE trials SET steps_done = ?, steps_total = ?, loss = ? WHERE id = ? AND status = 'running'",
                (steps_done, steps_total, loss, trial_id),
            )

    def finish(
        self, trial_id: str, status: str, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> bool:
        """Move a queued/running trial to a final status; False when it had already finished (e.g. cancelled).

        A result that arrives after a cancellation is still attached to the cancelled trial.
        """
        encoded = json.dumps(result) if result is not None else None
        with self._lock:
            changed = (
                self._changes(
                    "UPDATE trials SET status = ?, result = ?, error = ?, finished_at = ?, worker_pid = NULL "
                    "WHERE id = ? AND status IN ('queued', 'running')",
                    (status, encoded, error, utcnow(), trial_id),
                )
                > 0
            )
            if not changed and encoded is not None:
                self._write(
                    "UPDATE trials SET result = ?, worker_pid = NULL WHERE id = ? AND result IS NULL",
                    (encoded, trial_id),
                )
        return changed

    def fail_running(self, error: str) -> int:
        """Mark every running trial failed with ``error``; the number changed."""
        with self._lock:
            return self._changes(
                "UPDATE trials SET status = 'failed', error = ?, finished_at = ?, worker_pid = NULL "
                "WHERE status = 'running'",
                (error, utcnow()),
            )

    def recover(self) -> tuple[int, int]:
        """At start-up: running trials -> failed ("interrupted"); returns (interrupted, still queued)."""
        return self.fail_running(INTERRUPTED), self.count("queued")

    def close(self) -> None:
        """Close the connection and give up the owner lock (idempotent)."""
        with self._lock:
            self._db.close()
            self._release()
