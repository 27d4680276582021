"""Trials on a real local Ray cluster (issue 24), submitted over HTTP to real ``optirec serve`` processes.

One cluster (tests/ray/conftest.py) and one server with ``OPTIREC_TRIAL_BACKEND=ray`` for the module, beside
one with the default worker processes to compare with. Last, the head is killed and started again.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from optirec.service.trials.ray_tasks import run_job

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# -- a real local Ray cluster: ``ray start --head --block`` on 127.0.0.1, 2 CPUs, no dashboard -----------------
#
# Every port it opens is a free one picked here (not Ray's fixed defaults, which another cluster on the machine
# may hold), its temp dir is its own, token authentication is off (a loopback test cluster), and it is stopped
# by signalling its own process group: never ``ray stop``, which would stop every Ray cluster of the machine.

RAY = str(Path(sys.executable).with_name("ray"))
#: What the tests' servers and clusters run with: no usage reports, no token (loopback only).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_ports(seed: int, width: int = 200) -> tuple[int, int]:
    """A ``width``-port range for Ray's workers below the kernel's ephemeral range, so that no port ``free_port``
    hands out (always inside the ephemeral range) can fall into it: Ray refuses to start on such an overlap."""
    ephemeral_low = 32768
    with contextlib.suppress(OSError, ValueError):
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    slots = max(1, (ephemeral_low - 10000) // width)
    low = 10000 + (seed % slots) * width
    return low, low + width - 1


class RayCluster:
    """One head node with ``cpus`` CPUs; ``start``/``kill`` it (a restart keeps its address)."""

    def __init__(self, cpus: int = 2) -> None:
        self.cpus = cpus
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = tempfile.mkdtemp(prefix="ortray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        self.log = Path(self.temp) / "ray-start.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        flags = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port"]
        flags += ["--runtime-env-agent-port", "--node-manager-port", "--object-manager-port"]
        picked: set[int] = {self.port}
        while len(picked) < len(flags) + 1:  # distinct: the kernel may hand a just-closed port out again
            picked.add(free_port())
        ports = dict(zip(flags, sorted(picked - {self.port}), strict=True))
        low, high = worker_ports(self.port)
        args = [RAY, "start", "--head", "--block", "--port", str(self.port), "--num-cpus", str(self.cpus)]
        args += ["--num-gpus", "0", "--include-dashboard", "false", "--node-ip-address", "127.0.0.1"]
        args += ["--temp-dir", self.temp, "--disable-usage-stats", "--min-worker-port", str(low)]
        args += ["--max-worker-port", str(high)]
        for flag, port in ports.items():
            args += [flag, str(port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, env={**os.environ, **RAY_ENV}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"ray start exited: {self.log.read_text(errors='replace')[-2000:]}"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            assert time.monotonic() < deadline, "the Ray head did not come up"
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the whole cluster (head, raylet, workers): its process group."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def task_pids(self, name: str) -> list[int]:
        """Ray worker processes whose title (``ray::<task name>``) contains ``name``."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    title = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::") and name in title:
                found.append(int(entry))
        return found


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = RayCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.kill()
        shutil.rmtree(cluster.temp, ignore_errors=True)


FINISHED = {"succeeded", "failed", "cancelled"}
#: Fields that measure the machine, not the training (they differ between any two runs).
TIMING = {"steps_per_second", "wall_seconds", "peak_memory_bytes"}
#: A trial that runs for many seconds (to cancel it, or kill its worker, mid-way).
LONG = {"profile": {"architecture": "mlp"}, "workload": "mlp", "steps": 2000, "device": "cpu", "seed": 0}
#: A trial that outlasts the head's loss being noticed (ray_backend.HEARTBEAT_TIMEOUT), whatever the machine.
ENDLESS = {**LONG, "steps": 100_000}


