"""Fault: the disk holding the trial store fills up while a trial runs, then space returns (issue 22, item 3).

For real: the store lives on a small tmpfs mounted for the test (root or CAP_SYS_ADMIN needed; skipped with
the reason otherwise), filled with a file until the kernel answers ENOSPC, then freed. The server must answer
507 to new trials while full, keep its dispatcher alive, keep the running trial's result until the store takes
it, and resume the queue once space returns, with no restart and nothing submitted lost.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from optirec.service.app import create_app
from optirec.service.settings import Settings

pytestmark = pytest.mark.slow

FINISHED = {"succeeded", "failed", "cancelled"}
#: The small file system: room for the store, its WAL and shared memory, not much more.
DISK_SIZE = "8m"
#: A trial that runs for this many seconds whatever the machine's speed (the budget stops it, with a result).
TRIAL_SECONDS = 4.0


def _mount(target: Path) -> str | None:
    """Mount a DISK_SIZE tmpfs on ``target``; None when done, else why it cannot be done here."""
    if shutil.which("mount") is None:
        return "no mount command on this machine"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0755", "optirec-disk-full", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0:
        return None
    return f"cannot mount a {DISK_SIZE} tmpfs (needs root or CAP_SYS_ADMIN): {result.stderr.strip()[:200]}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted small file system, unmounted after the test."""
    target = tmp_path / "disk"
    target.mkdir()
    why = _mount(target)
    if why is not None:
        pytest.skip(why)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the file system has no byte left (ENOSPC); the file's path."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    with pytest.raises(OSError) as info, (disk / "probe").open("wb", buffering=0) as probe:
        probe.write(b"\0" * 4096)
    assert info.value.errno == errno.ENOSPC
    return filler


def _reset_wal(store: Path) -> None:
    """Checkpoint the store and truncate its WAL to 0 bytes, so that the next write needs new disk space
    (otherwise SQLite may reuse WAL space it already has and the disk would look full only later)."""
    with contextlib.closing(sqlite3.connect(store, timeout=5)) as db:
        for _ in range(50):
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0:
                return
            time.sleep(0.05)
    raise AssertionError("could not checkpoint the store's WAL")


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.1)


def _trial(client: TestClient, trial_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/trials/{trial_id}").json()
    return body


def test_a_full_disk_refuses_new_trials_with_507_and_everything_resumes_once_space_returns(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = small_disk / "trials.sqlite3"
    settings = Settings(trial_store=str(store), trial_concurrency=1, trial_max_seconds=TRIAL_SECONDS)
    # a CNN step takes milliseconds: 2000 of them outlast TRIAL_SECONDS on any machine, so the trial is still
    # running when the disk fills and ends (with a result, budget_exhausted here) while it is full
    long = {"profile": {"architecture": "resnet"}, "workload": "cnn", "device": "cpu", "steps": 2000, "size": 2}
    short = {**long, "steps": 5, "size": 1}
    caplog.set_level(logging.WARNING, logger="optirec.service")
    with TestClient(create_app(settings)) as client:
        running_id = client.post("/trials", json=long).json()["id"]
        queued_id = client.post("/trials", json=short).json()["id"]
        _until(lambda: _trial(client, running_id)["progress"]["steps_done"] > 0, 60, "the first trial makes progress")

        _reset_wal(store)
        filler = _fill(small_disk)
        steps_at_fill = _trial(client, running_id)["progress"]["steps_done"]

        # while full: new trials are a clear 507, reads work, readiness says why, the dispatcher lives
        refused = client.post("/trials", json=short)
        assert refused.status_code == 507, refused.text
        error = refused.json()["error"]
        assert error["code"] == "insufficient_storage" and "disk" in error["message"] and "full" in error["message"]
        assert refused.headers["retry-after"].isdigit()
        assert str(store) not in refused.text  # the path goes to the log, not to clients
        ready = client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert "full" in checks["trial_store"] and checks["trial_dispatcher"] == "ok"
        assert {t["id"] for t in client.get("/trials").json()} == {running_id, queued_id}
        assert client.post("/recommend", json={"architecture": "resnet"}).status_code == 200

        # the running trial ends while the disk is full: its end cannot be stored yet, and is kept
        def end_pending() -> bool:
            return any(f"cannot record the end of trial {running_id}" in r.getMessage() for r in caplog.records)

        _until(end_pending, TRIAL_SECONDS + 60, "the dispatcher tries to record the trial's end")
        assert _trial(client, running_id)["status"] == "running"  # not lost, not failed: waiting for space
        assert client.get("/readyz").json()["checks"]["trial_dispatcher"] == "ok"
        assert _trial(client, queued_id)["status"] == "queued"

        filler.unlink()  # space returns; no restart

        done = _until(
            lambda: (t := _trial(client, running_id))["status"] in FINISHED and t, 30, "the kept result is stored"
        )
        assert done["status"] == "succeeded", done["error"]
        assert done["result"] is not None and done["result"]["status"] in ("budget_exhausted", "succeeded")
        # the last progress the full disk refused was written before the end
        assert steps_at_fill < done["progress"]["steps_done"] <= done["result"]["steps_done"]
        after = _until(
            lambda: (t := _trial(client, queued_id))["status"] in FINISHED and t, 60, "the queued trial runs"
        )
        assert after["status"] == "succeeded", after["error"]
        _until(lambda: client.get("/readyz").status_code == 200, 10, "ready again")
        again = client.post("/trials", json=short)
        assert again.status_code == 202, again.text
        listed = {t["id"]: t["status"] for t in client.get("/trials").json()}
        assert set(listed) == {running_id, queued_id, again.json()["id"]}  # the refused one was never queued
