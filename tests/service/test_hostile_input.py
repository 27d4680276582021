"""Hostile input: every malformed, oversized or devious request gets a clear 4xx in the one error shape
``{"error": {"status", "code", "message", "issues"?}}``, never a 500 or a stack trace, and the server keeps
answering (/healthz 200 after each).

Duplicate keys in a JSON object: **the last one wins**, as in Python's ``json`` and JavaScript's ``JSON.parse``
(RFC 8259 leaves it to the parser). The service is the only parser of a request and stores the request as it
understood it, so what a trial records is what it ran.

Most tests use the app in-process (TestClient); the last ones send the worst of them to a real server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from optirec.service.app import create_app
from optirec.service.deps import MAX_JSON_DEPTH
from optirec.service.handlers import MAX_ECHO, MAX_ISSUES
from optirec.service.settings import Settings

JSON = {"content-type": "application/json"}
BODY_ROUTES = ["/recommend", "/diagnose", "/trials"]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The app with a paused trial queue (trials are validated and stored, never run)."""
    settings = Settings(trial_store=":memory:", trial_concurrency=0, trial_queue_size=1000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def refused(client: TestClient, response: Any, statuses: tuple[int, ...] = (422,)) -> dict[str, Any]:
    """Assert a clean refusal in the standard shape, and that the service still answers; returns the error."""
    assert response.status_code in statuses, response.text[:2000]
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text and 'File "' not in response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["status"] == response.status_code
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"status", "code", "message", "issues"}
    for issue in error.get("issues", []):
        assert {"field", "message"} <= set(issue) <= {"field", "message", "value", "valid", "suggestion"}
    assert client.get("/healthz").status_code == 200
    return dict(error)


def post_raw(client: TestClient, path: str, content: bytes | str, headers: dict[str, str] | None = None) -> Any:
    return client.post(path, content=content, headers=JSON if headers is None else headers)


def _recommendation(client: TestClient) -> dict[str, Any]:
    rec = client.post("/recommend", json={"architecture": "resnet"}).json()
    assert "optimizer" in rec
    return dict(rec)


# -- deeply nested JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_100k_nested_levels_are_a_422_not_a_recursion_error(client: TestClient, path: str, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    error = refused(client, post_raw(client, path, opening * 100_000 + closing * 100_000))
    assert error["issues"][0]["field"] == "body"
    assert "nested too deeply" in error["message"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 200, 600, 950])
def test_deep_nesting_inside_free_form_fields_is_refused_naming_the_field(client: TestClient, depth: int) -> None:
    """Free-form dicts (hyperparameters, a diagnose profile) once let 500+ levels through to a 500 on output."""
    deep = "[" * depth + "]" * depth
    rec = json.dumps(_recommendation(client)).replace('"hyperparameters": {', '"hyperparameters": {"x": ' + deep + ", ")
    for path, body in [
        ("/trials", '{"recommendation": ' + rec + "}"),
        ("/diagnose", '{"symptoms": ["overfitting"], "recommendation": ' + rec + "}"),
    ]:
        error = refused(client, post_raw(client, path, body))
        field = error["issues"][0]["field"]
        assert field == "body" or field.startswith("recommendation.optimizer.hyperparameters.x"), error


def test_nesting_up_to_the_limit_is_fine(client: TestClient) -> None:
    rec = _recommendation(client)
    rec["optimizer"]["hyperparameters"]["betas"] = [0.9, 0.999]
    assert client.post("/trials", json={"recommendation": rec, "steps": 5}).status_code == 202


# -- huge bodies and arrays ----------------------------------------------------------------------------------


def test_a_2m_point_loss_history_is_413(client: TestClient) -> None:
    body = json.dumps({"train_loss": [1.0] * 2_000_000})
    error = refused(client, post_raw(client, "/diagnose", body), (413,))
    assert error["code"] == "body_too_large"


