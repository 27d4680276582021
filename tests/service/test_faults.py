"""Faults: a trial worker over the server's memory limit, and a trial store that is unwritable or corrupt.

A worker that crashes (SIGKILL) is in test_trials.py and a server killed mid-trial in
test_trials_durability.py; this file adds the memory limit (``trial_max_memory_mb``, enforced by the API
process reading the worker's resident memory) and the start-up refusals of a bad store, both through
``create_app``'s lifespan and through the real ``optirec serve`` command (exit 2, one line, no traceback,
within seconds: never a hang).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from optirec.service.app import create_app
from optirec.service.settings import Settings
from optirec.service.trials.store import StoreError, TrialStore

FINISHED = {"succeeded", "failed", "cancelled"}
#: A limit below the resident memory of any worker that has imported torch (~230 MiB on CPU).
TINY_MB = 160


def _wait(client: TestClient, trial_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/trials/{trial_id}", params={"wait": 2}).json()
        if body["status"] in FINISHED:
            return body
        assert time.monotonic() < deadline, f"trial still {body['status']} after {timeout} s"


# -- a worker over the memory limit -------------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    # POST /trials refuses a trial whose estimate is over the limit (tests/faults/test_trial_memory.py); here the
    # estimate is made wrong on purpose (no worker baseline), so that the trial starts and the kill backstop runs
    monkeypatch.setattr("optirec.service.trials.envelope.WORKER_BASE_MB", 0.0)
    settings = Settings(trial_store=str(tmp_path / "t.sqlite3"), trial_concurrency=1, trial_max_memory_mb=TINY_MB)
    with TestClient(create_app(settings)) as client:
        yield client


def test_a_worker_over_the_memory_limit_fails_its_trial_and_the_server_runs_the_next(limited: TestClient) -> None:
    trial = {"profile": {"architecture": "mlp"}, "workload": "mlp", "device": "cpu", "size": 8, "steps": 30}
    first = limited.post("/trials", json=trial).json()["id"]
    second = limited.post("/trials", json={**trial, "size": 1, "steps": 3}).json()["id"]
    failed = _wait(limited, first)
    assert failed["status"] == "failed"
    error = failed["error"]
    assert "out of memory" in error and f"limit of {TINY_MB} MiB" in error and "trial_max_memory_mb" in error
    assert "Traceback" not in error and "SIGKILL" not in error
    # the server keeps serving, and the dispatcher goes on with the next trial in a fresh worker
    assert limited.get("/healthz").status_code == 200
    assert limited.get("/readyz").status_code == 200
    assert limited.post("/recommend", json={"architecture": "resnet"}).status_code == 200
    after = _wait(limited, second)
    assert after["started_at"] is not None and after["status"] == "failed" and "out of memory" in after["error"]
    metrics = limited.get("/metrics").text
    assert 'status="failed"' in metrics


def test_a_generous_memory_limit_leaves_a_normal_trial_alone(tmp_path: Path) -> None:
    settings = Settings(trial_store=str(tmp_path / "t.sqlite3"), trial_concurrency=1, trial_max_memory_mb=16_384)
    with TestClient(create_app(settings)) as client:
        body = {"profile": {}, "workload": "mlp", "device": "cpu", "size": 1, "steps": 5}
        done = _wait(client, client.post("/trials", json=body).json()["id"], timeout=120)
        assert done["status"] == "succeeded", done["error"]


# -- an unusable store at start-up --------------------------------------------------------------------------


def _sqlite_bytes(tmp_path: Path) -> bytes:
    """A real trial store with a few rows, as bytes."""
    path = tmp_path / "source.sqlite3"
    store = TrialStore(path)
    for i in range(30):
        store.create(f"trial{i}", {"profile": {}, "pad": "x" * 400}, {"steps": 3}, 3)
    store.close()
    return path.read_bytes()


def _foreign(tmp_path: Path, sql: str) -> Path:
    path = tmp_path / "other-app.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(sql)
    return path


def _read_only(path: Path, mode: int) -> Path:
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop root from writing (see the under-proc case)")
    path.chmod(mode)
    return path


def _case(name: str, tmp_path: Path) -> Path:
    """The store path of one fault (creating whatever it needs)."""
    if name == "random-bytes":
        path = tmp_path / "random.sqlite3"
        path.write_bytes(os.urandom(16 * 1024))
    elif name == "truncated-sqlite":
        data = _sqlite_bytes(tmp_path)
        path = tmp_path / "truncated.sqlite3"
        path.write_bytes(data[: len(data) // 2])
    elif name == "foreign-schema":
        path = _foreign(tmp_path, "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    elif name == "foreign-trials-table":
        path = _foreign(tmp_path, "CREATE TABLE trials (id INTEGER PRIMARY KEY, patient TEXT, outcome TEXT)")
    elif name == "under-proc":  # a folder no one may create files in, root included
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc on this platform")
        path = Path("/proc/self/trials.sqlite3")
    elif name == "under-a-file":
        (tmp_path / "plain-file").write_text("x")
        path = tmp_path / "plain-file" / "trials.sqlite3"
    elif name == "read-only-folder":
        folder = tmp_path / "read-only"
        folder.mkdir()
        path = _read_only(folder, 0o555) / "trials.sqlite3"
    elif name == "read-only-file":
        path = tmp_path / "read-only.sqlite3"
        path.write_bytes(_sqlite_bytes(tmp_path))
        _read_only(path, 0o444)
        _read_only(tmp_path, 0o555)  # no -wal/-shm file can be created next to it either
    else:  # pragma: no cover
        raise AssertionError(name)
    return path


CASES = [
    "random-bytes",
    "truncated-sqlite",
    "foreign-schema",
    "foreign-trials-table",
    "under-proc",
    "under-a-file",
    "read-only-folder",
    "read-only-file",
]
REASONS = {
    "truncated-sqlite": "not a usable SQLite database",
    "foreign-schema": "not an optirec trial store",
    "foreign-trials-table": "not an optirec trial store",
    "under-proc": "may write there",
    "under-a-file": "is not a folder",
    "read-only-folder": "may write there",
    "read-only-file": "may write there",
}


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    yield
    for path in (tmp_path, *tmp_path.rglob("*")):  # let pytest clean up after the read-only cases
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("name", CASES)
def test_a_bad_store_fails_app_start_up_naming_the_path(name: str, tmp_path: Path, restore_modes: None) -> None:
    path = _case(name, tmp_path)
    before = path.read_bytes() if path.is_file() else None
    started = time.monotonic()
    with pytest.raises(StoreError) as info, TestClient(create_app(Settings(trial_store=str(path)))):
        pass
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert str(path) in message and REASONS.get(name, "") in message
    if before is not None:  # a corrupt or foreign file is never modified
        assert path.read_bytes() == before
        assert not Path(f"{path}-wal").exists()


@pytest.mark.parametrize("name", CASES)
def test_a_bad_store_makes_optirec_serve_exit_2_with_one_line(
    name: str, tmp_path: Path, restore_modes: None, serve: Any
) -> None:
    path = _case(name, tmp_path)
    result, seconds = serve(path)
    assert result.returncode == 2, result.stderr
    assert seconds < 15, f"start-up took {seconds:.1f} s to refuse a bad store"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("optirec: error: trial_store:") and str(path) in lines[0]
    assert REASONS.get(name, "") in lines[0] and "OPTIREC_TRIAL_STORE" in lines[0]
    assert result.stdout == ""
