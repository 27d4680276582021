"""The Recommendation as a contract for hand-written and edited answers (issue 23).

A field left out means what it says when empty (rules/recommendation.py), so a minimal hand-written
Recommendation validates and ``build()`` turns it into torch objects; a wrong one is refused with one
"field.path: what is wrong; valid values ..." line per field, never pydantic's report.  The engine still
spells out every field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from optirec.optimizers import build
from optirec.optimizers.builder import as_recommendation
from optirec.optimizers.errors import BuildError, ExportError
from optirec.optimizers.exporters import export, to_hf
from optirec.rules import Recommendation, recommend
from optirec.rules.profile import issues_from_errors

_SCHEDULES = "constant, step, cosine, linear, exponential, one_cycle, cosine_restarts, inverse_sqrt, poly"
_TOP = (
    "optimizer, schedule, batch_size, lr_scaling, gradient_clipping, param_groups, alternatives, avoid, rationale, "
    "warnings, memory, search_space, tuning, phases, ema, notes, profile, rulebook, recipe"
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))


# (id, hand-written recommendation, optimizer class, scheduler class or None, clipping, weight decays by group)
VALID: list[tuple[str, dict[str, Any], type[Any], str | None, float | None, list[float]]] = [
    (
        "issue-example",
        {"optimizer": {"name": "adam", "hyperparameters": {"lr": 1e-3}}, "schedule": {"name": "constant"}},
        torch.optim.Adam,
        "ConstantLR",
        None,
        [0.0],
    ),
    (
        "optimizer-only",
        {"optimizer": {"name": "sgd", "hyperparameters": {"lr": 0.1}}},
        torch.optim.SGD,
        "ConstantLR",
        None,
        [0.0],
    ),
    ("no-hyperparameters", {"optimizer": {"name": "adamw"}}, torch.optim.AdamW, "ConstantLR", None, [0.01]),
    (
        "cosine-with-steps-and-clipping",
        {
            "optimizer": {"name": "sgd_momentum", "hyperparameters": {"lr": 0.1, "momentum": 0.9}},
            "schedule": {"name": "cosine", "total_steps": 100},
            "gradient_clipping": {"max_norm": 1.0},
        },
        torch.optim.SGD,
        "CosineAnnealingLR",
        1.0,
        [0.0],
    ),
    (
        "param-group-without-why",
        {
            "optimizer": {"name": "adamw", "hyperparameters": {"lr": 1e-3, "weight_decay": 0.1}},
            "param_groups": [{"name": "no_decay", "match": ["bias", "LayerNorm"]}],
        },
        torch.optim.AdamW,
        "ConstantLR",
        None,
        [0.1, 0.0],
    ),
]


@pytest.mark.parametrize(
    ("rec", "cls", "scheduler", "clipping", "decays"), [v[1:] for v in VALID], ids=[v[0] for v in VALID]
)
def test_a_minimal_hand_written_recommendation_builds(
    rec: dict[str, Any], cls: type[Any], scheduler: str | None, clipping: float | None, decays: list[float]
) -> None:
    built = build(_model(), rec)
    assert type(built.optimizer) is cls
    assert type(built.scheduler).__name__ == scheduler
    assert built.clipping == clipping
    assert [g["weight_decay"] for g in built.optimizer.param_groups] == decays
    # what was left out reads as empty, not as an invented value
    parsed = built.recommendation
    assert parsed.lr_scaling is None and parsed.memory is None and parsed.rulebook is None
    assert parsed.alternatives == [] and parsed.warnings == [] and parsed.notes == []
    if "schedule" not in rec:
        assert parsed.schedule.name == "constant" and parsed.schedule.warmup_ratio == 0.0


# (id, hand-written recommendation, the lines of the error, one per wrong field)
INVALID: list[tuple[str, Any, list[str]]] = [
    (
        "no-optimizer",
        {"schedule": {"name": "constant"}},
        ["optimizer: required: a JSON object with the fields name, hyperparameters"],
    ),
    (
        "misspelt-optimizer-field",
        {"optimizer": {"nme": "adam"}},
        [
            "optimizer.name: required",
            "optimizer.nme: unknown field (did you mean 'name'?); valid values: name, hyperparameters",
        ],
    ),
    (
        "optimizer-as-a-string",
        {"optimizer": "adam"},
        ["optimizer: must be a JSON object with the fields name, hyperparameters (got 'adam')"],
    ),
    (
        "misspelt-schedule",
        {"optimizer": {"name": "adam"}, "schedule": {"name": "cosin"}},
        [f"schedule.name: unknown value 'cosin' (did you mean 'cosine'?); valid values: {_SCHEDULES}"],
    ),
    (
        "batch-size-text",
        {"optimizer": {"name": "adam"}, "batch_size": "big"},
        ["batch_size: must be a valid integer (got 'big')"],
    ),
    (
        "clipping-as-a-number",
        {"optimizer": {"name": "adam"}, "gradient_clipping": 1.0},
        ["gradient_clipping: must be a JSON object with the fields max_norm (got 1.0)"],
    ),
    (
        "param-group-without-match",
        {"optimizer": {"name": "adam"}, "param_groups": [{"name": "no_decay"}]},
        ["param_groups[0].match: required"],
    ),
    (
        "unknown-top-level-field",
        {"optimizer": {"name": "adam"}, "shedule": {"name": "constant"}},
        [f"shedule: unknown field (did you mean 'schedule'?); valid values: {_TOP}"],
    ),
    (
        "several-fields-wrong",
        {
            "optimizer": {"name": "adam", "hyperparameters": []},
            "schedule": {"name": "cosine", "warmup_ratio": "x"},
            "alternatives": [{"name": "sgd"}],
        },
        [
            "optimizer.hyperparameters: must be a JSON object",
            "schedule.warmup_ratio: must be a valid number (got 'x')",
            "alternatives[0].score: required",
            "alternatives[0].why: required",
        ],
    ),
    ("not-an-object", [], ["recommendation: must be a Recommendation or its JSON object, not list"]),
]


@pytest.mark.parametrize(("rec", "lines"), [v[1:] for v in INVALID], ids=[v[0] for v in INVALID])
def test_an_invalid_recommendation_gets_one_line_per_field(rec: Any, lines: list[str]) -> None:
    with pytest.raises(BuildError) as info:
        build(_model(), rec)
    err = info.value
    assert str(err).splitlines() == lines
    assert [issue.sentence() for issue in err.issues] == lines
    assert f"{err.field}: {err.message}" == lines[0]
    for text in ("pydantic", "Field required", "Input should", "For further information"):
        assert text not in str(err)


def test_an_export_of_an_invalid_recommendation_says_the_same() -> None:
    rec = {"optimizer": {"nme": "adam"}}
    with pytest.raises(ExportError) as info:
        to_hf(rec)
    with pytest.raises(BuildError) as built:
        as_recommendation(rec)
    assert (
        str(info.value).splitlines()
        == str(built.value).splitlines()
        == [
            "optimizer.name: required",
            "optimizer.nme: unknown field (did you mean 'name'?); valid values: name, hyperparameters",
        ]
    )


@pytest.mark.parametrize(
    "profile",
    [
        {},
        {"architecture": "resnet", "batch_size": 1024, "total_steps": 10_000},
        {"domain": "llm", "num_parameters": 7e9},
    ],
    ids=["empty", "resnet", "llm-7b"],
)
def test_the_engine_still_spells_out_every_field(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    body = json.loads(rec.model_dump_json())
    assert list(body) == list(Recommendation.model_fields)
    assert rec.model_fields_set == set(Recommendation.model_fields), "every field is given, none defaulted"
    for field in ("lr_scaling", "memory", "rulebook"):
        assert body[field] is not None, field
    again = as_recommendation(body)
    assert again.model_dump_json() == rec.model_dump_json()


# (format, what a minimal hand-written recommendation without an lr gives: None = it exports, else the refusal)
EXPORTS: list[tuple[str, str | None]] = [
    ("json", None),
    ("torch", None),
    ("lightning", None),
    ("optuna", None),
    ("hf", "cannot express a recommendation without optimizer.hyperparameters.lr"),
    ("timm", "cannot express a schedule without an lr"),
]


@pytest.mark.parametrize(("fmt", "refusal"), EXPORTS, ids=[e[0] for e in EXPORTS])
def test_every_format_exports_or_refuses_a_minimal_recommendation(fmt: str, refusal: str | None) -> None:
    rec = {"optimizer": {"name": "adamw"}, "schedule": {"name": "cosine", "total_steps": 100}}
    if refusal is None:
        assert export(rec, fmt)
        return
    with pytest.raises(ExportError) as info:
        export(rec, fmt)
    assert info.value.field == "format"
    assert refusal in str(info.value) and "\n" not in str(info.value)


# (id, pydantic error location, the issue's field and message): a nested object that is not one is named as itself
NOT_AN_OBJECT: list[tuple[str, tuple[Any, ...], str, str]] = [
    ("the-profile-itself", (), "profile", "must be a JSON object of profile fields"),
    ("the-profile-field", ("profile",), "profile", "must be a JSON object of profile fields"),
    ("a-recommendation-field", ("recommendation.optimizer",), "recommendation.optimizer", "must be a JSON object"),
    ("a-recommendation", ("recommendation",), "recommendation", "must be a JSON object"),
]


@pytest.mark.parametrize(("loc", "field", "message"), [n[1:] for n in NOT_AN_OBJECT], ids=[n[0] for n in NOT_AN_OBJECT])
def test_a_document_field_that_is_not_an_object_is_named(loc: tuple[Any, ...], field: str, message: str) -> None:
    error = {"type": "model_type", "loc": loc, "msg": "Input should be a valid dictionary", "input": "adam"}
    (issue,) = issues_from_errors([error])
    assert (issue.field, issue.message) == (field, message)
