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

**A race fans out.** A race job sent with ``"fan_out": {...resources}`` (the bridge does so for every race) runs
its candidates as child tasks of this one, in parallel across the cluster, each a single-trial job from
``jobs.race_jobs`` with those resources; this task (which holds no CPU) sums their progress and ranks their
results with ``jobs.race_outcome``, the function the sequential race uses, so the ranking is the same. Each
candidate gets the race's whole time budget (they run side by side, not one after another). A cancel reaches
the children too (``ray.cancel`` is recursive by default).

**So does a validate() search** (``"fan_out"`` with ``"validate": true``): this task runs the search and its
rungs' candidates train side by side in Ray actors (ray_search.py).

This module imports neither Ray nor torch at import time (torch comes with ``jobs`` on the worker).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from .ray_errors import first_line, lost_reason
from .ray_search import SearchOnRay
from .worker import PROGRESS_INTERVAL, run_message

__all__ = ["POLL", "fan_out", "first_line", "lost_reason", "run_job"]

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
    resources = message.get("fan_out")
    if isinstance(resources, dict) and int(message["job"].get("race", 0)) > 1 and not message["job"].get("validate"):
        yield from fan_out(trial_id, message["job"], resources)
        return
    channel = _QueueChannel()
    cancelled: set[str] = set()
    search = (
        SearchOnRay(trial_id, resources) if isinstance(resources, dict) and message["job"].get("validate") else None
    )

    def work() -> None:
        try:
            run_message(channel, message, cancelled, search.rungs if search is not None else None)
        finally:
            if search is not None:
                search.close()
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
        yield _text(item)


def _follow_child(ray: Any, index: int, ref: Any, out: queue.Queue[tuple[int, dict[str, Any]]]) -> None:
    try:
        for item in ref:
            out.put((index, json.loads(ray.get(item))))
    except Exception as exc:  # the candidate's worker or node was lost
        out.put((index, {"type": "error", "message": f"a race candidate failed: {lost_reason(exc)}"}))


def fan_out(trial_id: str, job: dict[str, Any], resources: dict[str, Any]) -> Iterator[str]:
    """Run a race's candidates as parallel child tasks; yield the race's progress, then its ranked result."""
    import ray

    from .jobs import job_budget, race_jobs, race_outcome

    parts = race_jobs(job)
    steps = min(int(job["steps"]), job_budget(job).max_steps)
    total = steps * len(parts)
    remote = ray.remote(run_job)
    options: dict[str, Any] = {
        "num_cpus": float(resources.get("num_cpus", 1)),
        "num_gpus": float(resources.get("num_gpus", 0)),
        "max_retries": 0,
    }
    if resources.get("memory"):
        options["memory"] = int(resources["memory"])
    out: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
    refs = []
    for index, part in enumerate(parts):
        payload = json.dumps({"type": "job", "id": f"{trial_id}-{index}", "job": part})
        refs.append(remote.options(name=f"optirec-trial-{trial_id}-{index}", **options).remote(payload))
        threading.Thread(target=_follow_child, args=(ray, index, refs[-1], out), daemon=True).start()
    done = [0] * len(parts)
    losses: list[Any] = [None] * len(parts)  # each candidate's last loss; the race ends on the last one's
    results: dict[int, dict[str, Any]] = {}
    cancelled = False
    last = 0.0
    while len(results) < len(parts):
        try:
            index, message = out.get(timeout=POLL)
        except queue.Empty:
            continue
        except KeyboardInterrupt:  # ray.cancel: the children are cancelled with this task
            continue
        kind = message.get("type")
        if kind == "progress":
            done[index] = int(message.get("steps_done", 0))
            losses[index] = message.get("loss")
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                last = now
                yield _text(
                    {
                        "type": "progress",
                        "id": trial_id,
                        "steps_done": sum(done),
                        "steps_total": total,
                        "loss": message.get("loss"),
                    }
                )
        elif kind == "result":
            results[index] = message.get("result") or {}
            done[index] = steps
            cancelled = cancelled or bool(message.get("cancelled"))
        else:  # a candidate failed: so does the race, as the sequential one does
            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
            yield _text({"type": "error", "id": trial_id, "message": str(message.get("message") or "failed")})
            return
    yield _text({"type": "progress", "id": trial_id, "steps_done": sum(done), "steps_total": total, "loss": losses[-1]})
    ranked = race_outcome(job, [results[i] for i in range(len(parts))], [])
    yield _text({"type": "result", "id": trial_id, "result": ranked, "cancelled": cancelled})


def _text(message: dict[str, Any]) -> str:
    return json.dumps(message, allow_nan=False, separators=(",", ":"))
