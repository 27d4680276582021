"""The trials API: POST/GET/DELETE /trials, long-poll, server-sent events, /workloads, /readyz, API keys, the client.

Most tests use a "paused" app (``trial_concurrency=0``: trials are accepted and stored but never run), so the
queue, validation and auth paths need no worker. The ``live`` module fixture runs real worker processes on
tiny trials (MLP on diabetes, a few dozen CPU steps).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from optirec.optimizers.results import TrialResult
from optirec.rules import recommend
from optirec.service.app import create_app
from optirec.service.client import OptirecClient
from optirec.service.errors import Conflict, NotFound, QueueFull, Unauthorized
from optirec.service.settings import Settings
from optirec.service.trials.models import DEVICES, WORKLOAD_CATALOG, WORKLOAD_NAMES, TrialStatus

SMALL = {"workload": "mlp", "steps": 20, "device": "cpu", "size": 1}
FINISHED = {"succeeded", "failed", "cancelled"}


def _app(tmp_path: Path, **overrides: Any) -> Any:
    return create_app(Settings(trial_store=str(tmp_path / "trials.sqlite3"), **overrides))


@pytest.fixture
def paused(tmp_path: Path) -> Iterator[TestClient]:
    """An app that queues trials and never runs them (no worker process), queue of 3."""
    with TestClient(_app(tmp_path, trial_concurrency=0, trial_queue_size=3, trial_retry_after=7)) as client:
        yield client


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app with one worker process (started on the first trial and kept warm)."""
    with TestClient(_app(tmp_path_factory.mktemp("live"), trial_concurrency=1)) as client:
        yield client


def _wait(client: TestClient, trial_id: str, until: Any = None, timeout: float = 120.0) -> dict[str, Any]:
    """Long-poll until ``until(status)`` (default: finished)."""
    until = until or (lambda s: s["status"] in FINISHED)
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/trials/{trial_id}", params={"wait": 2}).json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"trial never reached the expected state: {body['status']}"


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert err["status"] == status
    assert err["code"] == code
    assert "Traceback" not in response.text
    return err


# -- submitting, reading, listing ---------------------------------------------------------------------------


def test_submit_returns_202_with_location_and_a_queued_status(paused: TestClient) -> None:
    r = paused.post("/trials", json={"profile": {"architecture": "resnet"}, **SMALL})
    assert r.status_code == 202
    body = r.json()
    assert r.headers["location"] == f"/trials/{body['id']}"
    TrialStatus.model_validate(body)
    assert body["status"] == "queued"
    assert body["progress"] == {"steps_done": 0, "steps_total": 20, "loss": None}
    assert body["request"]["profile"] == {"architecture": "resnet"}
    assert body["request"]["workload"] == "mlp"
    assert body["result"] is None and body["error"] is None
    assert body["created_at"] and body["started_at"] is None and body["finished_at"] is None

    got = paused.get(r.headers["location"])
    assert got.status_code == 200
    assert got.json() == body


def test_defaults_and_recommendation_input(paused: TestClient) -> None:
    rec = recommend({"architecture": "mlp"}).model_dump(mode="json")
    body = paused.post("/trials", json={"recommendation": rec}).json()
    assert body["request"]["recommendation"]["optimizer"] == rec["optimizer"]
    for field, default in {"workload": "auto", "steps": 200, "device": "auto", "seed": 0, "size": 1, "race": 0}.items():
        assert body["request"][field] == default
    raced = paused.post("/trials", json={"recommendation": rec, "steps": 10, "race": 3}).json()
    candidates = 1 + min(2, len(rec["alternatives"]))
    assert raced["progress"]["steps_total"] == 10 * candidates


def test_list_is_newest_first_and_limited(paused: TestClient) -> None:
    ids = [paused.post("/trials", json={"profile": {}, **SMALL}).json()["id"] for _ in range(3)]
    listed = paused.get("/trials").json()
    assert [t["id"] for t in listed] == ids[::-1]
    assert [t["id"] for t in paused.get("/trials", params={"limit": 1}).json()] == ids[-1:]
    assert paused.get("/trials", params={"status": "succeeded"}).json() == []
    _error(paused.get("/trials", params={"limit": 0}), 422, "invalid_input")
    _error(paused.get("/trials", params={"status": "done"}), 422, "invalid_input")


