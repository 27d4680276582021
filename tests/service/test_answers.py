"""The /recommend answer cache (service/answers.py): repeated profiles are served from it, byte for byte what
the rules would answer; errors, other content types and other formats are never mixed up with a cached 200."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from optirec.rules import Profile, recommend
from optirec.service.answers import AnswerCache
from optirec.service.app import create_app
from optirec.service.settings import Settings

RESNET = {"architecture": "resnet", "batch_size": 256, "goal": "best_accuracy"}


def _client(size: int = 16) -> TestClient:
    return TestClient(create_app(Settings(recommend_cache_size=size)))


def _cache(client: TestClient) -> AnswerCache:
    cache = client.app.state.answers  # type: ignore[attr-defined]
    assert isinstance(cache, AnswerCache)
    return cache


def _fresh(profile: dict[str, Any]) -> Any:
    return json.loads(recommend(Profile.model_validate(profile)).model_dump_json())


@pytest.mark.parametrize("size", [0, 1, 16], ids=["off", "one", "sixteen"])
def test_a_repeated_profile_gets_the_same_bytes_as_the_rules(size: int) -> None:
    client = _client(size)
    first = client.post("/recommend", json=RESNET)
    second = client.post("/recommend", json=RESNET)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.json() == _fresh(RESNET)
    assert second.headers["content-type"] == "application/json"
    assert second.headers["x-content-type-options"] == "nosniff"  # the security headers wrap cached answers too
    stats = _cache(client).stats()
    assert (stats.hits, stats.misses) == ((0, 0) if size == 0 else (1, 1))


def test_other_spellings_of_one_job_share_the_canonical_entry() -> None:
    client = _client()
    a = client.post("/recommend", json={"architecture": "resnet", "data": ["noisy"]})
    b = client.post("/recommend", content=b'{ "data": "noisy",\n "architecture": "ResNet" }', headers=_JSON)
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    stats = _cache(client).stats()
    assert (stats.hits, stats.misses) == (1, 1)


_JSON = {"content-type": "application/json"}


def test_different_profiles_and_formats_get_their_own_answers() -> None:
    client = _client()
    resnet = client.post("/recommend", json=RESNET).json()
    bert = client.post("/recommend", json={"architecture": "bert"}).json()
    hf = client.post("/recommend?format=hf", json=RESNET).json()
    assert resnet == _fresh(RESNET)
    assert bert == _fresh({"architecture": "bert"})
    assert resnet != bert
    assert hf["format"] == "hf" and hf["recommendation"] == resnet
    assert client.post("/recommend?format=hf", json=RESNET).json() == hf


def test_errors_are_never_cached() -> None:
    client = _client()
    bad = {"architecture": "resnett"}
    for _ in range(2):
        r = client.post("/recommend", json=bad)
        assert r.status_code == 422 and "resnet" in r.text  # did-you-mean, every time
    assert _cache(client).stats().size == 0


def test_the_same_bytes_with_another_content_type_are_still_refused() -> None:
    client = _client()
    body = json.dumps(RESNET).encode()
    assert client.post("/recommend", content=body, headers=_JSON).status_code == 200
    r = client.post("/recommend", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_the_body_limit_still_applies_before_the_cache() -> None:
    client = TestClient(create_app(Settings(recommend_cache_size=16, max_body_bytes=1024)))
    big = {"architecture": "resnet", "data": ["noisy"] * 400}
    assert client.post("/recommend", json=big).status_code == 413
    assert client.post("/recommend", json=big).status_code == 413


def test_least_recently_used_answers_are_evicted() -> None:
    client = _client(size=2)
    for arch in ("resnet", "bert", "lstm", "bert"):
        assert client.post("/recommend", json={"architecture": arch}).status_code == 200
    stats = _cache(client).stats()
    assert stats.size == 2 and stats.capacity == 2
    assert client.post("/recommend", json={"architecture": "resnet"}).json() == _fresh({"architecture": "resnet"})


def test_cache_counters_are_exported_as_metrics() -> None:
    client = _client()
    for _ in range(3):
        client.post("/recommend", json=RESNET)
    samples = {s.name: s.value for f in text_string_to_metric_families(client.get("/metrics").text) for s in f.samples}
    assert samples["optirec_recommend_cache_hits_total"] == 2
    assert samples["optirec_recommend_cache_misses_total"] == 1
    assert samples["optirec_recommend_cache_entries"] >= 1
    count = samples.get("optirec_http_requests_total")
    assert count is not None  # cached answers are still counted as requests (route label checked below)
    text = client.get("/metrics").text
    assert 'optirec_http_requests_total{method="POST",route="/recommend",status="200"} 3.0' in text


@pytest.mark.parametrize("value", [-1, 1_000_001, "many"], ids=["negative", "too-big", "not-a-number"])
def test_a_bad_cache_size_is_refused_at_start_up(value: Any) -> None:
    with pytest.raises(ValidationError, match="recommend_cache_size"):
        Settings(recommend_cache_size=value)