def _trained(value: Any) -> Any:
    """A result without its timing fields."""
    if isinstance(value, dict):
        return {k: _trained(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_trained(v) for v in value]
    return value


def _wait(client: httpx.Client, trial_id: str, until: Callable[[dict[str, Any]], bool] | None = None) -> Any:
    until = until or (lambda s: s["status"] in FINISHED)
    deadline = time.monotonic() + 120
    while True:
        body = client.get(f"/trials/{trial_id}", params={"wait": 2}).json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"trial {trial_id} stuck in {body['status']}"


def _ready(client: httpx.Client, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/readyz")
        if r.status_code == 200:
            return r.json()
        assert time.monotonic() < deadline, f"never ready: {r.json()}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def servers(ray_cluster: RayCluster, module_live_server: Any) -> Any:
    ray = module_live_server(
        OPTIREC_TRIAL_BACKEND="ray",
        OPTIREC_RAY_ADDRESS=ray_cluster.address,
        OPTIREC_TRIAL_CONCURRENCY="2",
        OPTIREC_TRIAL_MAX_STEPS=str(ENDLESS["steps"]),
        **RAY_ENV,
    )
    local = module_live_server(OPTIREC_TRIAL_CONCURRENCY="1")
    with httpx.Client(base_url=ray.url, timeout=30) as on_ray, httpx.Client(base_url=local.url, timeout=30) as here:
        _ready(on_ray)
        yield on_ray, here


@pytest.mark.parametrize(
    "body",
    [
        {"profile": {"architecture": "mlp"}, "workload": "mlp", "steps": 25, "device": "cpu", "seed": 7},
        {"profile": {"architecture": "resnet"}, "workload": "mlp", "steps": 10, "device": "cpu", "seed": 1, "race": 3},
    ],
    ids=["one-trial", "race-of-3"],
)
def test_a_trial_on_ray_equals_the_worker_process_one(servers: Any, body: Any) -> None:
    on_ray, here = servers
    ray_id = on_ray.post("/trials", json=body).json()["id"]
    local_id = here.post("/trials", json=body).json()["id"]
    on_ray_done, local_done = _wait(on_ray, ray_id), _wait(here, local_id)
    assert on_ray_done["status"] == local_done["status"] == "succeeded", on_ray_done.get("error")
    assert _trained(on_ray_done["result"]) == _trained(local_done["result"])
    assert on_ray_done["progress"] == local_done["progress"]
    assert "trial_backend" in on_ray.get("/readyz").json()["checks"]
    assert "trial_backend" not in here.get("/readyz").json()["checks"]  # the default's checks are unchanged


@pytest.mark.parametrize(("device", "status"), [("cuda", 422), ("cpu", 202)], ids=["cuda-refused", "cpu-queued"])
def test_cuda_is_refused_when_the_cluster_has_no_gpu(servers: Any, device: str, status: int) -> None:
    """The cluster's GPUs decide (its heartbeat's count), not the API's own machine."""
    on_ray, _ = servers
    r = on_ray.post("/trials", json={**LONG, "steps": 5, "device": device})
    assert r.status_code == status, r.text
    if status == 422:
        (issue,) = r.json()["error"]["issues"]
        assert issue["field"] == "device" and issue["valid"] == ["auto", "cpu"]
        assert "the Ray cluster at 127.0.0.1:" in issue["message"] and "has no GPU" in issue["message"]
    else:
        assert _wait(on_ray, r.json()["id"])["status"] == "succeeded"


def test_a_search_trains_its_candidates_side_by_side_in_actors_and_equals_the_worker_process_one(
    servers: Any, ray_cluster: RayCluster
) -> None:
    """validate on Ray: each rung's candidates on SearchActor actors at once; the same report as in-process."""
    on_ray, here = servers
    body = {
        "profile": {"architecture": "mlp"},
        "workload": "mlp",
        "steps": 150,
        "device": "cpu",
        "seed": 5,
        "validate": True,
    }
    ray_id = on_ray.post("/trials", json=body).json()["id"]
    local_id = here.post("/trials", json=body).json()["id"]
    most = 0
    deadline = time.monotonic() + 120
    while (status := on_ray.get(f"/trials/{ray_id}").json())["status"] not in FINISHED:
        most = max(most, len(ray_cluster.task_pids("SearchActor")))
        assert time.monotonic() < deadline, "the search did not finish"
        time.sleep(0.05)
    local_done = _wait(here, local_id)
    assert status["status"] == local_done["status"] == "succeeded", status.get("error")
    assert most == ray_cluster.cpus, f"{most} SearchActor(s) at once on a {ray_cluster.cpus}-CPU cluster"
    report, local = status["result"]["validation"], local_done["result"]["validation"]
    assert _trained(report) == _trained(local)
    assert status["progress"]["steps_done"] == report["cost"]["spent_steps"]
    ended = time.monotonic()
    while ray_cluster.task_pids("SearchActor"):  # the actors go with the search
        assert time.monotonic() - ended < 15, "the search's actors outlived it"
        time.sleep(0.1)


def test_a_trial_runs_in_a_ray_worker_named_after_it(servers: Any, ray_cluster: RayCluster) -> None:
    on_ray, _ = servers
    trial_id = on_ray.post("/trials", json=LONG).json()["id"]
    _wait(on_ray, trial_id, lambda s: s["progress"]["steps_done"] > 0)
    assert len(ray_cluster.task_pids(trial_id)) == 1  # a Ray worker runs it: the API's host has no worker
    on_ray.delete(f"/trials/{trial_id}")
    _wait(on_ray, trial_id)


def test_a_race_runs_its_candidates_side_by_side_on_ray(servers: Any, ray_cluster: RayCluster) -> None:
    """Each candidate a child task (``optirec-trial-<id>-<n>``), at once; a cancel stops them all."""
    on_ray, _ = servers
    race = {**LONG, "profile": {"architecture": "resnet"}, "race": 2}
    trial_id = on_ray.post("/trials", json=race).json()["id"]
    _wait(on_ray, trial_id, lambda s: s["progress"]["steps_done"] > 0)
    deadline = time.monotonic() + 30
    while len(children := ray_cluster.task_pids(f"{trial_id}-")) < 2:
        assert time.monotonic() < deadline, f"the candidates did not run side by side: {children}"
        time.sleep(0.1)
    assert on_ray.get(f"/trials/{trial_id}").json()["progress"]["steps_total"] == 2 * LONG["steps"]
    on_ray.delete(f"/trials/{trial_id}")
    started = time.monotonic()
    while ray_cluster.task_pids(trial_id):
        assert time.monotonic() - started < 12, "a race candidate kept running after the cancel"
        time.sleep(0.1)


def test_cancel_stops_the_ray_task(servers: Any, ray_cluster: RayCluster) -> None:
    """DELETE answers cancelled at once; the task stops at its next step (within CANCEL_GRACE s, else killed)."""
    on_ray, _ = servers
    trial_id = on_ray.post("/trials", json=LONG).json()["id"]
    _wait(on_ray, trial_id, lambda s: s["progress"]["steps_done"] > 0)
    assert on_ray.delete(f"/trials/{trial_id}").json()["status"] == "cancelled"
    started = time.monotonic()
    while ray_cluster.task_pids(trial_id):
        assert time.monotonic() - started < 10, "the Ray task kept running after the cancel"
        time.sleep(0.1)
    body = on_ray.get(f"/trials/{trial_id}").json()
    assert body["status"] == "cancelled" and body["progress"]["steps_done"] < LONG["steps"]


def test_a_killed_ray_worker_fails_its_trial_and_no_other(servers: Any, ray_cluster: RayCluster) -> None:
    on_ray, _ = servers
    victim = on_ray.post("/trials", json=LONG).json()["id"]
    other = on_ray.post("/trials", json={**LONG, "steps": 300}).json()["id"]
    _wait(on_ray, victim, lambda s: s["progress"]["steps_done"] > 0)
    _wait(on_ray, other, lambda s: s["status"] == "running")
    (pid,) = ray_cluster.task_pids(victim)
    os.kill(pid, signal.SIGKILL)
    failed = _wait(on_ray, victim)
    assert failed["status"] == "failed"
    assert "Ray worker process running the trial died" in failed["error"]
    assert _wait(on_ray, other)["status"] == "succeeded"


def _remote_calls(path: Path) -> tuple[ast.Module, list[ast.Call], list[ast.Call]]:
    """A module's tree, its ``.remote(...)`` calls, and those of them that are ``ray.remote(...)`` wrappings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "remote"
    ]
    return tree, calls, [c for c in calls if ast.unparse(c.func) == "ray.remote"]


def test_the_job_crosses_to_ray_as_json_text(repo_root: Path) -> None:
    """Nothing the user sent is pickled: ``ray.remote`` wraps ``run_job`` (pickled by reference, its module's
    name), and the one task submission, ``.remote(...)``, passes ``payload``, made by json.dumps."""
    tree, calls, wraps = _remote_calls(repo_root / "service/trials/ray_bridge.py")
    assert [ast.unparse(a) for c in wraps for a in c.args] == ["run_job"]
    submissions = [c for c in calls if c not in wraps]
    assert len(submissions) == 1
    (call,) = submissions
    assert not call.keywords and [type(a) for a in call.args] == [ast.Name] and call.args[0].id == "payload"  # type: ignore[attr-defined]
    made = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "payload" for t in node.targets)
    ]
    assert len(made) == 1 and ast.unparse(made[0].func) == "json.dumps"  # type: ignore[attr-defined]


def test_a_search_crosses_to_its_actors_as_json_text_and_numbers(repo_root: Path) -> None:
    """ray_search.py: ``ray.remote`` wraps SearchActor; an actor is made from the job as json.dumps text, and
    each rung call passes the candidates' indexes and the rung's length (numbers the search computed)."""
    tree, calls, wraps = _remote_calls(repo_root / "service/trials/ray_search.py")
    assert [ast.unparse(a) for c in wraps for a in c.args] == ["SearchActor"]
    sent = sorted(", ".join(ast.unparse(a) for a in c.args) for c in calls if c not in wraps and not c.keywords)
    assert sent == ["mine, length", "self.payload"], sent
    made = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(ast.unparse(t) == "self.payload" for t in node.targets)
    ]
    assert len(made) == 1 and ast.unparse(made[0].func) == "json.dumps"  # type: ignore[attr-defined]
    from optirec.service.trials.ray_search import SearchActor

    with pytest.raises(TypeError, match="JSON text"):
        SearchActor({"recommendation": {}})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [{"type": "job", "id": "x", "job": {}}, b'{"type": "job"}', ["job"]],
    ids=["dict", "bytes", "list"],
)
def test_the_ray_task_refuses_anything_but_json_text(payload: Any) -> None:
    with pytest.raises(TypeError, match="JSON text"):
        next(run_job(payload))


@pytest.mark.parametrize(
    ("payload", "error"),
    [('"a string"', "'job' object"), ('{"id": "x", "job": 3}', "'job' object"), ("{not json", "Expecting")],
    ids=["not-an-object", "job-not-an-object", "not-json"],
)
def test_the_ray_task_refuses_malformed_json(payload: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        next(run_job(payload))


def test_the_ray_task_runs_a_job_from_json_text() -> None:
    job = {"recommendation": None, "workload": "mlp", "steps": 3, "device": "cpu", "seed": 0}
    messages = [json.loads(m) for m in run_job(json.dumps({"type": "job", "id": "t1", "job": job}))]
    assert messages[-1]["type"] == "error" and messages[-1]["id"] == "t1"  # a bad recommendation, in words


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OPTIREC_RAY_ADDRESS": "127.0.0.1:{closed}"}, "no Ray cluster answers at 127.0.0.1:"),
        ({"OPTIREC_RAY_ADDRESS": "ray://127.0.0.1:{closed}"}, "no Ray cluster answers at ray://127.0.0.1:"),
        ({"OPTIREC_RAY_ADDRESS": "http://head:8265"}, "is not a Ray address; use 'auto', 'host:port'"),
        ({"OPTIREC_RAY_ADDRESS": "head"}, "is not a Ray address"),
        ({"OPTIREC_RAY_ADDRESS": "auto", "RAY_TMPDIR": "{empty}"}, "'auto' found no Ray cluster"),
    ],
    ids=["gcs-closed", "client-closed", "url", "no-port", "auto-none"],
)
def test_serve_refuses_a_ray_cluster_that_does_not_answer(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], says: str
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    filled = {k: v.format(closed=free_port(), empty=tmp_path) for k, v in env.items()}
    result, seconds = serve(tmp_path / "s.sqlite3", OPTIREC_TRIAL_BACKEND="ray", **filled)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optirec: error: ray_address:") and says in lines[0], lines
    assert seconds < 20


def test_serve_refuses_ray_when_it_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pydantic import ValidationError

    from optirec.service.settings import Settings

    monkeypatch.setitem(sys.modules, "ray", None)  # importlib.util.find_spec then answers None
    with pytest.raises(ValidationError, match=r"not installed: pip install 'optirec\[ray\]'") as info:
        Settings(trial_backend="ray")
    assert info.value.errors()[0]["loc"] == ("trial_backend",)
    assert Settings(trial_backend="process").trial_backend == "process"  # the default needs no Ray


def test_the_head_going_away_fails_running_trials_keeps_queued_and_resumes(
    servers: Any, ray_cluster: RayCluster
) -> None:
    """Last: it kills the module's cluster. Running trials fail naming the cluster, /readyz says so, the queued
    trial stays queued and runs once the head is back at the same address."""
    on_ray, _ = servers
    running = [on_ray.post("/trials", json=ENDLESS).json()["id"] for _ in range(2)]
    for trial_id in running:
        _wait(on_ray, trial_id, lambda s: s["progress"]["steps_done"] > 0)
    queued = on_ray.post("/trials", json={**LONG, "steps": 20}).json()["id"]
    ray_cluster.kill()
    for trial_id in running:
        failed = _wait(on_ray, trial_id)
        assert failed["status"] == "failed"
        assert "Ray" in failed["error"], failed["error"]
    deadline = time.monotonic() + 15  # ray_backend.HEARTBEAT_TIMEOUT at the most
    while (not_ready := on_ray.get("/readyz")).status_code == 200:
        assert time.monotonic() < deadline, "/readyz still says ready with the head gone"
        time.sleep(0.2)
    assert not_ready.status_code == 503 and not_ready.json()["checks"]["trial_backend"].startswith("failed: ")
    assert on_ray.get(f"/trials/{queued}").json()["status"] == "queued"
    ray_cluster.start()
    assert _ready(on_ray)["checks"]["trial_backend"].startswith("ok (ray at ")
    assert _wait(on_ray, queued)["status"] == "succeeded"