def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"train_loss": ['
        for _ in range(300):
            yield b"1.0, " * 1000
        yield b"1.0]}"

    refused(client, client.post("/diagnose", content=chunks(), headers=JSON), (413,))


def test_a_2m_point_loss_history_under_a_raised_body_limit_is_422() -> None:
    settings = Settings(trial_store=":memory:", trial_concurrency=0, max_body_bytes=50_000_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as big:
        error = refused(big, big.post("/diagnose", json={"train_loss": [1.0] * 2_000_000}))
        assert error["issues"][0]["field"] == "train_loss"


def test_60k_unknown_keys_give_a_bounded_answer(client: TestClient) -> None:
    body = json.dumps({f"k{i}": 1 for i in range(60_000)})
    for path in BODY_ROUTES:
        response = post_raw(client, path, body)
        error = refused(client, response)
        assert len(error["issues"]) <= MAX_ISSUES
        assert "more problem(s)" in error["message"]
        assert len(response.content) < 20_000, f"{path}: {len(response.content)} bytes for one bad request"


def test_a_megabyte_string_is_not_echoed_back(client: TestClient) -> None:
    response = client.post("/recommend", json={"architecture": "x" * 900_000})
    error = refused(client, response)
    assert len(response.content) < 10_000
    assert all(len(str(i.get("value", ""))) <= MAX_ECHO + 1 for i in error["issues"])


# -- NaN, Infinity and numbers out of range ------------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]


@pytest.mark.parametrize("literal", NON_FINITE)
def test_non_finite_numbers_are_422_naming_the_field(client: TestClient, literal: str) -> None:
    rec = json.dumps(_recommendation(client)).replace('"lr": 0.1', f'"lr": {literal}', 1)
    cases = [
        ("/recommend", f'{{"batch_size": {literal}}}', "batch_size"),
        ("/recommend", f'{{"device_memory_gb": {literal}}}', "device_memory_gb"),
        ("/diagnose", f'{{"train_loss": [2.0, 1.5, {literal}]}}', "train_loss[2]"),
        ("/diagnose", f'{{"symptoms": ["overfitting"], "recommendation": {rec}}}', "recommendation.optimizer"),
        ("/trials", f'{{"recommendation": {rec}}}', "recommendation.optimizer.hyperparameters.lr"),
    ]
    for path, body, field in cases:
        error = refused(client, post_raw(client, path, body))
        assert error["issues"][0]["field"].startswith(field), (path, error)
        assert "not a valid JSON number" in error["message"] and "null" in error["message"], error


def test_nan_inside_a_string_is_just_a_string(client: TestClient) -> None:
    error = refused(client, client.post("/recommend", json={"architecture": "NaN"}))
    assert error["issues"][0]["field"] == "architecture"
    assert "resnet" in error["issues"][0]["valid"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/recommend", '{"batch_size": 1e30}', "batch_size"),
        ("/recommend", '{"batch_size": 1000000000000000000000000000000}', "batch_size"),
        ("/recommend", '{"batch_size": -1}', "batch_size"),
        ("/recommend", '{"batch_size": 1.5}', "batch_size"),
        ("/recommend", '{"num_parameters": 1e300}', "num_parameters"),
        ("/recommend", '{"total_steps": 100000000000000000000}', "total_steps"),
        ("/recommend", '{"device_memory_gb": -24}', "device_memory_gb"),
        ("/recommend", '{"batch_size": ' + "9" * 5000 + "}", "body"),
        ("/trials", '{"profile": {}, "steps": 100000000000000000000}', "steps"),
        ("/trials", '{"profile": {}, "steps": 0}', "steps"),
        ("/trials", '{"profile": {}, "size": 100000000000000000000}', "size"),
        ("/trials", '{"profile": {}, "seed": -1}', "seed"),
        ("/trials", '{"profile": {}, "race": 99}', "race"),
        ("/trials", '{"profile": {}, "steps": 5.5}', "steps"),
        ("/trials", '{"profile": {}, "steps": "5"}', "steps"),
        ("/trials", '{"profile": {"batch_size": 1e30}}', "profile.batch_size"),
        ("/diagnose", '{"symptoms": ["overfitting"], "profile": {"batch_size": 1e30}}', "profile.batch_size"),
    ],
)
def test_numbers_out_of_range_are_422_naming_the_field(client: TestClient, path: str, body: str, field: str) -> None:
    error = refused(client, post_raw(client, path, body))
    assert error["issues"][0]["field"] == field, error


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("lr", -0.1),
        ("lr", 0),
        ("lr", "0.1"),
        ("lr", True),
        ("weight_decay", -1e-4),
        ("momentum", 1.5),
        ("eps", -1e-8),
        ("betas", [0.9, 1.5]),
        ("betas", "0.9"),
    ],
)
def test_out_of_range_hyperparameters_are_refused_up_front(client: TestClient, key: str, value: Any) -> None:
    rec = _recommendation(client)
    rec["optimizer"]["hyperparameters"][key] = value
    for path, body in [
        ("/trials", {"recommendation": rec, "steps": 5}),
        ("/diagnose", {"symptoms": ["overfitting"], "recommendation": rec}),
    ]:
        error = refused(client, client.post(path, json=body))
        assert error["issues"][0]["field"].startswith(f"recommendation.optimizer.hyperparameters.{key}"), error


