"""POST /diagnose: loss curves and/or named symptoms -> findings and a revised Recommendation (pure Python)."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, Strict

from optirec.rules import Profile, Recommendation, default_rulebook
from optirec.rules.diagnose import Diagnosis, diagnose
from optirec.rules.errors import FieldIssue, ProfileError, suggest
from optirec.rules.numbers import INTEGRAL
from optirec.rules.profile import issues_from_errors

from ..deps import JSON_BODY
from ..handlers import MAX_ISSUES, error_response, error_responses, issues_message

#: The longest curve accepted (principles.toml [diagnosis] max_points), read once when the service starts.
_SETTINGS = default_rulebook().diagnosis
MAX_POINTS = _SETTINGS.max_points if _SETTINGS is not None else 100_000
Loss = Annotated[float, Field(strict=True)] | None
#: a step as JSON sends it: an integer (4.0 is one; 1.5, "7" and true are refused, naming the element)
Step = Annotated[int, Strict(), Field(ge=0, le=2**53), INTEGRAL]


def _symptom_schema(schema: dict[str, Any]) -> None:
    """The symptom names as the items' enum (the server also takes their labels and aliases)."""
    names = sorted(default_rulebook().symptoms)
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "array":
            option["items"] = {"type": "string", "enum": names}


def _request_schema(schema: dict[str, Any]) -> None:
    """Something to diagnose (a curve or a symptom); steps only with their curve (their count must equal its
    points, which JSON schema cannot say)."""
    # a step list (null is "not given") needs its curve as a list (null is not one)
    schema["dependentSchemas"] = {
        steps: {
            "anyOf": [
                {"properties": {steps: {"type": "null"}}},
                {"required": [curve], "properties": {curve: {"type": "array"}}},
            ]
        }
        for steps, curve in (("steps", "train_loss"), ("val_steps", "val_loss"))
    }
    schema["anyOf"] = [
        {"required": ["train_loss"], "properties": {"train_loss": {"type": "array"}}},
        {"required": ["val_loss"], "properties": {"val_loss": {"type": "array"}}},
        {"required": ["symptoms"], "properties": {"symptoms": {"type": "array", "minItems": 1}}},
    ]


def _nullable_ref(component: str) -> Callable[[dict[str, Any]], None]:
    """The field's schema as the component it is validated as (the server parses the object itself, to name
    its fields in a 422), so a client generated from the schema sends what the server takes."""

    def state(schema: dict[str, Any]) -> None:
        description = schema.get("description")
        schema.clear()
        schema["anyOf"] = [{"$ref": f"#/components/schemas/{component}"}, {"type": "null"}]
        if description:
            schema["description"] = description

    return state


