"""POST /diagnose: curves and/or symptoms -> 200 Diagnosis; bad input -> 4xx in the standard error shape."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from fastapi.testclient import TestClient

from optirec import recommend
from optirec.service.app import create_app
from optirec.service.settings import Settings


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings(max_body_bytes=4_000_000)))


def _curve(n: int = 300) -> list[float]:
    return [2.0 * math.exp(-4 * t / n) + 0.2 + 0.01 * math.sin(7 * t) for t in range(n)]


def test_divergence_revises_the_posted_recommendation(client: TestClient) -> None:
    rec = recommend({"architecture": "resnet", "total_steps": 300}).model_dump(mode="json")
    curve: list[float | None] = [*_curve(100), None, None]
    r = client.post("/diagnose", json={"train_loss": curve, "recommendation": rec})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [f["symptom"] for f in body["findings"]] == ["divergence"]
    assert body["findings"][0]["evidence"]["start_step"] == 100
    lr = rec["optimizer"]["hyperparameters"]["lr"]
    assert body["recommendation"]["optimizer"]["hyperparameters"]["lr"] == pytest.approx(lr / 10)
    change = body["changes"][0]
    assert set(change) == {"field", "from", "to", "why", "rule", "source", "symptom"}
    assert change["from"] == pytest.approx(lr) and change["to"] == pytest.approx(lr / 10)


def test_healthy_curve_and_named_symptoms(client: TestClient) -> None:
    healthy = client.post("/diagnose", json={"train_loss": _curve(), "val_loss": [1.0, 0.8, 0.7]}).json()
    assert healthy["healthy"] is True and healthy["changes"] == []
    named = client.post("/diagnose", json={"symptoms": ["overfitting"], "profile": {"architecture": "vit"}})
    assert named.status_code == 200
    assert named.json()["recommendation"]["optimizer"]["hyperparameters"]["weight_decay"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({}, "train_loss", id="nothing"),
        pytest.param({"train_loss": []}, "train_loss", id="empty"),
        pytest.param({"train_loss": [1.0, "abc"]}, "train_loss[1]", id="non-numeric"),
        pytest.param({"train_loss": [1.0, "1.5"]}, "train_loss[1]", id="numeric-string"),
        pytest.param({"train_loss": "1,2"}, "train_loss", id="not-a-list"),
        pytest.param({"symptoms": ["overfiting"]}, "symptoms[0]", id="unknown-symptom"),
        pytest.param({"symptoms": ["nan"], "profile": {"goal": "speed"}}, "profile.goal", id="bad-profile"),
        pytest.param({"symptoms": ["nan"], "recommendation": {"x": 1}}, "recommendation", id="bad-recommendation"),
        pytest.param({"train_loss": [1.0], "extra": 1}, "extra", id="unknown-field"),
    ],
)
def test_bad_input_is_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    r = client.post("/diagnose", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["issues"][0]["field"].startswith(field), error


def test_nan_literal_is_refused(client: TestClient) -> None:
    r = client.post(
        "/diagnose", content=b'{"train_loss": [1.0, NaN, 2.0]}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["issues"][0]["field"] == "train_loss[1]"
    assert "null" in error["message"]


def test_too_long_curve_is_refused(client: TestClient) -> None:
    r = client.post(
        "/diagnose", content=json.dumps({"train_loss": [1] * 100_001}), headers={"content-type": "application/json"}
    )
    assert r.status_code in (413, 422), r.text
    assert "error" in r.json()


def test_diagnose_endpoint_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from optirec.service.app import create_app\n"
        "c = TestClient(create_app())\n"
        "assert c.post('/diagnose', json={'train_loss': [1.0, 0.9, None]}).status_code == 200\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------- steps and val_steps
STEPS = list(range(760, 1981, 20))


def test_findings_quote_the_posted_steps(client: TestClient) -> None:
    curve: list[float | None] = [*_curve(len(STEPS))[:38], *[None] * (len(STEPS) - 38)]
    r = client.post(
        "/diagnose", json={"train_loss": curve, "steps": STEPS, "val_loss": [1.0, 0.9], "val_steps": [800, 1500]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    evidence = body["findings"][0]["evidence"]
    assert (evidence["start_step"], evidence["end_step"]) == (STEPS[38], 1980)
    assert "from step 1520" in evidence["summary"] and "(steps 1520-1980)" in body["message"]
    assert (body["curves"]["first_step"], body["curves"]["last_step"]) == (760, 1980)


def test_a_flat_curve_is_reported(client: TestClient) -> None:
    body = client.post("/diagnose", json={"train_loss": [2.3] * 1000}).json()
    assert [f["symptom"] for f in body["findings"]] == ["no_improvement"]
    assert body["findings"][0]["cause_applies"] is False and body["changes"] == []


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param({"train_loss": [1.0, 0.9], "steps": [0]}, "steps", "1 step(s) for 2 point(s)", id="length"),
        pytest.param({"train_loss": [1.0, 0.9], "steps": [5, 5]}, "steps[1]", "increase strictly", id="repeat"),
        pytest.param({"train_loss": [1.0, 0.9], "steps": [0, -1]}, "steps[1]", "integer from 0", id="negative"),
        pytest.param({"train_loss": [1.0, 0.9], "steps": [0, 1.5]}, "steps[1]", "integer from 0", id="fraction"),
        pytest.param({"train_loss": [1.0, 0.9], "steps": [0, "1"]}, "steps[1]", "integer from 0", id="string"),
        pytest.param({"train_loss": [1.0, 0.9], "steps": [True, 1]}, "steps[0]", "integer from 0", id="boolean"),
        pytest.param({"train_loss": [1.0, 0.9], "steps": [0, 2**60]}, "steps[1]", "integer from 0", id="huge"),
        pytest.param({"train_loss": [1.0, 0.9], "steps": "0,1"}, "steps", "list", id="not-a-list"),
        pytest.param({"val_loss": [1.0, 0.9], "steps": [0, 1]}, "steps", "train_loss, which is not given", id="orphan"),
        pytest.param({"val_loss": [1.0, 0.9], "val_steps": [3]}, "val_steps", "1 step(s) for 2", id="val-length"),
        pytest.param({"val_loss": [1.0, 0.9], "val_steps": [3, 2]}, "val_steps[1]", "strictly", id="val-falling"),
        pytest.param({"train_loss": [1.0], "val_steps": [3]}, "val_steps", "val_loss, which is not given", id="no-val"),
        pytest.param({"train_loss": [1.0], "step": [0]}, "step", "did you mean 'steps'", id="misspelt"),
        pytest.param(
            {"train_loss": [1.0], "architecture": "resnet"}, "architecture", "goes under 'profile'", id="flat"
        ),
        pytest.param({"loss": [1.0]}, "loss", "did you mean 'train_loss'", id="loss-alias"),
        pytest.param({"eval_loss": [1.0]}, "eval_loss", "did you mean 'val_loss'", id="eval-loss-alias"),
        pytest.param({"train_loss": [1.0], "epoch": [1]}, "epoch", "did you mean 'steps'", id="epoch-alias"),
        pytest.param({"train_loss": {"0": 1.0}}, "train_loss", "must be a list of numbers", id="loss-not-a-list"),
        pytest.param({"symptoms": "overfitting"}, "symptoms", "must be a list of symptom names", id="symptom-string"),
        pytest.param([1.0, 0.9], "body", "must be a JSON object; valid values: train_loss", id="bare-list"),
    ],
)
def test_bad_steps_are_422_naming_the_field(client: TestClient, body: Any, field: str, words: str) -> None:
    r = client.post("/diagnose", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["issues"][0]["field"] == field, error
    assert words in error["message"], error["message"]
    assert error["message"].startswith(f"{field}: ")
