"""Fault: a second server started on a store another server is using (issue 22, item 4).

For real: ``optirec serve`` processes on one SQLite file. The second must refuse to start (exit 2, one line
naming the store and the owner's pid) before its start-up recovery touches anything, so the first server's
running trial keeps its worker, its progress and, at the end, its result. The lock dies with its owner: after
a graceful stop or a SIGKILL a new server starts on the store at once.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from optirec.optimizers.results import TrialResult
from optirec.service.trials.store import StoreOwnedError, TrialStore

pytestmark = pytest.mark.slow

#: The first server's trial runs this long whatever the machine's speed (the budget stops it, with a result).
TRIAL_SECONDS = "5"


def _row(store: Path, trial_id: str) -> tuple[Any, ...]:
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        return tuple(db.execute("SELECT status, error, worker_pid, finished_at FROM trials WHERE id = ?", (trial_id,)))


def test_a_second_server_on_a_live_store_refuses_to_start_and_the_first_trial_runs_on(
    live_server: Any, serve: Any, tmp_path: Path
) -> None:
    store = tmp_path / "shared.sqlite3"
    first = live_server(
        OPTIREC_TRIAL_STORE=str(store), OPTIREC_TRIAL_CONCURRENCY="1", OPTIREC_TRIAL_MAX_SECONDS=TRIAL_SECONDS
    )
    trial = first.client.submit_trial(profile={}, workload="mlp", device="cpu", steps=2000)
    deadline = time.monotonic() + 60
    status = first.client.trial(trial.id)
    while not (status.status == "running" and status.progress.steps_done > 0):
        assert time.monotonic() < deadline and status.status in ("queued", "running"), status
        status = first.client.trial(trial.id, wait=1)
    worker, steps_before = status.worker_pid, status.progress.steps_done
    assert worker is not None

    result, seconds = serve(store, OPTIREC_TRIAL_CONCURRENCY="1")
    assert result.returncode == 2, result.stderr
    assert seconds < 15, f"the refusal took {seconds:.1f} s"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    line = lines[0]
    assert line.startswith("optirec: error: trial_store:") and str(store) in line
    assert f"pid {first.proc.pid}" in line and "another optirec server" in line and "OPTIREC_TRIAL_STORE" in line
    # the same refusal in-process, with the owner's pid as a number
    with pytest.raises(StoreOwnedError) as info:
        TrialStore(store)
    assert info.value.owner_pid == first.proc.pid

    # nothing of the first server's trial changed: no "interrupted", same worker, still progressing
    assert _row(store, trial.id) == (("running", None, worker, None),)
    after = first.client.wait_trial(trial.id, timeout=60)
    assert after.status == "succeeded", after.error
    assert isinstance(after.result, TrialResult) and after.result.steps_done > steps_before
    assert first.proc.poll() is None and first.client.trial(trial.id).status == "succeeded"


def test_the_lock_goes_with_its_server_after_a_graceful_stop_or_a_sigkill(live_server: Any, tmp_path: Path) -> None:
    store = tmp_path / "shared.sqlite3"
    first = live_server(OPTIREC_TRIAL_STORE=str(store))
    queued = first.client.submit_trial(profile={}, workload="mlp", steps=3)
    first.stop()  # graceful: the store is closed and its lock dropped
    second = live_server(OPTIREC_TRIAL_STORE=str(store))
    assert second.client.trial(queued.id).status == "queued"
    second.stop(signal.SIGKILL)  # no shutdown code runs: the kernel drops the lock with the process
    third = live_server(OPTIREC_TRIAL_STORE=str(store))
    assert third.client.trial(queued.id).status == "queued"
    assert (tmp_path / "shared.sqlite3.lock").read_text().startswith(f"pid {third.proc.pid} ")
