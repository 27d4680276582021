"""The HTTP service: /recommend, the catalog, /rules, /healthz and the error shape."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from optirec.rules import default_rulebook
from optirec.service.app import create_app
from optirec.service.settings import Settings


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings(max_body_bytes=4096)))


def test_recommend_returns_the_contract(client: TestClient) -> None:
    r = client.post("/recommend", json={"architecture": "resnet", "batch_size": 1024})
    assert r.status_code == 200
    body = r.json()
    assert body["optimizer"]["name"] == "sgd_momentum"
    assert body["optimizer"]["hyperparameters"]["lr"] == pytest.approx(0.4)
    assert body["lr_scaling"] == body["lr_scaling"] | {"rule": "linear", "base_batch_size": 256, "batch_size": 1024}
    for key in ("schedule", "alternatives", "avoid", "rationale", "warnings", "memory", "search_space", "rulebook"):
        assert key in body
    assert body["rulebook"]["hash"] == default_rulebook().hash


def test_empty_profile_is_valid(client: TestClient) -> None:
    r = client.post("/recommend", json={})
    assert r.status_code == 200
    assert r.json()["optimizer"]["name"] == "adam"


BAD_BODIES = [
    pytest.param({"architecture": "resnett"}, "architecture", "resnet", id="misspelt-architecture"),
    pytest.param({"domain": "visoin"}, "domain", "computer_vision", id="misspelt-domain"),
    pytest.param({"batchsize": 32}, "batchsize", "batch_size", id="unknown-field"),
    pytest.param({"data": ["nosiy"]}, "data", "noisy", id="misspelt-data"),
    pytest.param({"batch_size": "many"}, "batch_size", None, id="wrong-type"),
    pytest.param({"batch_size": 0}, "batch_size", None, id="out-of-range"),
    pytest.param({"memory_limited": "yes"}, "memory_limited", None, id="strict-bool"),
]


@pytest.mark.parametrize(("body", "field", "suggestion"), BAD_BODIES)
def test_bad_profiles_get_422_naming_the_field(
    client: TestClient, body: dict, field: str, suggestion: str | None
) -> None:
    r = client.post("/recommend", json=body)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input"
    assert err["issues"][0]["field"] == field
    assert field in err["message"]
    if suggestion:
        assert err["issues"][0]["suggestion"] == suggestion
        assert err["issues"][0]["valid"], "valid values must be listed"


@pytest.mark.parametrize(
    "raw",
    [pytest.param(b"{bad", id="malformed"), pytest.param(b"[1, 2]", id="array"), pytest.param(b"", id="empty")],
)
def test_non_object_bodies_get_422(client: TestClient, raw: bytes) -> None:
    r = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"]["issues"]


def test_oversized_body_gets_413(client: TestClient) -> None:
    r = client.post("/recommend", content=json.dumps({"data": ["noisy"] * 2000}))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


def test_catalog_is_sorted_filterable_and_resolves_aliases(client: TestClient) -> None:
    names = [o["name"] for o in client.get("/optimizers").json()]
    assert names == sorted(default_rulebook().optimizers)
    adaptive = client.get("/optimizers", params={"family": "adaptive"}).json()
    assert adaptive and all(o["family"] == "adaptive" for o in adaptive)
    assert client.get("/optimizers/momentum").json()["name"] == "sgd_momentum"
    r = client.get("/optimizers/adamm")
    assert r.status_code == 404
    assert r.json()["error"]["issues"][0]["suggestion"] == "adam"
    assert client.get("/optimizers", params={"family": "nope"}).status_code == 422


def test_rules_endpoint_filters(client: TestClient) -> None:
    page = client.get("/rules", params={"level": "data"}).json()
    assert len(page["rules"]) == 8
    assert page["vocabulary"]["architecture"]
    resnet = client.get("/rules", params={"id": "architecture.resnet"}).json()["rules"]
    assert [r["id"] for r in resnet] == ["architecture.resnet"]
    lamb = client.get("/rules", params={"optimizer": "lamb"}).json()["rules"]
    assert lamb and all("lamb" in r.get("prefer", []) + r.get("avoid", []) for r in lamb)


def test_healthz_and_unknown_paths(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    r = client.get("/nowhere")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "bad", [pytest.param({"port": 0}, id="port"), pytest.param({"log_level": "loud"}, id="log-level")]
)
def test_settings_refuse_bad_config(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_recommend_endpoint_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from optirec.service.app import create_app\n"
        "c = TestClient(create_app())\n"
        "assert c.post('/recommend', json={'architecture': 'vit'}).status_code == 200\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
