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


# ------------------------------------------------------------------------------ the clients' format=
_PROFILE = {"architecture": "bert", "phase": "fine_tuning", "total_steps": 1000}


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_client_asks_for_a_format_and_gets_a_model(client: TestClient, fmt: str) -> None:
    from optirec import Recommendation
    from optirec.service.answers import Export
    from optirec.service.client import OptirecClient

    remote = OptirecClient("http://testserver")
    remote._client = client  # type: ignore[assignment]  # the same requests, served in-process
    got = remote.recommend(_PROFILE, format=fmt)  # type: ignore[call-overload]
    if fmt == "json":
        assert isinstance(got, Recommendation)
        assert got == remote.recommend(_PROFILE)
    else:
        assert isinstance(got, Export) and got.format == fmt and got.export
        assert got.recommendation == remote.recommend(_PROFILE)


def test_the_async_client_asks_for_a_format(client: TestClient) -> None:
    import asyncio

    import httpx

    from optirec.service.answers import Export
    from optirec.service.client import AsyncOptirecClient

    async def ask() -> Export:
        remote = AsyncOptirecClient("http://testserver")
        remote._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://testserver")
        try:
            return await remote.recommend(_PROFILE, format="hf")
        finally:
            await remote.aclose()

    got = asyncio.run(ask())
    assert got.format == "hf" and got.export["optim"] == "adamw_torch"  # type: ignore[index]


@pytest.mark.parametrize("fmt", ["keras", "HF", ""], ids=["unknown", "wrong-case", "empty"])
def test_the_client_refuses_an_unknown_format_before_any_request(fmt: str) -> None:
    from optirec.rules.errors import ProfileError
    from optirec.service.client import OptirecClient

    remote = OptirecClient("http://127.0.0.1:9")  # nothing listens there: a request would fail differently
    with pytest.raises(ProfileError) as err:
        remote.recommend(_PROFILE, format=fmt)  # type: ignore[call-overload]
    assert err.value.issues[0].field == "format"
    assert "valid values: json, hf, lightning, timm, torch, optuna" in str(err.value)


def test_a_refused_export_names_the_field_once(client: TestClient) -> None:
    """The 422 for what a format cannot express says ``format`` once, not ``format: format: ...``."""
    resp = client.post("/recommend?format=hf", json={"architecture": "wide_resnet", "total_steps": 1000})
    assert resp.status_code == 422, resp.text
    text = resp.text
    assert "format: format:" not in text and "hf (Hugging Face TrainingArguments" in text
    assert "the 'step' schedule" in text
