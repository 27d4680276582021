"""The trial worker process: ``python -m optirec.service.trials.worker``, started by the API's TrialRunner.

It runs one job at a time, for as many jobs as the API sends, so torch is imported once per worker.
The protocol is JSON lines (never pickles):

    stdin  {"type": "job", "id": ..., "job": {...}}       run a job (see ``jobs``)
           {"type": "cancel", "id": ...}                  stop that job at the next step
    stdout {"type": "ready", "pid": ...}                  once, after the imports
           {"type": "progress", "id", "steps_done", "steps_total", "loss"}   a few times a second at most
           {"type": "result", "id", "result": {...}, "cancelled": bool}
           {"type": "error", "id", "message": "..."}      the job failed (one line; the traceback goes to stderr)

The worker dies with its parent: Linux's PR_SET_PDEATHSIG, a parent-pid watchdog, and EOF on stdin each end it.
Anything a library prints goes to stderr; stdout carries the protocol only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any, Protocol, TextIO

__all__ = ["PARENT_ENV", "Channel", "main", "run_message"]

#: Environment variable carrying the API process's pid.
PARENT_ENV = "OPTIREC_TRIAL_PARENT"
#: Seconds between progress messages (the last step is always reported).
PROGRESS_INTERVAL = 0.1
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int | None) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is None:
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


class Channel(Protocol):
    """Where a job's protocol messages go (this process's stdout; a Ray task's yields: ray_tasks.py)."""

    def send(self, message: dict[str, Any]) -> None: ...


class _Channel:
    """Writes protocol messages to the saved stdout, one line each, from any thread."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, allow_nan=False, separators=(",", ":"))
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, OSError):
                os._exit(1)  # the parent is gone


def _reader(source: TextIO, jobs: queue.Queue[dict[str, Any]], cancelled: set[str]) -> None:
    for line in source:
        try:
            message = json.loads(line)
        except ValueError:
            print(f"optirec worker: ignoring a malformed line ({len(line)} chars)", file=sys.stderr)
            continue
        if not isinstance(message, dict):
            continue
        if message.get("type") == "job":
            jobs.put(message)
        elif message.get("type") == "cancel":
            cancelled.add(str(message.get("id")))
    os._exit(0)  # stdin closed: the API process stopped or let this worker go


def _json_safe(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run_message(channel: Channel, message: dict[str, Any], cancelled: set[str], rungs: Any = None) -> None:
    """Run one ``{"type": "job", "id", "job"}`` message, sending its progress and its end to ``channel``; the job
    stops at its next step once its id is in ``cancelled``. ``rungs``: jobs.execute's (validate on Ray)."""
    from optirec.optimizers.errors import BuildError
    from optirec.rules.errors import OptirecError

    from .jobs import execute

    trial_id = str(message.get("id"))
    last = 0.0

    def progress(done: int, total: int, loss: float | None) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < PROGRESS_INTERVAL:
            return
        last = now
        channel.send({"type": "progress", "id": trial_id, "steps_done": done, "steps_total": total, "loss": loss})

    try:
        result, was_cancelled = execute(message["job"], progress, lambda: trial_id in cancelled, rungs)
    except (BuildError, OptirecError) as exc:
        channel.send({"type": "error", "id": trial_id, "message": str(exc)})
    except MemoryError:
        channel.send({"type": "error", "id": trial_id, "message": "the trial ran out of memory"})
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        channel.send({"type": "error", "id": trial_id, "message": f"{type(exc).__name__}: {text}".rstrip(": ")})
    else:
        channel.send({"type": "result", "id": trial_id, "result": _json_safe(result), "cancelled": was_cancelled})
    finally:
        cancelled.discard(trial_id)


def main() -> int:
    """Serve jobs from stdin until it closes."""
    parent_text = os.environ.get(PARENT_ENV, "")
    _die_with_parent(int(parent_text) if parent_text.isdigit() else None)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # stray prints from libraries go to stderr
    sys.stdout = sys.stderr
    channel = _Channel(protocol)

    import optirec.service.trials.jobs  # noqa: F401  (torch and the optimizers, once per worker)

    jobs: queue.Queue[dict[str, Any]] = queue.Queue()
    cancelled: set[str] = set()
    threading.Thread(target=_reader, args=(sys.stdin, jobs, cancelled), name="stdin-reader", daemon=True).start()
    channel.send({"type": "ready", "pid": os.getpid()})
    while True:
        run_message(channel, jobs.get(), cancelled)


if __name__ == "__main__":  # pragma: no cover - the worker process
    sys.exit(main())
