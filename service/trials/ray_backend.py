"""Trials on a Ray cluster (``OPTIREC_TRIAL_BACKEND=ray``): the API side of the bridge process.

The API process never imports Ray. It starts one bridge process (ray_bridge.py, the cluster's driver) and
sends it each claimed trial as one JSON line, with the trial's resources:

    num_cpus 1, num_gpus 1 when the trial asks for ``device: cuda`` (0 otherwise: ``auto`` runs on CPU, as Ray
    hides the GPUs of a task that asked for none), and ``memory`` = the trial's estimated peak
    (envelope.estimate_trial_memory), so that Ray places it on a node with room for it.

The bridge forwards each task's messages (the worker processes' own: progress, result, error) as they come,
and the runner copies them into the store as for a worker process: SSE, long-poll and the progress bar are
unchanged. A cancel marks the trial cancelled at once and is ``ray.cancel``: the job stops at its next step,
or its worker is killed by force CANCEL_GRACE s later (so within 10 s the cluster's CPU is free again). Unlike
a worker process's, a cancelled Ray trial keeps no partial result: Ray drops what a cancelled task yields.

A Ray worker or node lost mid-trial fails that trial with the reason; other trials go on. After a loss the
slots claim nothing until the next heartbeat (at most HEARTBEAT s later) says the cluster still answers, so a
queued trial is not handed to a cluster whose head has just gone. A race runs its candidates in parallel as
child tasks (ray_tasks.fan_out), each with a single trial's resources.

**The head going away.** The bridge sends a heartbeat every second while the cluster answers. When it exits
(Ray ends a driver whose head is gone) or misses HEARTBEAT_TIMEOUT s of heartbeats, the backend kills it,
fails the running trials with the reason, reports ``failed: ...`` in /readyz, and tries a fresh bridge every
RECONNECT_EVERY s; meanwhile the slots claim nothing, so queued trials stay queued and run once the head is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import Any

from optirec.rules import default_rulebook

from ..settings import Settings
from .backends import LINE_LIMIT, STARTUP_GRACE, TrialBackend, TrialRun
from .envelope import estimate_trial_memory, resolve_workload
from .ray_address import parse_ray_address
from .ray_bridge import ADDRESS_ENV
from .store import TrialRecord
from .worker import PARENT_ENV

__all__ = ["CONNECT_WAIT", "HEARTBEAT_TIMEOUT", "RECONNECT_EVERY", "RayBackend", "trial_resources"]

log = logging.getLogger("optirec.service.trials")

#: Seconds a fresh bridge gets to import Ray and connect to the cluster.
CONNECT_WAIT = 60.0
#: Seconds without a heartbeat after which the cluster counts as gone.
HEARTBEAT_TIMEOUT = 10.0
#: Seconds between two tries to reach a cluster that has gone.
RECONNECT_EVERY = 2.0


def _state_multiplier(job: dict[str, Any]) -> float:
    """The largest optimizer-state multiplier among the optimizers the job may run (as POST /trials estimates)."""
    book = default_rulebook()
    rec = job.get("recommendation") or {}
    names = [str((rec.get("optimizer") or {}).get("name", ""))]
    if int(job.get("race", 0)) > 1 or job.get("validate"):
        names += [str(alt.get("name", "")) for alt in rec.get("alternatives") or [] if isinstance(alt, dict)]
    values = []
    for name in names:
        try:
            values.append(book.state_multiplier(book.optimizer(name).name))
        except Exception:  # an unknown name fails the trial in its worker, as with worker processes
            continue
    return max(values, default=2.0)


def trial_resources(job: dict[str, Any]) -> dict[str, Any]:
    """The Ray resources of one trial's task: CPUs, GPUs and memory (bytes) from the job."""
    rec = job.get("recommendation") or {}
    profile = rec.get("profile") or {}
    workload = resolve_workload(str(job.get("workload", "auto")), profile)
    traits = [t for t in profile.get("data") or () if isinstance(t, str)]
    try:
        estimate = estimate_trial_memory(
            workload,
            int(job.get("size", 1)),
            traits=traits,
            state_multiplier=_state_multiplier(job),
            validate=bool(job.get("validate")),
            steps=int(job.get("steps", 1)),
        )
        memory = int(estimate.total_mb * 2**20)
    except (KeyError, ValueError):  # a workload the estimate does not know: Ray places it by CPU alone
        memory = 0
    cuda = job.get("device") == "cuda"
    return {"num_cpus": 1, "num_gpus": 1 if cuda else 0, "memory": memory}


