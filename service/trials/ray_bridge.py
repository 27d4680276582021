"""The Ray bridge: ``python -m optirec.service.trials.ray_bridge``, the API process's one Ray driver.

RayBackend (ray_backend.py) starts it, so that Ray (its import, its threads, and its habit of ending a driver
whose cluster head has gone) lives outside the API process. It speaks the worker processes' JSON-lines
protocol (worker.py), for many trials at once:

    stdin  {"type": "job", "id", "job": {...}, "resources": {"num_cpus", "num_gpus", "memory"}}
           {"type": "cancel", "id"}    ray.cancel(ref), then ray.cancel(ref, force=True) after CANCEL_GRACE s
           {"type": "kill", "id"}      ray.cancel(ref, force=True) now
    stdout {"type": "ready", "address", "nodes", "cpus", "gpus"}   once connected (ray.init)
           {"type": "down", "message"}                             could not connect, or the head has gone
                                                                   (a heartbeat failed); the bridge exits
           {"type": "alive", "nodes", "cpus", "gpus"}              every HEARTBEAT s while the cluster answers
           the trial's own messages (progress, result, error: forwarded from the task as they come)
           {"type": "lost", "id", "message"}                       the Ray worker or node running it was lost

Each job becomes one task, ``ray_tasks.run_job``, with the trial's resources and no retries (a lost worker
fails its trial, with the reason, instead of running it again), and the job as a JSON string argument.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

from .backends import CANCEL_GRACE
from .ray_tasks import first_line, lost_reason, run_job
from .worker import PARENT_ENV, _Channel, _die_with_parent

__all__ = ["ADDRESS_ENV", "HEARTBEAT", "main"]

#: Environment variable carrying the cluster's address (Settings.ray_address).
ADDRESS_ENV = "OPTIREC_RAY_BRIDGE_ADDRESS"
#: Seconds between two heartbeats.
HEARTBEAT = 1.0


def _resources() -> dict[str, Any]:
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]  # ray/_private/state.py
    total = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return {"nodes": len(nodes), "cpus": total.get("CPU", 0.0), "gpus": total.get("GPU", 0.0)}


class _Bridge:
    def __init__(self, channel: _Channel) -> None:
        import ray

        self.ray = ray
        self.channel = channel
        self.remote = ray.remote(run_job)
        self.refs: dict[str, Any] = {}
        self.cancelling: set[str] = set()  # trials asked to stop: Ray drops what their task yields after
        self.lock = threading.Lock()

    def submit(self, trial_id: str, job: dict[str, Any], resources: dict[str, Any]) -> None:
        # a race's candidates run as child tasks, a search's as actors (ray_search.py): its own task only waits
        fans_out = int(job.get("race", 0)) > 1 or bool(job.get("validate"))
        message = {"type": "job", "id": trial_id, "job": job, **({"fan_out": resources} if fans_out else {})}
        payload = json.dumps(message)  # the user's input crosses as text
        options = {
            "num_cpus": 0.0 if fans_out else float(resources.get("num_cpus", 1)),  # a race's task only waits
            "num_gpus": 0.0 if fans_out else float(resources.get("num_gpus", 0)),
            "max_retries": 0,  # ray/_private/ray_option_utils.py: a lost worker fails the trial, not re-runs it
            "name": f"optirec-trial-{trial_id}",
        }
        if resources.get("memory") and not fans_out:
            options["memory"] = int(resources["memory"])
        ref = self.remote.options(**options).remote(payload)
        with self.lock:
            self.refs[trial_id] = ref
        threading.Thread(target=self.follow, args=(trial_id, ref), name=f"follow-{trial_id}", daemon=True).start()

    def follow(self, trial_id: str, ref: Any) -> None:
        from ray import exceptions as rex

        ended = False
        try:
            for item in ref:
                message = json.loads(self.ray.get(item))
                self.channel.send(message)
                ended = message.get("type") in ("result", "error")
        except rex.TaskCancelledError:
            ended = False
        except Exception as exc:  # a Ray error: the worker, its node or the cluster was lost
            if trial_id not in self.cancelling:
                self.channel.send({"type": "lost", "id": trial_id, "message": lost_reason(exc)})
                ended = True
        finally:
            with self.lock:
                self.refs.pop(trial_id, None)
                cancelled = trial_id in self.cancelling
                self.cancelling.discard(trial_id)
        if not ended and cancelled:  # the trial is cancelled in the store already; this only frees its slot
            self.channel.send({"type": "error", "id": trial_id, "message": "the trial was cancelled"})
        elif not ended:
            self.channel.send({"type": "lost", "id": trial_id, "message": "the Ray task ended without a result"})

    def cancel(self, trial_id: str, force: bool) -> None:
        with self.lock:
            ref = self.refs.get(trial_id)
            if ref is not None:
                self.cancelling.add(trial_id)
        if ref is None:
            return
        try:
            self.ray.cancel(ref, force=force)
        except Exception as exc:  # already finished, or the cluster is gone: the follower reports it
            print(f"optirec ray bridge: cancel {trial_id}: {first_line(exc)}", file=sys.stderr)
        if not force:
            timer = threading.Timer(CANCEL_GRACE, self.cancel, args=(trial_id, True))
            timer.daemon = True
            timer.start()

    def heartbeat(self) -> None:
        """Tell the API process every HEARTBEAT s that the cluster answers; exit once it does not."""
        while True:
            time.sleep(HEARTBEAT)
            try:
                state = _resources()
            except Exception as exc:  # the head (its GCS) is gone: the backend fails the running trials
                why = f"the Ray cluster's head does not answer ({type(exc).__name__}: {first_line(exc)})"
                self.channel.send({"type": "down", "message": why})
                os._exit(4)
            self.channel.send({"type": "alive", **state})

    def serve(self, source: Any) -> None:
        for line in source:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            trial_id = str(message.get("id"))
            kind = message.get("type")
            if kind == "job" and isinstance(message.get("job"), dict):
                try:
                    self.submit(trial_id, message["job"], message.get("resources") or {})
                except Exception as exc:
                    self.channel.send({"type": "lost", "id": trial_id, "message": lost_reason(exc)})
            elif kind in ("cancel", "kill"):
                self.cancel(trial_id, force=kind == "kill")


def main() -> int:
    """Connect to the cluster at $OPTIREC_RAY_BRIDGE_ADDRESS and run jobs from stdin until it closes."""
    parent_text = os.environ.get(PARENT_ENV, "")
    _die_with_parent(int(parent_text) if parent_text.isdigit() else None)
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # Ray's and the libraries' prints go to stderr
    sys.stdout = sys.stderr
    channel = _Channel(protocol)
    address = os.environ.get(ADDRESS_ENV, "auto")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # ray/_common/usage/usage_lib.py: no usage reports
    try:
        import ray

        # ray/_private/worker.py init: log_to_driver=False keeps the workers' output in the cluster's logs
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, namespace="optirec")
        bridge = _Bridge(channel)
        channel.send({"type": "ready", "address": address, **_resources()})
    except Exception as exc:
        channel.send({"type": "down", "message": f"cannot connect to the Ray cluster at {address}: {first_line(exc)}"})
        return 3
    threading.Thread(target=bridge.heartbeat, name="heartbeat", daemon=True).start()
    bridge.serve(sys.stdin)
    os._exit(0)  # stdin closed: the API process stopped; its tasks end with this driver


if __name__ == "__main__":  # pragma: no cover - the bridge process
    sys.exit(main())