class DiagnoseRequest(BaseModel):
    """What a training job saw. Give a curve, named symptoms, or both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_request_schema)

    train_loss: list[Loss] | None = Field(
        default=None,
        max_length=MAX_POINTS,
        json_schema_extra={"minItems": 1},
        description="Training loss per step; null where it was NaN/inf (NaN literals are not JSON).",
        examples=[[2.3, 1.9, 1.7, 1.6, None]],
    )
    val_loss: list[Loss] | None = Field(
        default=None,
        max_length=MAX_POINTS,
        json_schema_extra={"minItems": 1},
        description="Validation loss (one point or more): at val_steps, else spread evenly over the training points.",
    )
    steps: list[Step] | None = Field(
        default=None,
        max_length=MAX_POINTS,
        description="The step of each train_loss point (integers >= 0, strictly increasing, one per point); every "
        "finding quotes these. Default: the index of the point.",
        examples=[[100, 200, 300, 400, 500]],
    )
    val_steps: list[Step] | None = Field(
        default=None,
        max_length=MAX_POINTS,
        description="The step of each val_loss point, in the numbering of steps (for evaluations that are not "
        "evenly spaced); same rules as steps.",
    )
    symptoms: list[str] | None = Field(
        default=None,
        max_length=32,
        json_schema_extra=_symptom_schema,
        description="Symptom names (004 §6.4.1 rows, GET /rules), e.g. ['overfitting'].",
    )
    recommendation: dict[str, Any] | None = Field(
        default=None,
        description="The recommendation the job trained with (POST /recommend's answer).",
        json_schema_extra=_nullable_ref("Recommendation"),
    )
    profile: dict[str, Any] | None = Field(
        default=None,
        description="The job's Profile, used when no recommendation is given.",
        json_schema_extra=_nullable_ref("Profile"),
    )


_MAX_STEP = 2**53


#: names people give these fields (CSV headers, other tools' logs) -> the field
_ALIASES = {
    "loss": "train_loss",
    "losses": "train_loss",
    "train": "train_loss",
    "training_loss": "train_loss",
    "val": "val_loss",
    "eval_loss": "val_loss",
    "valid_loss": "val_loss",
    "validation_loss": "val_loss",
    "step": "steps",
    "iteration": "steps",
    "iterations": "steps",
    "epoch": "steps",
    "epochs": "steps",
    "eval_steps": "val_steps",
    "symptom": "symptoms",
}
#: what each list field holds, for a value that is not a list
_LISTS = {
    "train_loss": "a list of numbers (null where the loss was NaN/inf)",
    "val_loss": "a list of numbers (null where the loss was NaN/inf)",
    "steps": "a list of integers >= 0, one per train_loss point",
    "val_steps": "a list of integers >= 0, one per val_loss point",
    "symptoms": "a list of symptom names",
}


def _request_issues(errors: Sequence[Mapping[str, Any]]) -> list[FieldIssue] | None:
    """The body's validation errors naming the DiagnoseRequest's own fields (the shared handler lists a
    Profile's); None for malformed JSON, which the shared handler words."""
    fields = list(DiagnoseRequest.model_fields)
    issues: list[FieldIssue] = []
    rest: list[dict[str, Any]] = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        etype = err.get("type")
        if etype == "json_invalid":
            return None
        if not loc:
            issues.append(FieldIssue(field="body", message="must be a JSON object", valid=fields))
            continue
        name = str(loc[0])
        if etype == "extra_forbidden" and len(loc) == 1:
            home = next(
                (k for k, m in (("profile", Profile), ("recommendation", Recommendation)) if name in m.model_fields),
                None,
            )
            where = f"; {name!r} is a {home} field and goes under {home!r}" if home else ""
            hint = _ALIASES.get(name.strip().lower().replace("-", "_").replace(" ", "_")) or suggest(name, fields)
            issues.append(FieldIssue(field=name, message="unknown field" + where, valid=fields, suggestion=hint))
        elif name in ("steps", "val_steps") and len(loc) == 2:
            shown = repr(err.get("input"))[:40]
            issues.append(
                FieldIssue(field=f"{name}[{loc[1]}]", message=f"must be an integer from 0 to {_MAX_STEP} (got {shown})")
            )
        elif name in _LISTS and len(loc) == 1 and etype == "list_type":
            shown = repr(err.get("input"))[:40]
            valid = sorted(default_rulebook().symptoms) if name == "symptoms" else None
            issues.append(FieldIssue(field=name, message=f"must be {_LISTS[name]} (got {shown})", valid=valid))
        else:
            rest.append({**err, "loc": tuple(loc)})
    return issues + issues_from_errors(rest, fields)


class DiagnoseRoute(APIRoute):
    """Validation errors of POST /diagnose name its own fields, with "did you mean" over them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = exc.errors()
                issues = _request_issues(errors[:MAX_ISSUES])
                if issues is None:
                    raise
                return error_response(422, "invalid_input", issues_message(issues, len(errors)), issues)

        return route


router = APIRouter(prefix="/diagnose", tags=["diagnose"], route_class=DiagnoseRoute)


def _finite_or_null(name: str, values: list[float | None] | None) -> None:
    for i, v in enumerate(values or []):
        if v is not None and not math.isfinite(v):
            raise ProfileError(
                [
                    FieldIssue(
                        field=f"{name}[{i}]",
                        message="NaN and Infinity are not valid JSON numbers; send null for a non-finite loss",
                    )
                ]
            )


@router.post(
    "",
    response_model=Diagnosis,
    dependencies=JSON_BODY,
    summary="Diagnose a training run and revise its recommendation",
    responses=error_responses(413, 415, 422),
)
def post_diagnose(body: DiagnoseRequest) -> Diagnosis:
    """A 422 names the field (train_loss, val_loss, steps, val_steps, symptoms, recommendation.*, profile.*)."""
    _finite_or_null("train_loss", body.train_loss)
    _finite_or_null("val_loss", body.val_loss)
    return diagnose(
        train_loss=body.train_loss,
        val_loss=body.val_loss,
        steps=body.steps,
        val_steps=body.val_steps,
        symptoms=body.symptoms,
        recommendation=body.recommendation,
        profile=body.profile,
    )