# -- wrong content types -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"architecture": "resnet"}'),
        ("application/x-www-form-urlencoded", "architecture=resnet"),
        ("application/xml", "<profile><architecture>resnet</architecture></profile>"),
        ("multipart/form-data; boundary=x", '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--'),
        ("text/html", "<script>alert(1)</script>"),
        (None, '{"architecture": "resnet"}'),
    ],
)
def test_non_json_content_types_are_415(client: TestClient, path: str, content_type: str | None, body: str) -> None:
    headers = {"content-type": content_type} if content_type else {}
    error = refused(client, post_raw(client, path, body, headers), (415,))
    assert error["code"] == "unsupported_media" and "application/json" in error["message"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.optirec+json"])
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    r = post_raw(client, "/recommend", '{"architecture": "resnet"}', {"content-type": content_type})
    assert r.status_code == 200, r.text


# -- unicode, control characters and markup in names ---------------------------------------------------------

HOSTILE_NAMES = [
    "résnet",
    "🔥",
    "\u202eresnet",  # right-to-left override
    "res\x00net",  # NUL
    "ＲＥＳＮＥＴ",  # full-width
    "resnet\r\nX-Injected: 1",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "x" * 10_000,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: ascii(n[:12]))
def test_hostile_names_are_422_with_the_valid_values(client: TestClient, name: str) -> None:
    cases = [
        ("/recommend", {"architecture": name}, "architecture", "resnet"),
        ("/recommend", {"data": [name]}, "data", "noisy"),
        ("/trials", {"profile": {}, "workload": name}, "workload", "mlp"),
        ("/trials", {"profile": {}, "device": name}, "device", "cpu"),
        ("/diagnose", {"symptoms": [name]}, "symptoms", "overfitting"),
    ]
    for path, body, field, valid in cases:
        response = post_raw(client, path, json.dumps(body))
        error = refused(client, response)
        issue = error["issues"][0]
        assert issue["field"].startswith(field), (path, error)
        assert valid in issue.get("valid", []), (path, error)
        if "value" in issue:  # echoed, but bounded and as JSON data
            assert len(issue["value"]) <= MAX_ECHO + 1
        assert "X-Injected" not in response.headers


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    "body",
    [
        '{"architecture": "\\ud800"}',
        '{"symptoms": ["\\udfff"], "train_loss": [1.0]}',
        '{"profile": {"\\ud800x": 1}}',
        '{"\\ud800": 1}',
    ],
)
def test_lone_surrogate_escapes_are_422_not_a_500(client: TestClient, path: str, body: str) -> None:
    """``"\\ud800"`` is valid JSON syntax but no Unicode text: it once made pydantic's error report itself fail."""
    error = refused(client, post_raw(client, path, body))
    assert "surrogate" in error["message"], error


def test_surrogate_pairs_are_ordinary_text(client: TestClient) -> None:
    error = refused(client, post_raw(client, "/recommend", '{"architecture": "\\ud83d\\udd25"}'))  # 🔥, escaped
    assert error["issues"][0]["field"] == "architecture" and "resnet" in error["issues"][0]["valid"]


