"""The OpenAPI schema and the server agree: what the schema calls valid the server takes, what it rules out the
server refuses. A client generated from openapi.yaml then sends what the server accepts (schemathesis's
positive_data_acceptance, bench/fuzz.py). Each case is checked against the schema (jsonschema) and the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from optirec.rules import Rulebook
from optirec.service.app import create_app
from optirec.service.settings import Settings

ADAM = {"name": "adam", "hyperparameters": {"lr": 1e-3}}


def _rec(**optimizer: Any) -> dict[str, Any]:
    return {"recommendation": {"optimizer": {**ADAM, **optimizer}}}


def _with(**fields: Any) -> dict[str, Any]:
    return {"recommendation": {"optimizer": ADAM, **fields}}


def _phase(**optimizer: Any) -> dict[str, Any]:
    return {"name": "switch", "optimizer": {**ADAM, **optimizer}, "trigger": "step 100", "why": "test"}


def _alt(**fields: Any) -> dict[str, Any]:
    return {"name": "sgd", "score": 0.5, "why": "test", "hyperparameters": {"lr": 0.1}, **fields}


def _hp(**hyperparameters: Any) -> dict[str, Any]:
    return _rec(hyperparameters=hyperparameters)


#: (id, path, body, valid?) - the schema and the server must both say `valid`.
CASES = [
    ("diagnose-curve", "/diagnose", {"train_loss": [2.0, 1.5, 1.2]}, True),
    ("diagnose-empty-train", "/diagnose", {"train_loss": []}, False),
    ("diagnose-empty-val", "/diagnose", {"train_loss": [1.0], "val_loss": []}, False),
    ("diagnose-steps-without-curve", "/diagnose", {"steps": [1, 2]}, False),
    ("diagnose-val-steps-without-val", "/diagnose", {"train_loss": [1.0, 0.5], "val_steps": [1]}, False),
    ("diagnose-steps-with-curve", "/diagnose", {"train_loss": [1.0, 0.5], "steps": [10, 20]}, True),
    ("diagnose-integral-steps", "/diagnose", {"train_loss": [1.0, 0.5], "steps": [10.0, 15227017463.0]}, True),
    ("diagnose-fraction-step", "/diagnose", {"train_loss": [1.0, 0.5], "steps": [10, 20.5]}, False),
    ("diagnose-symptom", "/diagnose", {"symptoms": ["overfitting"]}, True),
    ("diagnose-unknown-symptom", "/diagnose", {"symptoms": ["wobbly"]}, False),
    ("trial-adam", "/trials", _rec(), True),
    ("trial-empty-name", "/trials", _rec(name=""), False),
    ("trial-unknown-name", "/trials", _rec(name="adamm"), False),
    ("trial-lr-zero", "/trials", _hp(lr=0), False),
    ("trial-lr-null", "/trials", _rec(name="adafactor", hyperparameters={"lr": None}), True),
    ("trial-weight-decay-negative", "/trials", _hp(lr=1e-3, weight_decay=-0.1), False),
    ("trial-momentum-above-1", "/trials", _rec(name="sgd", hyperparameters={"lr": 0.1, "momentum": 1.5}), False),
    ("trial-momentum-1", "/trials", _rec(name="sgd", hyperparameters={"lr": 0.1, "momentum": 1.0}), True),
    ("trial-beta-1", "/trials", _hp(lr=1e-3, betas=[0.9, 1.0]), False),
    ("trial-betas", "/trials", _hp(lr=1e-3, betas=[0.9, 0.95]), True),
    ("trial-bad-name", "/trials", _hp(**{"lr": 1e-3, "no-dash": 1}), False),
    ("trial-unknown-base", "/trials", _rec(name="lookahead", hyperparameters={"base": "adamm"}), False),
    ("trial-base-null", "/trials", _rec(name="lookahead", hyperparameters={"base": None}), True),
    ("trial-base-number", "/trials", _rec(name="lookahead", hyperparameters={"base": 3}), False),
    ("trial-base", "/trials", _rec(name="lookahead", hyperparameters={"base": "adamw"}), True),
    ("trial-steps-at-limit", "/trials", {**_rec(), "steps": 2000}, True),
    ("trial-steps-over-limit", "/trials", {**_rec(), "steps": 2001}, False),
    ("trial-size-over-limit", "/trials", {**_rec(), "size": 9}, False),
    # JSON Schema's integer: 4.0 is one, "4", 4.5 and true are not; its number is never a boolean
    ("trial-integral-floats", "/trials", {**_rec(), "seed": 191423.0, "race": 2.0, "steps": 50.0}, True),
    ("trial-steps-string", "/trials", {**_rec(), "steps": "7"}, False),
    ("trial-steps-fraction", "/trials", {**_rec(), "steps": 7.5}, False),
    ("trial-seed-bool", "/trials", {**_rec(), "seed": True}, False),
    ("trial-warmup-integral", "/trials", _with(schedule={"name": "cosine", "warmup_steps": 10.0}), True),
    ("trial-warmup-string", "/trials", _with(schedule={"name": "cosine", "warmup_steps": "10"}), False),
    ("trial-ratio-bool", "/trials", _with(schedule={"name": "cosine", "warmup_ratio": False}), False),
    ("trial-clip-string", "/trials", _with(gradient_clipping={"max_norm": "1.0"}), False),
    ("trial-frozen-int", "/trials", _with(param_groups=[{"name": "frozen", "match": ["bn"], "frozen": 1}]), False),
    ("trial-phase-bad-name", "/trials", _with(phases=[_phase(hyperparameters={"": 1})]), False),
    ("trial-phase-unknown", "/trials", _with(phases=[_phase(name="adamm")]), False),
    ("trial-phase", "/trials", _with(phases=[_phase()]), True),
    ("trial-validate-and-race", "/trials", {**_rec(), "validate": True, "race": 2}, False),
    ("trial-validate-gan", "/trials", {**_rec(), "validate": True, "workload": "gan"}, False),
    ("trial-validate", "/trials", {**_rec(), "validate": True, "workload": "mlp"}, True),
    ("diagnose-nothing", "/diagnose", {}, False),
    ("diagnose-no-symptoms", "/diagnose", {"symptoms": []}, False),
    ("diagnose-val-only", "/diagnose", {"val_loss": [1.0, 0.9]}, True),
    ("trial-alternative-bad-hp", "/trials", _with(alternatives=[_alt(hyperparameters={"no-dash": 1})]), False),
    ("trial-alternative-unknown", "/trials", _with(alternatives=[_alt(name="adamm")]), False),
    ("trial-alternative", "/trials", _with(alternatives=[_alt()]), True),
    ("trial-frozen", "/trials", _with(param_groups=[{"name": "frozen", "match": ["bn"], "frozen": True}]), True),
    # null is "not given": a step list needs its curve as a list, a null step list needs nothing
    (
        "diagnose-val-steps-null-curve",
        "/diagnose",
        {"symptoms": ["overfitting"], "val_loss": None, "val_steps": [1]},
        False,
    ),
    ("diagnose-steps-null-curve", "/diagnose", {"symptoms": ["overfitting"], "train_loss": None, "steps": [1]}, False),
    ("diagnose-null-val-steps", "/diagnose", {"symptoms": ["overfitting"], "val_steps": None}, True),
    ("diagnose-null-steps", "/diagnose", {"train_loss": [1.0, 0.5], "steps": None}, True),
    # diagnose's recommendation and profile are the components POST /recommend and POST /trials use
    ("diagnose-recommendation", "/diagnose", {"symptoms": ["overfitting"], **_rec()}, True),
    ("diagnose-rec-unknown-key", "/diagnose", {"symptoms": ["overfitting"], **_with(colour="red")}, False),
    ("diagnose-rec-no-optimizer", "/diagnose", {"symptoms": ["overfitting"], "recommendation": {}}, False),
    ("diagnose-rec-unknown-name", "/diagnose", {"symptoms": ["overfitting"], **_rec(name="adamm")}, False),
    ("diagnose-rec-lr-zero", "/diagnose", {"symptoms": ["overfitting"], **_hp(lr=0)}, False),
    ("diagnose-profile", "/diagnose", {"symptoms": ["overfitting"], "profile": {"architecture": "cnn"}}, True),
    ("diagnose-profile-unknown-key", "/diagnose", {"symptoms": ["overfitting"], "profile": {"colour": 1}}, False),
    ("diagnose-profile-bad-value", "/diagnose", {"symptoms": ["overfitting"], "profile": {"batch_size": 0}}, False),
]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(trial_store=":memory:", trial_concurrency=0, trial_queue_size=1000)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def validators(client: TestClient) -> dict[str, Draft202012Validator]:
    """A validator per request body, resolving the app's own #/components/schemas references."""
    document = client.get("/openapi.json").json()
    out = {}
    for path in ("/diagnose", "/trials"):
        ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        out[path] = Draft202012Validator({"$ref": ref, "components": document["components"]})
    return out