def test_long_poll_waits_then_answers(paused: TestClient) -> None:
    trial_id = paused.post("/trials", json={"profile": {}, **SMALL}).json()["id"]
    start = time.monotonic()
    r = paused.get(f"/trials/{trial_id}", params={"wait": 0.6})
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert 0.5 <= time.monotonic() - start < 5
    err = _error(paused.get(f"/trials/{trial_id}", params={"wait": 31}), 422, "invalid_input")
    assert err["issues"][0]["field"] == "wait"


# -- bad input ---------------------------------------------------------------------------------------------

REC = recommend({"architecture": "mlp"}).model_dump(mode="json")

BAD_REQUESTS = [
    pytest.param({"workload": "mlp"}, "profile", None, id="neither-profile-nor-recommendation"),
    pytest.param({"profile": {}, "recommendation": REC}, "profile", None, id="both"),
    pytest.param({"profile": {}, "workload": "mlpp"}, "workload", "mlp", id="unknown-workload"),
    pytest.param({"profile": {}, "workload": 3}, "workload", None, id="workload-not-a-string"),
    pytest.param({"profile": {}, "device": "tpu"}, "device", None, id="unknown-device"),
    pytest.param({"profile": {}, "steps": "many"}, "steps", None, id="steps-wrong-type"),
    pytest.param({"profile": {}, "steps": "20"}, "steps", None, id="steps-string-number"),
    pytest.param({"profile": {}, "steps": True}, "steps", None, id="steps-bool"),
    pytest.param({"profile": {}, "steps": 0}, "steps", None, id="steps-zero"),
    pytest.param({"profile": {}, "steps": 2001}, "steps", None, id="steps-over-server-limit"),
    pytest.param({"profile": {}, "size": 9}, "size", None, id="size-over-server-limit"),
    pytest.param({"profile": {}, "seed": -1}, "seed", None, id="negative-seed"),
    pytest.param({"profile": {}, "race": 5}, "race", None, id="race-too-large"),
    pytest.param({"profile": {}, "validate": "yes"}, "validate", None, id="validate-not-a-bool"),
    pytest.param({"profile": {}, "validate": True, "race": 2}, "validate", None, id="validate-and-race"),
    pytest.param(
        {"profile": {}, "validate": True, "workload": "gan"}, "workload", None, id="validate-a-two-player-gan"
    ),
    pytest.param({"profile": {}, "validat": True}, "validat", "validate", id="misspelt-validate"),
    pytest.param({"profile": {}, "stepz": 10}, "stepz", "steps", id="unknown-field"),
    pytest.param({"profile": {"architecture": "resnett"}}, "profile.architecture", "resnet", id="bad-profile-enum"),
    pytest.param({"profile": {"batchsize": 3}}, "profile.batchsize", "batch_size", id="unknown-profile-field"),
    pytest.param({"profile": {"data": ["nosiy"]}}, "profile.data", "noisy", id="bad-data-item"),
    pytest.param({"profile": "resnet"}, "profile", None, id="profile-not-an-object"),
    pytest.param(
        {"recommendation": {**REC, "optimizer": {"name": "adamm", "hyperparameters": {}}}},
        "recommendation.optimizer.name",
        "adam",
        id="unknown-optimizer",
    ),
    pytest.param(
        {"recommendation": {**REC, "alternatives": [{"name": "nope", "score": 1.0, "why": "x"}]}, "race": 2},
        "recommendation.alternatives[0].name",
        None,
        id="unknown-alternative-in-a-race",
    ),
    pytest.param({"recommendation": {"optimizer": "adam"}}, "recommendation", None, id="malformed-recommendation"),
]


