"""Regression tests: one plain test per bug that fuzzing (tests/service/test_fuzz.py, schemathesis) or the
hostile-input work (tests/service/test_hostile_input.py) found, so that each stays fixed without a fuzzer.

Each docstring says what was found and how it was fixed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from optirec.service.app import create_app
from optirec.service.handlers import MAX_ISSUES, ErrorBody
from optirec.service.routers.recommend import Export
from optirec.service.settings import Settings

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(
        create_app(Settings(trial_store=":memory:", trial_concurrency=0, trial_queue_size=100)),
        raise_server_exceptions=False,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def spec(repo_root: Path) -> dict[str, Any]:
    document = yaml.safe_load((repo_root / "openapi.yaml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:1000]
    ErrorBody.model_validate(response.json())  # the documented error schema
    return dict(response.json()["error"])


def _ref(schema: dict[str, Any]) -> str:
    return str(schema.get("$ref", "")).rsplit("/", 1)[-1]


# -- found by schemathesis (response_schema_conformance, status_code_conformance, negative_data_rejection) -----


def test_recommend_with_format_documents_the_export_it_returns(client: TestClient, spec: dict[str, Any]) -> None:
    """``POST /recommend?format=optuna`` answered an Export, but the schema said Recommendation (additional
    properties format/export/recommendation). Fixed: ``response_model=Recommendation | Export``."""
    r = client.post("/recommend", params={"format": "optuna"}, json={"architecture": "resnet"})
    assert r.status_code == 200, r.text
    Export.model_validate(r.json())
    ok = spec["paths"]["/recommend"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert sorted(_ref(branch) for branch in ok["anyOf"]) == ["Export", "Recommendation"]


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("get", "/optimizers/goal", None, 404),
        ("get", "/rules", {"optimizer": "0000"}, 404),
        ("get", "/trials/0123", None, 404),
        ("delete", "/trials/0123", None, 404),
        ("get", "/trials/0123/events", None, 404),
        ("get", "/optimizers", {"family": "x"}, 422),
        ("get", "/trials", {"limit": 0}, 422),
        ("get", "/trials/0123", {"wait": -1}, 422),
    ],
)
def test_error_statuses_are_documented_with_the_error_body(
    client: TestClient, spec: dict[str, Any], method: str, path: str, params: Any, status: int
) -> None:
    """404 from GET /optimizers/{name} and GET /rules?optimizer= were undocumented; every 422 was documented as
    FastAPI's ``{"detail": [...]}`` while the service answers ``{"error": {...}}``. Fixed: ``error_responses()``
    documents each route's error statuses with ErrorBody."""
    _error(client.request(method, path, params=params), status)
    template = path.replace("0123", "{trial_id}").replace("/goal", "/{name}")
    documented = spec["paths"][template][method]["responses"]
    assert str(status) in documented, sorted(documented)
    assert _ref(documented[str(status)]["content"]["application/json"]["schema"]) == "ErrorBody"


def test_no_route_documents_fastapis_validation_error_shape(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert _ref(schema) == "ErrorBody", (method, path, status)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/trials", {"GET", "POST"}), ("/trials/0123", {"GET", "DELETE"}), ("/recommend", {"POST"})],
)
def test_405_lists_every_allowed_method(client: TestClient, path: str, expected: set[str]) -> None:
    """``OPTIONS /trials`` answered 405 with ``Allow: POST`` although GET /trials exists (Starlette names the first
    matching route only). Fixed: the 405 handler collects the methods of every route matching the path."""
    for method in ("OPTIONS", "PUT", "PATCH"):
        response = client.request(method, path)
        _error(response, 405)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed - {"HEAD"} == expected, response.headers["allow"]


def test_a_body_that_is_not_utf8_is_a_documented_422(client: TestClient) -> None:
    """Bytes that are not UTF-8 gave FastAPI's undocumented 400 "There was an error parsing the body". Fixed: the
    handler turns it into the 422 every other malformed body gets, saying why."""
    for path in ("/recommend", "/diagnose", "/trials"):
        error = _error(client.post(path, content=b"\x18\xc3\x28LFZx", headers=JSON), 422)
        assert error["issues"][0]["field"] == "body" and "UTF-8" in error["message"]


def test_trial_request_schema_says_exactly_one_of_profile_or_recommendation(
    client: TestClient, spec: dict[str, Any]
) -> None:
    """``POST /trials {}`` was schema-valid but refused. Fixed: the TrialRequest schema states the rule (oneOf)."""
    one_of = spec["components"]["schemas"]["TrialRequest"]["oneOf"]
    assert [branch["required"] for branch in one_of] == [["profile"], ["recommendation"]]
    error = _error(client.post("/trials", json={}), 422)
    assert error["issues"][0]["field"] == "profile"


def test_profile_data_null_is_accepted_and_documented(client: TestClient, spec: dict[str, Any]) -> None:
    """``{"data": null}`` was accepted although the schema said array (a schema-violating request accepted).
    Fixed: the schema lists what the validator takes: a list of names, one name, or null."""
    assert client.post("/recommend", json={"data": None}).status_code == 200
    assert (
        client.post("/recommend", json={"data": "noisy"}).json()
        == client.post("/recommend", json={"data": ["noisy"]}).json()
    )
    types = {branch.get("type") for branch in spec["components"]["schemas"]["Profile"]["properties"]["data"]["anyOf"]}
    assert types == {"array", "string", "null"}


