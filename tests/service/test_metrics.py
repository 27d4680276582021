"""GET /metrics: Prometheus text from a per-app registry, labelled by route template; trial gauges."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from optirec.service.app import create_app
from optirec.service.settings import Settings


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_requests_are_counted_by_route_template() -> None:
    client = TestClient(create_app(Settings()))
    client.get("/optimizers/adam")
    client.get("/optimizers/sgd")
    client.get("/optimizers/nope")
    client.get("/no/such/path")
    client.post("/recommend", json={})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples = _samples(r.text)
    count = "optirec_http_requests_total"
    assert samples[(count, (("method", "GET"), ("route", "/optimizers/{name}"), ("status", "200")))] == 2
    assert samples[(count, (("method", "GET"), ("route", "/optimizers/{name}"), ("status", "404")))] == 1
    assert samples[(count, (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))] == 1
    assert samples[(count, (("method", "POST"), ("route", "/recommend"), ("status", "200")))] == 1
    assert not any("/optimizers/adam" in str(labels) for _, labels in samples)
    histogram = "optirec_http_request_duration_seconds_count"
    assert samples[(histogram, (("method", "GET"), ("route", "/optimizers/{name}")))] == 3
    assert samples[("optirec_trials_queued", ())] == 0


def test_each_app_has_its_own_registry() -> None:
    first, second = TestClient(create_app(Settings())), TestClient(create_app(Settings()))
    for _ in range(3):
        first.get("/healthz")
    second.get("/healthz")
    key = ("optirec_http_requests_total", (("method", "GET"), ("route", "/healthz"), ("status", "200")))
    assert _samples(first.get("/metrics").text)[key] == 3
    assert _samples(second.get("/metrics").text)[key] == 1


def test_trial_gauges_follow_the_store(tmp_path: Path) -> None:
    settings = Settings(trial_store=str(tmp_path / "t.sqlite3"), trial_concurrency=0)
    with TestClient(create_app(settings)) as client:
        ids = [client.post("/trials", json={"profile": {}, "steps": 5}).json()["id"] for _ in range(2)]
        client.delete(f"/trials/{ids[0]}")
        samples = _samples(client.get("/metrics").text)
    assert samples[("optirec_trials_queued", ())] == 1
    assert samples[("optirec_trials_running", ())] == 0
    assert samples[("optirec_trials_finished_total", (("status", "cancelled"),))] == 1