@pytest.mark.parametrize(("body", "field", "suggestion"), BAD_REQUESTS)
def test_bad_requests_get_422_naming_the_field(
    paused: TestClient, body: dict[str, Any], field: str, suggestion: str | None
) -> None:
    err = _error(paused.post("/trials", json=body), 422, "invalid_input")
    fields = [i["field"] for i in err["issues"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    issue = next(i for i in err["issues"] if i["field"] == field or i["field"].startswith(field + "."))
    assert issue["field"] in err["message"]
    if suggestion:
        assert issue.get("suggestion") == suggestion
    assert paused.get("/trials").json() == [], "nothing may be queued from a bad request"


def test_unknown_names_list_the_valid_values(paused: TestClient) -> None:
    err = _error(paused.post("/trials", json={"profile": {}, "workload": "bogus"}), 422, "invalid_input")
    assert err["issues"][0]["valid"] == list(WORKLOAD_NAMES)
    err = _error(paused.post("/trials", json={"profile": {}, "device": "tpu"}), 422, "invalid_input")
    assert err["issues"][0]["valid"] == list(DEVICES)
    bad = {**REC, "optimizer": {"name": "adamm", "hyperparameters": {}}}
    err = _error(paused.post("/trials", json={"recommendation": bad}), 422, "invalid_input")
    assert "adamw" in err["issues"][0]["valid"]


@pytest.mark.parametrize(
    "raw",
    [pytest.param(b"{bad", id="malformed"), pytest.param(b"[1, 2]", id="array"), pytest.param(b"", id="empty")],
)
def test_non_object_bodies_get_422(paused: TestClient, raw: bytes) -> None:
    r = paused.post("/trials", content=raw, headers={"content-type": "application/json"})
    err = _error(r, 422, "invalid_input")
    assert err["issues"][0]["field"] == "body"


def test_unknown_trial_ids_are_404(paused: TestClient) -> None:
    for response in (
        paused.get("/trials/nope"),
        paused.get("/trials/nope/events"),
        paused.delete("/trials/nope"),
        paused.get("/trials/nope", params={"wait": 1}),
    ):
        err = _error(response, 404, "not_found")
        assert "nope" in err["message"]


# -- cancelling and the bounded queue -----------------------------------------------------------------------


def test_cancel_a_queued_trial_then_conflict(paused: TestClient) -> None:
    trial_id = paused.post("/trials", json={"profile": {}, **SMALL}).json()["id"]
    r = paused.delete(f"/trials/{trial_id}")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert r.json()["finished_at"]
    assert paused.get(f"/trials/{trial_id}").json()["status"] == "cancelled"
    err = _error(paused.delete(f"/trials/{trial_id}"), 409, "conflict")
    assert "already finished" in err["message"]


def test_full_queue_is_429_with_retry_after(paused: TestClient) -> None:
    for _ in range(3):
        assert paused.post("/trials", json={"profile": {}, **SMALL}).status_code == 202
    r = paused.post("/trials", json={"profile": {}, **SMALL})
    err = _error(r, 429, "too_many_requests")
    assert r.headers["retry-after"] == "7"
    assert "full" in err["message"]
    first = paused.get("/trials").json()[-1]["id"]
    paused.delete(f"/trials/{first}")  # a cancelled trial frees its place
    assert paused.post("/trials", json={"profile": {}, **SMALL}).status_code == 202


# -- API key ---------------------------------------------------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(_app(tmp_path, trial_concurrency=0, api_key="s3cret-key")) as client:
        yield client


def test_api_key_guards_every_trial_endpoint(guarded: TestClient) -> None:
    calls = [
        ("POST", "/trials", {"json": {"profile": {}, **SMALL}}),
        ("GET", "/trials", {}),
        ("GET", "/trials/x", {}),
        ("GET", "/trials/x/events", {}),
        ("DELETE", "/trials/x", {}),
    ]
    for method, path, kwargs in calls:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-key"}):
            r = guarded.request(method, path, headers=headers, **kwargs)
            err = _error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "s3cret" not in r.text and "s3cret" not in err["message"]
    ok = guarded.post("/trials", json={"profile": {}, **SMALL}, headers={"X-API-Key": "s3cret-key"})
    assert ok.status_code == 202
    trial_id = ok.json()["id"]
    bearer = guarded.get(f"/trials/{trial_id}", headers={"Authorization": "Bearer s3cret-key"})
    assert bearer.status_code == 200


def test_api_key_leaves_recommend_and_health_open(guarded: TestClient) -> None:
    assert guarded.post("/recommend", json={}).status_code == 200
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/workloads").status_code == 200


# -- the rest of the surface ----------------------------------------------------------------------------------


def test_workloads_match_the_live_registry(paused: TestClient) -> None:
    from optirec.optimizers.workloads import WORKLOADS

    assert {name: cls.description for name, cls in WORKLOADS.items()} == WORKLOAD_CATALOG
    body = paused.get("/workloads").json()
    assert [w["name"] for w in body] == sorted(WORKLOADS)
    assert all(w["description"] for w in body)


def test_readyz(paused: TestClient, tmp_path: Path) -> None:
    r = paused.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert set(r.json()["checks"]) == {"rulebook", "trial_store", "trial_dispatcher"}
    not_started = TestClient(_app(tmp_path / "x"))  # no `with`: the lifespan never runs
    r = not_started.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "not ready"
    _error(not_started.post("/trials", json={"profile": {}}), 503, "unavailable")
    assert not_started.get("/healthz").status_code == 200


def test_the_api_process_never_imports_torch(run_python: Any, tmp_path: Path) -> None:
    code = f"""
import sys
from fastapi.testclient import TestClient
from optirec.service.app import create_app
from optirec.service.settings import Settings
with TestClient(create_app(Settings(trial_store={str(tmp_path / "t.sqlite3")!r}, trial_concurrency=0))) as c:
    assert c.post("/trials", json={{"profile": {{"architecture": "resnet"}}, "race": 2}}).status_code == 202
    assert c.post("/trials", json={{"profile": {{}}, "workload": "nope"}}).status_code == 422
    assert c.get("/workloads").status_code == 200
    assert c.get("/metrics").status_code == 200
print("torch" in sys.modules)
"""
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_client_reads_a_typed_result(live: TestClient) -> None:
    client = OptirecClient("http://testserver")
    client._client = live  # type: ignore[assignment]  # the same requests, served in-process
    status = client.submit_trial(profile={"architecture": "mlp"}, **SMALL)
    _wait(live, status.id)  # (the client's long-poll passes a timeout, which TestClient refuses)
    done = client.trial(status.id)
    assert done.status == "succeeded", done.error
    assert isinstance(done.result, TrialResult) and done.result.steps_done == 20 and not done.result.diverged
    assert done.result.final_loss == live.get(f"/trials/{status.id}").json()["result"]["final_loss"]


def test_client_maps_errors_and_types(paused: TestClient) -> None:
    client = OptirecClient("http://testserver")
    client._client = paused  # type: ignore[assignment]  # the same requests, served in-process
    status = client.submit_trial(profile={"architecture": "mlp"}, workload="mlp", steps=5)
    assert isinstance(status, TrialStatus) and status.status == "queued"
    assert client.trial(status.id).id == status.id
    assert [w.name for w in client.list_workloads()] == sorted(WORKLOAD_CATALOG)
    assert client.trials(limit=1)[0].id == status.id
    assert client.cancel_trial(status.id).status == "cancelled"
    with pytest.raises(Conflict):
        client.cancel_trial(status.id)
    with pytest.raises(NotFound):
        client.trial("missing")
    for _ in range(3):
        client.submit_trial(profile={}, steps=5)
    with pytest.raises(QueueFull) as full:
        client.submit_trial(profile={}, steps=5)
    assert full.value.retry_after == 7


def test_client_unauthorized(guarded: TestClient) -> None:
    client = OptirecClient("http://testserver")
    client._client = guarded  # type: ignore[assignment]
    with pytest.raises(Unauthorized):
        client.submit_trial(profile={})


# -- real trials in a worker process -------------------------------------------------------------------------


def test_a_trial_runs_to_success_in_a_worker(live: TestClient) -> None:
    r = live.post("/trials", json={"profile": {"architecture": "mlp"}, **SMALL})
    assert r.status_code == 202
    trial_id = r.json()["id"]
    done = _wait(live, trial_id)
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"]["steps_done"] == done["progress"]["steps_total"] == 20
    assert done["started_at"] and done["finished_at"] and done["worker_pid"] is None
    result = done["result"]
    assert result["steps_done"] == 20 and result["device"] == "cpu"
    assert result["workload"]["name"] == "mlp"
    assert len(result["train_loss"]) == 20 and result["heldout"]
    assert result["diverged"] is False
    assert live.get("/readyz").status_code == 200
    metrics = live.get("/metrics").text
    assert 'optirec_trials_finished_total{status="succeeded"}' in metrics
    assert 'route="/trials/{trial_id}"' in metrics


def test_events_stream_progress_then_done(live: TestClient) -> None:
    trial_id = live.post("/trials", json={"profile": {}, **SMALL, "steps": 30}).json()["id"]
    events: list[tuple[str, dict[str, Any]]] = []
    with live.stream("GET", f"/trials/{trial_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    names = [n for n, _ in events]
    assert names[0] == "progress" and names[-1] == "done" and names.count("done") == 1
    assert set(names[:-1]) == {"progress"}
    done = events[-1][1]
    assert done["status"] == "succeeded" and done["result"]["steps_done"] == 30
    steps = [e["steps_done"] for n, e in events if n == "progress"]
    assert steps == sorted(steps)


def test_a_race_ranks_the_candidates(live: TestClient) -> None:
    rec = live.post("/recommend", json={"architecture": "mlp"}).json()
    body = {"recommendation": rec, "workload": "mlp", "steps": 10, "device": "cpu", "race": 2}
    done = _wait(live, live.post("/trials", json=body).json()["id"])
    assert done["status"] == "succeeded", done["error"]
    ranked = done["result"]["ranked"]
    assert [e["rank"] for e in ranked] == [1, 2]
    assert {e["optimizer"] for e in ranked} == {rec["optimizer"]["name"], rec["alternatives"][0]["name"]}
    assert done["progress"]["steps_done"] == 20


def test_a_validate_trial_searches_and_names_its_winner(live: TestClient) -> None:
    rec = live.post("/recommend", json={"architecture": "mlp", "domain": "tabular"}).json()
    body = {"recommendation": rec, "workload": "mlp", "steps": 30, "device": "cpu", "validate": True}
    submitted = live.post("/trials", json=body).json()
    assert submitted["progress"]["steps_total"] == 4 * 30 and submitted["request"]["validate"] is True
    done = _wait(live, submitted["id"])
    assert done["status"] == "succeeded", done["error"]
    report = done["result"]["validation"]
    assert report["candidates"][0]["label"] == "recommendation" and len(report["candidates"]) >= 3
    assert report["winner"] in [c["label"] for c in report["candidates"]]
    assert report["cost"]["spent_steps"] <= 4 * 30 and done["progress"]["steps_done"] == report["cost"]["spent_steps"]
    assert report["recommendation"]["optimizer"]["name"]


def test_a_diverged_run_is_a_finished_trial(live: TestClient) -> None:
    rec = recommend({"architecture": "mlp"}).model_dump(mode="json")
    rec["optimizer"] = {"name": "sgd", "hyperparameters": {"lr": 1e6}}
    done = _wait(live, live.post("/trials", json={"recommendation": rec, **SMALL}).json()["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["diverged"] is True and done["result"]["status"] == "diverged"


def test_cancel_a_running_trial(live: TestClient) -> None:
    trial_id = live.post("/trials", json={"profile": {}, **SMALL, "steps": 2000}).json()["id"]
    _wait(live, trial_id, until=lambda s: s["status"] == "running" and s["progress"]["steps_done"] > 0)
    r = live.delete(f"/trials/{trial_id}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    final = _wait(live, trial_id, until=lambda s: s["result"] is not None, timeout=30)
    assert final["status"] == "cancelled"
    assert final["result"]["status"] == "cancelled" and final["result"]["steps_done"] < 2000
    _error(live.delete(f"/trials/{trial_id}"), 409, "conflict")


def test_a_worker_crash_fails_the_trial_and_the_server_keeps_serving(live: TestClient) -> None:
    trial_id = live.post("/trials", json={"profile": {}, **SMALL, "steps": 2000}).json()["id"]
    running = _wait(live, trial_id, until=lambda s: s["status"] == "running" and s["progress"]["steps_done"] > 0)
    pid = running["worker_pid"]
    assert isinstance(pid, int) and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    failed = _wait(live, trial_id, timeout=30)
    assert failed["status"] == "failed"
    assert "SIGKILL" in failed["error"] and "Traceback" not in failed["error"]
    assert live.get("/healthz").status_code == 200
    assert live.get("/readyz").status_code == 200
    after = _wait(live, live.post("/trials", json={"profile": {}, **SMALL, "steps": 3}).json()["id"])
    assert after["status"] == "succeeded", after["error"]  # a fresh worker took over


# -- optirec trial -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        pytest.param(["--workload", "mlpp"], "workload", id="unknown-workload"),
        pytest.param(["--device", "tpu"], "device", id="unknown-device"),
        pytest.param(["--steps", "0"], "steps", id="steps-zero"),
        pytest.param(["--steps", "many"], "steps", id="steps-not-a-number"),
        pytest.param(["--race", "9"], "race", id="race-too-large"),
        pytest.param(["--architecture", "resnett"], "architecture", id="bad-profile"),
    ],
)
def test_cli_trial_bad_input_is_one_line_and_exit_2(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from optirec.service.cli import main

    assert main(["trial", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optirec: error:") and field in err[0]


def test_cli_trial_runs_locally_with_a_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    from optirec.service.cli import main

    argv = ["trial", "--architecture", "mlp", "--workload", "mlp", "--steps", "4", "--device", "cpu", "--compact"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["status"] == "succeeded" and result["steps_done"] == 4
    assert "4/4" in captured.err
    summary = captured.err.splitlines()[-1]  # the summary line, after the progress bar
    assert summary.startswith("optirec: trial succeeded: ") and "4/4 steps on cpu" in summary
    assert "steps/s" in summary and "final loss " in summary


FLAT_BODIES = [
    ("profile-field", {"architecture": "resnet", "steps": 50}, "architecture", "profile", None),
    ("profile-field-batch", {"batch_size": 64}, "batch_size", "profile", None),
    ("recommendation-field", {"optimizer": {"name": "adam"}}, "optimizer", "recommendation", None),
    ("misspelt-trial-field", {"profile": {}, "stepz": 5}, "stepz", None, "steps"),
]

_ADAM = {"name": "adam"}
#: (id, body, field, suggestion, a valid name): an unknown field at any depth gets its own model's names
NESTED_UNKNOWN = [
    ("profile", {"profile": {"architecure": "resnet"}}, "profile.architecure", "architecture", "phase"),
    (
        "recommendation",
        {"recommendation": {"optimizer": _ADAM, "schedul": {}}},
        "recommendation.schedul",
        "schedule",
        "param_groups",
    ),
    (
        "schedule",
        {"recommendation": {"optimizer": _ADAM, "schedule": {"name": "cosine", "warmup_step": 3}}},
        "recommendation.schedule.warmup_step",
        "warmup_steps",
        "final_lr_fraction",
    ),
    (
        "param-group",
        {"recommendation": {"optimizer": _ADAM, "param_groups": [{"name": "x", "match": [], "frozn": 1}]}},
        "recommendation.param_groups[0].frozn",
        "frozen",
        "layerwise_lr_decay",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "suggestion", "valid"), [c[1:] for c in NESTED_UNKNOWN], ids=[c[0] for c in NESTED_UNKNOWN]
)
def test_an_unknown_nested_field_gets_its_models_names(
    paused: TestClient, body: dict[str, Any], field: str, suggestion: str, valid: str
) -> None:
    r = paused.post("/trials", json=body)
    assert r.status_code == 422, r.text
    issue = next(i for i in r.json()["error"]["issues"] if i["field"] == field)
    assert issue["message"] == "unknown field" and issue["suggestion"] == suggestion
    assert valid in issue["valid"] and suggestion in issue["valid"]


@pytest.mark.parametrize(
    ("body", "field", "hint", "suggestion"), [c[1:] for c in FLAT_BODIES], ids=[c[0] for c in FLAT_BODIES]
)
def test_a_field_at_the_wrong_level_says_where_it_goes(
    paused: TestClient, body: dict[str, Any], field: str, hint: str | None, suggestion: str | None
) -> None:
    r = paused.post("/trials", json=body)
    assert r.status_code == 422
    issue = next(i for i in r.json()["error"]["issues"] if i["field"] == field)
    assert issue["message"].startswith("unknown field")
    if hint is None:
        assert "goes under" not in issue["message"] and issue.get("suggestion") == suggestion
    else:
        assert f"goes under {hint!r}" in issue["message"] and f'{{"{hint}": {{"{field}": ...}}' in issue["message"]


@pytest.mark.parametrize(
    ("cuda", "device", "status"),
    [(0, "cuda", 422), (0, "cpu", 202), (0, "auto", 202), (1, "cuda", 202), (None, "cuda", 202)],
    ids=["no-cuda-refused", "no-cuda-cpu", "no-cuda-auto", "cuda-accepted", "probe-unknown-accepts"],
)
def test_cuda_is_refused_up_front_where_the_workers_have_none(
    paused: TestClient, monkeypatch: pytest.MonkeyPatch, cuda: int | None, device: str, status: int
) -> None:
    from optirec.service.trials import devices

    monkeypatch.setattr(devices, "_answer", [cuda])
    r = paused.post("/trials", json={"profile": {"architecture": "mlp"}, "workload": "mlp", "device": device})
    assert r.status_code == status, r.text
    if status == 422:
        (issue,) = r.json()["error"]["issues"]
        assert issue["field"] == "device" and issue["valid"] == ["auto", "cpu"] and issue["value"] == "cuda"
        assert "no CUDA device" in issue["message"]


def test_the_device_probe_answers_as_torch_does_in_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from optirec.service.trials import devices

    monkeypatch.setattr(devices, "_answer", [])
    expected = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert devices.cuda_device_count() == expected
    assert devices._answer == [expected]  # probed once, then cached
    assert devices.trial_devices(expected) == (["auto", "cpu"] if expected == 0 else ["auto", "cpu", "cuda"])