# -- found by the hostile-input tests -------------------------------------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deep_nesting_in_free_form_fields_is_a_422_not_a_500(client: TestClient) -> None:
    """500 levels of arrays inside recommendation.optimizer.hyperparameters parsed fine, then pydantic failed to
    serialise them ("Maximum serialization depth exceeded"): a 500 on /trials and /diagnose. Fixed: bodies may
    nest at most MAX_JSON_DEPTH levels (require_json), a 422 naming the field."""
    rec = client.post("/recommend", json={}).json()
    text = json.dumps(rec).replace('"hyperparameters": {', '"hyperparameters": {"x": ' + _deep(500) + ", ", 1)
    for path, body in [("/trials", f'{{"recommendation": {text}}}'), ("/diagnose", f'{{"recommendation": {text}}}')]:
        error = _error(client.post(path, content=body, headers=JSON), 422)
        assert error["issues"][0]["field"].startswith("recommendation.optimizer.hyperparameters.x")


def test_a_number_beyond_a_double_is_a_422_not_a_500(client: TestClient) -> None:
    """``{"batch_size": 1e400}`` parses to inf; the 422 echoed inf and rendering it failed ("Out of range float
    values are not JSON compliant"): a 500. Fixed: non-finite numbers are refused naming the field, and error
    bodies never echo a non-finite value."""
    error = _error(client.post("/recommend", content=b'{"batch_size": 1e400}', headers=JSON), 422)
    assert error["issues"][0]["field"] == "batch_size"


def test_a_lone_surrogate_is_a_422_not_a_500(client: TestClient) -> None:
    """``{"architecture": "\\ud800"}`` made pydantic's error report raise UnicodeEncodeError: a 500. Fixed: text
    with a lone UTF-16 surrogate is refused up front, and error bodies only echo encodable text."""
    error = _error(client.post("/recommend", content=b'{"architecture": "\\ud800"}', headers=JSON), 422)
    assert "surrogate" in error["message"]


def test_a_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    """A chunked body without Content-Length over OPTIREC_MAX_BODY_BYTES gave FastAPI's 400 "error parsing the
    body" (FastAPI swallowed the limit's exception). Fixed: the limit raises an HTTPException(413)."""

    def chunks() -> Iterator[bytes]:
        yield b'{"train_loss": ['
        for _ in range(250):
            yield b"1.0, " * 1000
        yield b"1.0]}"

    error = _error(client.post("/diagnose", content=chunks(), headers=JSON), 413)
    assert error["code"] == "body_too_large"


def test_many_bad_fields_give_a_bounded_error(client: TestClient) -> None:
    """60 000 unknown keys (a 770 kB body) gave a 15 MB error body after 2 s. Fixed: at most MAX_ISSUES issues,
    the message says how many more."""
    body = json.dumps({f"k{i}": 1 for i in range(60_000)})
    response = client.post("/recommend", content=body, headers=JSON)
    error = _error(response, 422)
    assert len(error["issues"]) == MAX_ISSUES and "59995 more problem(s)" in error["message"]
    assert len(response.content) < 20_000


def test_a_negative_lr_is_refused_up_front(client: TestClient) -> None:
    """A recommendation with ``lr: -0.1`` was queued (and would only fail in the worker) and revised by /diagnose.
    Fixed: torch-free range checks of the shared hyperparameters on /trials and /diagnose."""
    rec = client.post("/recommend", json={"architecture": "resnet"}).json()
    rec["optimizer"]["hyperparameters"]["lr"] = -0.1
    for path, body in [
        ("/trials", {"recommendation": rec}),
        ("/diagnose", {"symptoms": ["overfitting"], "recommendation": rec}),
    ]:
        error = _error(client.post(path, json=body), 422)
        assert error["issues"][0]["field"] == "recommendation.optimizer.hyperparameters.lr"


def test_error_pages_carry_the_security_headers(client: TestClient) -> None:
    """A 404 under /static (and every JSON answer) came without the web form's security headers. Fixed: the
    SecurityHeaders middleware adds them to every response that does not set its own."""
    for response in (client.get("/static/missing.js"), client.post("/recommend", content=b"x", headers=JSON)):
        assert response.status_code >= 400
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "profile",
    [
        {"domain": "computer_vision", "architecture": "awd_lstm", "goal": "fine_tuning", "batch_size": 64},
        {"domain": "time_series", "architecture": "byol", "total_steps": 299413, "device_memory_gb": 24},
    ],
    ids=["awd-lstm-in-vision", "byol-in-time-series"],
)
def test_an_answer_whose_table_row_is_not_comparable_matches_the_response_schema(
    client: TestClient, profile: dict[str, Any]
) -> None:
    """bench/fuzz.py seed 2 (response_schema_conformance on POST /recommend): where no seed row describes a job of
    the architecture's family, the row's distance is infinite and was sent as null while the schema said number.
    It is now null by contract: RecipeInfo.table_distance is a number or null."""
    from jsonschema import Draft202012Validator

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text(encoding="utf-8"))
    schema = {"$ref": "#/components/schemas/Recommendation", "components": spec["components"]}
    r = client.post("/recommend", json=profile)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["recipe"] is not None and body["recipe"]["table_distance"] is None
    errors = [f"{list(e.absolute_path)}: {e.message[:120]}" for e in Draft202012Validator(schema).iter_errors(body)]
    assert errors == []


def test_an_empty_param_group_optimizer_name_is_refused(client: TestClient) -> None:
    """tests/service/test_fuzz.py (schemathesis, ST201/ST108): POST /diagnose took a param group whose optimizer
    was "" (read as no optimizer) and echoed it in a 200 that broke the response schema. An empty name is a name
    outside the catalog: a 422 naming the field."""
    body = {
        "recommendation": {
            "param_groups": [{"match": [""], "name": "", "optimizer": ""}],
            "optimizer": {"name": "nag", "hyperparameters": {}},
        },
        "symptoms": ["divergence"],
    }
    r = client.post("/diagnose", json=body)
    assert r.status_code == 422, r.text
    assert "recommendation.param_groups[0].optimizer" in r.json()["error"]["message"]
