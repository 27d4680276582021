"""What runs on a Ray worker for one trial: ``run_job(payload)``, a streaming-generator task.

The bridge (ray_bridge.py) submits it as ``ray.remote(run_job).options(...).remote(payload)`` with ``payload`` a
JSON **string**: the same validated job the worker processes get over their stdin (worker.py), so nothing the
user sent is pickled; Ray pickles only the function by reference (this module, imported by name on the worker)
and the strings. The task runs the worker process's own ``_run`` (``jobs.execute``, its error handling and
progress throttling) in a thread and yields each protocol message as a JSON string as it comes: progress a
few times a second, then the result or the error, which the bridge forwards to the API process.

A cancel (``ray.cancel(ref)``, which raises KeyboardInterrupt in the task's main thread: ray/_private/worker.py
``cancel``) stops the job at its next step, as a worker process's cancel message does, so the Ray worker is free
for the next task at once; the bridge kills the task by force (``force=True``) if it has not stopped within the
runner's CANCEL_GRACE. (Ray drops what a cancelled task yields after that, partial result included.)

This module imports neither Ray nor torch at import time (torch comes with ``jobs`` on the worker).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

from .worker import run_message

__all__ = ["POLL", "run_job"]

#: Seconds the task's main thread waits for the next message before it looks again (and sees a cancel).
POLL = 0.1


class _QueueChannel:
    """worker.py's channel, into a queue: the messages cross to the bridge as the task's yields."""

    def __init__(self) -> None:
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def send(self, message: dict[str, Any]) -> None:
        self.messages.put(message)


def run_job(payload: str) -> Iterator[str]:
    """Run ``{"id": ..., "job": {...}}`` (JSON text); yield the worker protocol's messages as JSON text."""
    if not isinstance(payload, str):
        raise TypeError(f"a trial's payload is JSON text, not {type(payload).__name__}")
    message = json.loads(payload)
    if not isinstance(message, dict) or not isinstance(message.get("job"), dict):
        raise ValueError("a trial's payload is a JSON object with a 'job' object")
    trial_id = str(message.get("id"))
    channel = _QueueChannel()
    cancelled: set[str] = set()

    def work() -> None:
        try:
            run_message(channel, message, cancelled)
        finally:
            channel.messages.put(None)

    thread = threading.Thread(target=work, name=f"trial-{trial_id}", daemon=True)
    thread.start()
    while True:
        try:
            item = channel.messages.get(timeout=POLL)
        except queue.Empty:
            continue
        except KeyboardInterrupt:  # ray.cancel: stop at the next step, then report what was done
            cancelled.add(trial_id)
            continue
        if item is None:
            return
        yield json.dumps(item, allow_nan=False, separators=(",", ":"))