# -- duplicate keys: the last one wins -------------------------------------------------------------------------


def test_duplicate_keys_last_one_wins(client: TestClient) -> None:
    twice = post_raw(client, "/recommend", '{"architecture": "resnet", "architecture": "vit"}')
    once = client.post("/recommend", json={"architecture": "vit"})
    assert twice.status_code == 200 and twice.json() == once.json()
    refused(client, post_raw(client, "/trials", '{"profile": {}, "steps": 3, "steps": 100000000}'))
    accepted = post_raw(client, "/trials", '{"profile": {}, "steps": 100000000, "steps": 3}')
    assert accepted.status_code == 202, accepted.text
    stored = client.get(f"/trials/{accepted.json()['id']}").json()
    assert stored["request"]["steps"] == 3 and stored["progress"]["steps_total"] == 3


# -- bytes that are not JSON, and JSON that is not an object -------------------------------------------------


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(
    "body",
    [
        b'{"architecture": "\xff\xfe"}',  # invalid UTF-8
        b"\xc3\x28",
        b"\x00\x01\x02",
        b"",
        b"   ",
        b"[]",
        b"[1, 2, 3]",
        b'"resnet"',
        b"42",
        b"null",
        b"true",
        b'{"architecture": ',
        b"{'architecture': 'resnet'}",
        b'{"architecture": "resnet"} trailing',
    ],
    ids=lambda b: ascii(b[:16]),
)
def test_bodies_that_are_not_a_json_object_are_422(client: TestClient, path: str, body: bytes) -> None:
    error = refused(client, post_raw(client, path, body))
    assert error["code"] == "invalid_input"


def test_invalid_utf8_names_the_problem(client: TestClient) -> None:
    error = refused(client, post_raw(client, "/recommend", b'{"architecture": "\xff"}'))
    assert error["issues"][0]["field"] == "body" and "UTF-8" in error["message"]


def test_hostile_query_and_path_parameters(client: TestClient) -> None:
    for response in [
        client.get("/optimizers/" + "%00" * 10),
        client.get("/optimizers/..%2F..%2Fetc%2Fpasswd"),
        client.get("/trials/" + "x" * 5000),
        client.get("/trials/abc", params={"wait": "NaN"}),
        client.get("/trials/abc", params={"wait": "1e400"}),
        client.get("/trials", params={"limit": "99999999999999999999999"}),
        client.get("/rules", params={"optimizer": "a" * 5000}),
        client.post("/recommend", params={"format": "<script>"}, json={}),
    ]:
        refused(client, response, (404, 422))


# -- a real server -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_server_survives_the_worst_of_it(live_server: Callable[..., Any]) -> None:
    server = live_server()
    hostile: list[tuple[str, bytes, dict[str, str]]] = [
        ("/recommend", b"[" * 100_000 + b"]" * 100_000, JSON),
        ("/trials", b'{"a":' * 100_000 + b"}" * 100_000, JSON),
        ("/recommend", b'{"architecture": "\xff\xfe"}', JSON),
        ("/diagnose", json.dumps({"train_loss": [1.0] * 2_000_000}).encode(), JSON),
        ("/diagnose", b'{"train_loss": [1.0, NaN, Infinity]}', JSON),
        ("/recommend", b'{"batch_size": 1e400}', JSON),
        ("/recommend", b"architecture=resnet", {"content-type": "application/x-www-form-urlencoded"}),
        ("/recommend", json.dumps({"architecture": "res\x00net\u202e"}).encode(), JSON),
        ("/trials", b'{"profile": {}, "steps": 100000000000000000000}', JSON),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path, body, headers in hostile:
            r = http.post(path, content=body, headers=headers)
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:500])
            assert set(r.json()) == {"error"} and "Traceback" not in r.text
            assert http.get("/healthz").status_code == 200
        assert http.post("/recommend", json={"architecture": "resnet"}).status_code == 200
    log = server.output()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
