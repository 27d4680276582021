"""Fault: integers no float can hold (issue 22, item 1).

JSON integers have no size limit; Python's json parses ``1`` and 400 zeros as an int, and ``math.isfinite`` /
``float`` raise OverflowError on it. Once a 500 on POST /trials and POST /diagnose; now a 422 naming the field,
at every layer that range-checks a number: the JSON walk of every body (service/deps.py), the hyperparameter
checks (service/trials/models.py) and the rules' own diagnose() (rules/diagnose.py), all through
rules/numbers.py.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from optirec.rules import diagnose
from optirec.rules.errors import ProfileError
from optirec.rules.hyperparameters import hyperparameter_issues
from optirec.rules.numbers import BEYOND_FLOAT, beyond_float, finite_float, first_beyond_float
from optirec.service.app import create_app
from optirec.service.settings import Settings

#: The smallest integer float() refuses: 2**1024 - 2**970 rounds up to 2**1024 (float max is 2**1024 - 2**971).
SMALLEST_HUGE = 2**1024 - 2**970
HUGE = [10**400, 2**1024, SMALLEST_HUGE, -(2**1024)]
HUGE_IDS = ["1e400", "2^1024", "2^1024-2^970", "-2^1024"]
#: field -> a valid value (the control beside each refusal)
FIELDS: dict[str, Any] = {"lr": 1e-3, "weight_decay": 0.01, "eps": 1e-8, "momentum": 0.9, "betas": [0.9, 0.999]}


def _with(hyperparameters: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    out = dict(hyperparameters)
    out[field] = [0.9, value] if field == "betas" else value
    return out


def _where(field: str) -> str:
    return "recommendation.optimizer.hyperparameters." + ("betas[1]" if field == "betas" else field)


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        (1.5, 1.5),
        (3, 3.0),
        (SMALLEST_HUGE - 1, sys.float_info.max),
        (SMALLEST_HUGE, None),
        (10**400, None),
        (-(10**400), None),
        (float("inf"), None),
        (float("nan"), None),
        (True, None),
        ("1", None),
        (None, None),
    ],
    ids=["float", "int", "largest-int", "smallest-huge", "1e400", "-1e400", "inf", "nan", "bool", "str", "none"],
)
def test_finite_float(value: Any, usable: float | None) -> None:
    assert finite_float(value) == usable
    assert beyond_float(value) == (isinstance(value, int) and not isinstance(value, bool) and usable is None)


def test_first_beyond_float_names_the_path() -> None:
    doc = {"a": [1, {"b": 2.0}], "c": {"d": [0, 10**400]}}
    assert first_beyond_float(doc, "x") == "x.c.d[1]"
    assert first_beyond_float({"a": [1e308, -(10**300)]}, "x") is None


@pytest.mark.parametrize("value", HUGE, ids=HUGE_IDS)
@pytest.mark.parametrize("field", list(FIELDS))
def test_hyperparameter_issues_name_a_huge_number(field: str, value: int) -> None:
    issues = hyperparameter_issues(_with(FIELDS, field, value), "recommendation.optimizer.hyperparameters")
    assert [(i.field, i.message) for i in issues] == [(_where(field), BEYOND_FLOAT)]


def test_hyperparameter_issues_pass_the_valid_values() -> None:
    assert hyperparameter_issues(FIELDS, "h") == []


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(trial_store=":memory:", trial_concurrency=0, trial_queue_size=10_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def recommendation(client: TestClient) -> dict[str, Any]:
    rec: dict[str, Any] = client.post("/recommend", json={"architecture": "bert", "goal": "fine_tuning"}).json()
    assert rec["optimizer"]["name"] == "adamw", rec["optimizer"]
    return rec


def _body(path: str, rec: dict[str, Any]) -> dict[str, Any]:
    if path == "/trials":
        return {"recommendation": rec, "steps": 10}
    return {"symptoms": ["overfitting"], "recommendation": rec}


@pytest.mark.parametrize("path", ["/trials", "/diagnose"])
@pytest.mark.parametrize("value", [None, *HUGE], ids=["valid", *HUGE_IDS])
@pytest.mark.parametrize("field", list(FIELDS))
def test_huge_numbers_are_a_422_naming_the_field(
    client: TestClient, recommendation: dict[str, Any], path: str, field: str, value: int | None
) -> None:
    rec = copy.deepcopy(recommendation)
    hp = rec["optimizer"]["hyperparameters"]
    valid = 0.999 if field == "betas" else FIELDS[field]  # betas: the second of [0.9, value]
    rec["optimizer"]["hyperparameters"] = _with(hp, field, valid if value is None else value)
    r = client.post(path, json=_body(path, rec))
    if value is None:
        assert r.status_code == (202 if path == "/trials" else 200), r.text
        return
    assert r.status_code == 422, r.text
    issues = r.json()["error"]["issues"]
    assert [(i["field"], i["message"]) for i in issues] == [(_where(field), BEYOND_FLOAT)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"train_loss": [2.0, 10**400]}, "train_loss[1]"),
        ({"val_loss": [-(2**1024)]}, "val_loss[0]"),
        ({"symptoms": ["overfitting"], "profile": {"num_parameters": 10**400}}, "profile.num_parameters"),
    ],
    ids=["train_loss", "val_loss", "profile"],
)
def test_other_diagnose_numbers(client: TestClient, body: dict[str, Any], field: str) -> None:
    r = client.post("/diagnose", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["issues"][0]["field"] == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"train_loss": [2.3, 2.0, 10**400]}, "train_loss[2]"),
        ({"train_loss": [2.3, 2.0], "val_loss": [SMALLEST_HUGE]}, "val_loss[0]"),
        (
            {"symptoms": ["overfitting"], "rec_field": "weight_decay"},
            "recommendation.optimizer.hyperparameters.weight_decay",
        ),
        ({"symptoms": ["divergence"], "rec_field": "lr"}, "recommendation.optimizer.hyperparameters.lr"),
    ],
    ids=["train_loss", "val_loss", "weight_decay", "lr"],
)
def test_rules_diagnose_refuses_huge_numbers(
    recommendation: dict[str, Any], kwargs: dict[str, Any], field: str
) -> None:
    """The Python API (no HTTP layer in front) names the field too, where float() once raised OverflowError."""
    kwargs = dict(kwargs)
    rec_field = kwargs.pop("rec_field", None)
    if rec_field is not None:
        rec = copy.deepcopy(recommendation)
        rec["optimizer"]["hyperparameters"][rec_field] = 10**400
        kwargs["recommendation"] = rec
    with pytest.raises(ProfileError) as info:
        diagnose(**kwargs)
    assert [i.field for i in info.value.issues] == [field]
    assert info.value.issues[0].message == BEYOND_FLOAT


def test_rules_diagnose_still_takes_the_valid_recommendation(recommendation: dict[str, Any]) -> None:
    dx = diagnose(symptoms=["overfitting"], recommendation=recommendation)
    assert dx.based_on == "recommendation"
