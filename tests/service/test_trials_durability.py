"""Trial durability with a real server process (``optirec serve``): results survive a restart, a server
killed mid-trial takes its worker with it and the trial reads "interrupted" at the next start, queued
trials stay queued. And a bad store path or a corrupt store file fails start-up with a clear error.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from optirec.service.app import create_app
from optirec.service.settings import Settings
from optirec.service.trials.store import INTERRUPTED, StoreError

SMALL = {"workload": "mlp", "device": "cpu", "size": 1}


@pytest.fixture
def servers(live_server: Any, tmp_path: Path) -> Any:
    """Real servers sharing one trial store, each with one trial worker (conftest's ``live_server``)."""

    def start(**env: str) -> Any:
        return live_server(
            **{"OPTIREC_TRIAL_STORE": str(tmp_path / "trials.sqlite3"), "OPTIREC_TRIAL_CONCURRENCY": "1", **env}
        )

    return start


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` has exited (a zombie counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        except OSError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.1)
    return False


def _rows(store: Path, skip: str) -> dict[str, tuple[Any, ...]]:
    """Every stored row but ``skip``'s, exactly as SQLite holds it (read-only connection)."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        return {row[1]: tuple(row) for row in db.execute("SELECT * FROM trials WHERE id != ?", (skip,))}


@pytest.mark.slow
def test_results_survive_restarts_and_a_killed_server_marks_its_trial_interrupted(
    servers: Any, run_python: Any, tmp_path: Path
) -> None:
    first = servers()
    # optirec trial --url: submit, progress bar on stderr, the result JSON on stdout
    flags = ["--architecture", "mlp", "--workload", "mlp", "--steps", "20", "--device", "cpu", "--compact"]
    cli = run_python("-m", "optirec", "trial", "--url", first.url, *flags, timeout=120)
    assert cli.returncode == 0, cli.stderr
    trial_id = re.search(r"trial ([0-9a-f]{32}) queued", cli.stderr).group(1)  # type: ignore[union-attr]
    assert "20/20" in cli.stderr
    done = first.client.wait_trial(trial_id, timeout=120)
    assert done.status == "succeeded", done.error
    assert done.result is not None and json.loads(cli.stdout) == done.result.model_dump(mode="json")
    remote = run_python("-m", "optirec", "recommend", "--url", first.url, "--architecture", "resnet", "--compact")
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["optimizer"]["name"] == "sgd_momentum"
    first.stop()  # graceful
    assert first.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown

    second = servers()
    again = second.client.trial(done.id)
    assert again.status == "succeeded"
    assert again.result == done.result and again.request == done.request
    long = second.client.submit_trial(profile={}, steps=2000, **SMALL)
    queued = second.client.submit_trial(profile={}, steps=5, **SMALL)

    def running(status: Any) -> bool:
        return status.status == "running" and status.progress.steps_done > 0

    deadline = time.monotonic() + 120
    status = second.client.trial(long.id)
    while not running(status):
        assert time.monotonic() < deadline and status.status in ("queued", "running"), status
        status = second.client.trial(long.id, wait=2)
    worker = status.worker_pid
    assert worker is not None
    assert second.client.trial(queued.id).status == "queued"
    others = _rows(tmp_path / "trials.sqlite3", skip=long.id)
    assert set(others) == {done.id, queued.id}
    second.stop(signal.SIGKILL)  # no shutdown code runs
    assert _gone(worker), "the worker outlived its server"

    third = servers(OPTIREC_TRIAL_CONCURRENCY="0")  # look, but run nothing
    interrupted = third.client.trial(long.id)
    assert interrupted.status == "failed"
    assert interrupted.error == INTERRUPTED and "interrupted" in interrupted.error
    assert interrupted.finished_at is not None
    assert third.client.trial(done.id).result == done.result
    assert third.client.trial(queued.id).status == "queued", "a queued trial must survive the crash"
    listed = [t.id for t in third.client.trials()]
    assert listed == [queued.id, long.id, done.id]
    assert _rows(tmp_path / "trials.sqlite3", skip=long.id) == others, "a trial other than the killed one changed"


def test_corrupt_store_fails_start_up_naming_the_path(
    tmp_path: Path, run_python: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"this is not a database" * 200)
    with (
        pytest.raises(StoreError, match=re.escape(str(corrupt))),
        TestClient(create_app(Settings(trial_store=str(corrupt)))),
    ):
        pass
    code = "import sys; from optirec.service.cli import main; sys.exit(main(['serve', '--port', '1']))"
    monkeypatch.setenv("OPTIREC_TRIAL_STORE", str(corrupt))
    result = run_python("-c", code, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith("optirec: error: trial_store:") and str(corrupt) in lines[0]


@pytest.mark.parametrize("where", ["missing-folder", "a-directory"])
def test_unusable_store_path_fails_start_up(tmp_path: Path, where: str) -> None:
    path = tmp_path / "no" / "such" / "t.sqlite3" if where == "missing-folder" else tmp_path
    with pytest.raises(StoreError, match=re.escape(str(path))), TestClient(create_app(Settings(trial_store=str(path)))):
        pass


def test_memory_store_works_without_durability(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(trial_store=":memory:", trial_concurrency=0))) as client:
        assert client.post("/trials", json={"profile": {}, "steps": 3}).status_code == 202
        assert len(client.get("/trials").json()) == 1