@pytest.mark.parametrize(("path", "body", "valid"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_schema_and_server_agree(
    client: TestClient, validators: dict[str, Draft202012Validator], path: str, body: dict[str, Any], valid: bool
) -> None:
    errors = [e.message for e in validators[path].iter_errors(body)]
    assert (not errors) is valid, errors
    response = client.post(path, json=body)
    assert (response.status_code < 300) is valid, response.text
    if not valid:
        assert response.status_code == 422, response.text


def test_optimizer_names_are_the_live_catalog(client: TestClient, book: Rulebook) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["OptimizerChoice"]["properties"]["name"]["enum"] == book.valid("optimizer")
    (string,) = [s for s in schemas["ParamGroup"]["properties"]["optimizer"]["anyOf"] if s.get("type") == "string"]
    assert string["enum"] == book.valid("optimizer")
    assert schemas["Alternative"]["properties"]["name"]["enum"] == book.valid("optimizer")


def test_the_schema_states_this_servers_limits() -> None:
    settings = Settings(trial_store=":memory:", trial_concurrency=0, trial_max_steps=50, trial_max_size=3)
    props = create_app(settings).openapi()["components"]["schemas"]["TrialRequest"]["properties"]
    assert (props["steps"]["maximum"], props["size"]["maximum"]) == (50, 3)


def test_every_bound_is_stated_as_json_schema_states_it(client: TestClient) -> None:
    """minimum/maximum, never pydantic's own ge/le/gt/lt keys (which a validator in the way leaves behind)."""

    def keys(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "properties":
                    yield key
                yield from keys(value)
        elif isinstance(node, list):
            for item in node:
                yield from keys(item)

    assert not {"ge", "le", "gt", "lt"} & set(keys(client.get("/openapi.json").json()))
