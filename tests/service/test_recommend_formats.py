"""POST /recommend?format=: the exporters over HTTP, and their errors."""

from __future__ import annotations

import typing

import pytest
from fastapi.testclient import TestClient

from optirec.optimizers.exporters import FORMATS
from optirec.service.app import create_app
from optirec.service.routers.recommend import ExportFormat
from optirec.service.settings import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    store = tmp_path_factory.mktemp("store") / "trials.sqlite3"
    return TestClient(create_app(Settings(trial_store=str(store), trial_concurrency=0)))


def test_the_route_offers_exactly_the_exporters_formats() -> None:
    assert typing.get_args(ExportFormat) == FORMATS


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "json"])
def test_each_format_renders_the_same_recommendation(client: TestClient, fmt: str) -> None:
    profile = {"architecture": "bert", "goal": "fine_tuning", "batch_size": 32}
    plain = client.post("/recommend", json=profile).json()
    resp = client.post(f"/recommend?format={fmt}", json=profile)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["format"] == fmt
    assert body["recommendation"] == plain
    assert body["export"]  # a dict of kwargs or source code, never empty
    if fmt in ("lightning", "torch"):
        assert isinstance(body["export"], str) and "optimizer" in body["export"]


def test_json_format_is_the_plain_recommendation(client: TestClient) -> None:
    a = client.post("/recommend?format=json", json={"architecture": "resnet"}).json()
    b = client.post("/recommend", json={"architecture": "resnet"}).json()
    assert a == b and "optimizer" in a


def test_unknown_format_is_a_422_naming_the_valid_ones(client: TestClient) -> None:
    resp = client.post("/recommend?format=keras", json={})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["issues"][0]["field"] == "format"
    assert "hf" in error["issues"][0]["valid"]


def test_a_format_that_cannot_express_the_answer_is_a_422_naming_the_ones_that_can(client: TestClient) -> None:
    # Mask R-CNN's step schedule has no Hugging Face lr_scheduler_type
    resp = client.post("/recommend?format=hf", json={"architecture": "mask_rcnn"})
    assert resp.status_code == 422
    issue = resp.json()["error"]["issues"][0]
    assert issue["field"] == "format"
    assert "step" in issue["message"] and "torch" in issue["message"]