class _RayRun(TrialRun):
    def __init__(self, backend: RayBackend, trial_id: str) -> None:
        self.backend = backend
        self.trial_id = trial_id
        self.grace = 2 * STARTUP_GRACE  # scheduling on the cluster, then a fresh Ray worker importing torch
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def next(self, timeout: float) -> dict[str, Any]:
        return await asyncio.wait_for(self.messages.get(), timeout=max(0.0, timeout))

    def cancel(self) -> None:
        self.backend.send({"type": "cancel", "id": self.trial_id})  # the bridge forces it after CANCEL_GRACE

    async def abort(self) -> None:
        self.backend.send({"type": "kill", "id": self.trial_id})

    async def close(self) -> None:
        self.backend.runs.pop(self.trial_id, None)


class RayBackend(TrialBackend):
    """Trials as Ray tasks through one bridge process (see the module docstring)."""

    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.address = parse_ray_address(settings.ray_address).text
        self.runs: dict[str, _RayRun] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._up = asyncio.Event()
        self._state = f"failed: connecting to the Ray cluster at {self.address}"
        self._supervisor: asyncio.Task[None] | None = None
        self._gpus: float | None = None  # the cluster's GPUs at the last heartbeat (None: not connected yet)

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="ray-bridge")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self._drop_bridge()

    def check(self) -> str:
        return self._state

    async def cuda_devices(self) -> tuple[int | None, str]:
        """The cluster's GPUs at the last heartbeat (a trial asking for CUDA would wait forever without one)."""
        gpus = None if self._gpus is None else int(self._gpus)
        return gpus, f"the Ray cluster at {self.address} has no GPU (its nodes report 0)"

    async def wait_available(self) -> None:
        await self._up.wait()

    async def open(self, slot: int, record: TrialRecord) -> TrialRun:
        run = _RayRun(self, record.id)
        self.runs[record.id] = run
        message = {"type": "job", "id": record.id, "job": record.job, "resources": trial_resources(record.job)}
        if not self.send(message):
            run.messages.put_nowait({"type": "lost", "id": record.id, "message": self._lost_reason()})
        return run

    def send(self, message: dict[str, Any]) -> bool:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return False
        try:
            proc.stdin.write((json.dumps(message) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            return False
        return True

    def _lost_reason(self) -> str:
        why = self._state.removeprefix("failed: ")
        return f"the Ray cluster went away while the trial ran ({why}); resubmit it once /readyz is ready"

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = {
            **os.environ,
            PARENT_ENV: str(os.getpid()),
            ADDRESS_ENV: self.address,
            "PYTHONUNBUFFERED": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "optirec.service.trials.ray_bridge",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=LINE_LIMIT,
        )

    async def _drop_bridge(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()

    async def _supervise(self) -> None:
        down_logged = False
        while True:
            reason = await self._connect_and_follow()
            was_up = self._up.is_set()
            self._up.clear()
            self._state = f"failed: {reason}"
            await self._drop_bridge()
            for run in list(self.runs.values()):
                run.messages.put_nowait({"type": "lost", "id": run.trial_id, "message": self._lost_reason()})
            if was_up or not down_logged:
                log.warning("trial backend: %s; retrying every %g s", reason, RECONNECT_EVERY)
            down_logged = True
            await asyncio.sleep(RECONNECT_EVERY)

    async def _connect_and_follow(self) -> str:
        """Run one bridge until it is gone; the reason it is gone."""
        try:
            self._proc = proc = await self._spawn()
        except OSError as exc:
            return f"cannot start the Ray bridge process: {exc.strerror or exc}"
        assert proc.stdout is not None
        timeout = CONNECT_WAIT
        while True:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=timeout)
            except TimeoutError:
                return f"the Ray cluster at {self.address} stopped answering (no heartbeat for {timeout:g} s)"
            except ValueError:
                continue  # a line over LINE_LIMIT: its trial times out
            if not line:
                code = await proc.wait()
                return f"the Ray cluster at {self.address} went away (its driver exited with {code})"
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if kind in ("ready", "alive"):
                timeout = HEARTBEAT_TIMEOUT
                gpus = message.get("gpus")
                self._gpus = float(gpus) if isinstance(gpus, int | float) else None
                self._state = (
                    f"ok (ray at {self.address}: {message.get('nodes', 0)} node(s), "
                    f"{message.get('cpus', 0):g} CPU, {message.get('gpus', 0):g} GPU)"
                )
                if not self._up.is_set():
                    log.info("trial backend: %s", self._state)
                    self._up.set()
            elif kind == "down":
                return str(message.get("message") or f"cannot connect to the Ray cluster at {self.address}")
            else:
                if kind == "lost":  # a worker or node lost, maybe the head: claim nothing until a heartbeat
                    self._up.clear()
                run = self.runs.get(str(message.get("id")))
                if run is not None:
                    run.messages.put_nowait(message)
