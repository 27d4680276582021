"""The trial contract, torch-free: what a client submits (TrialRequest) and what it reads back (TrialStatus).

The service, the httpx client and the CLI share these models. The workload catalog is kept here as a
constant so that the API process can validate names without importing torch; a test checks that it
equals the live registry ``optirec.optimizers.workloads.WORKLOADS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from optirec.optimizers.results import TrialOutput
from optirec.rules import Profile, Recommendation
from optirec.rules.errors import FieldIssue, suggest
from optirec.rules.numbers import JsonInt
from optirec.rules.profile import issues_from_errors

__all__ = [
    "DEVICES",
    "FINISHED",
    "WORKLOAD_CATALOG",
    "WORKLOAD_NAMES",
    "TrialProgress",
    "TrialRequest",
    "TrialState",
    "TrialStatus",
    "WorkloadInfo",
    "request_issues",
]

#: Workload name -> one-line description; equal to the live registry (checked by a test), sorted by name.
WORKLOAD_CATALOG: dict[str, str] = {
    "cnn": "residual CNN (BatchNorm, skip connections) classifying scikit-learn's digits",
    "dqn": "DQN-style Q-learning (replay + target network) on a chain MDP, scored against Q*",
    "gan": "GAN (generator + discriminator MLPs) on a 2-D mixture of 8 Gaussians",
    "mlp": "MLP on scikit-learn's diabetes data: regression, or a rare-outcome classifier",
    "recommender": "user/item embeddings + MLP tower predicting clicks on Zipf-popular synthetic items",
    "rnn": "LSTM/GRU forecasting a synthetic seasonal series one step ahead",
    "transformer_lm": "causal character-level transformer LM on Python standard-library source",
    "unet": "two-level U-Net segmenting synthetic circles and rectangles on noise",
    "vit": "vision transformer (patches + transformer encoder) classifying scikit-learn's digits",
}
#: What ``workload`` accepts: ``auto`` (the proxy matching the profile) or a registry name.
WORKLOAD_NAMES: tuple[str, ...] = ("auto", *WORKLOAD_CATALOG)
#: What ``device`` accepts.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: The most candidates a race may run (the recommendation and its top alternatives).
MAX_RACE = 4
#: A validate trial's budget, in runs of its ``steps`` (optirec.optimizers.validation.DEFAULT_RUNS).
VALIDATE_RUNS = 4
#: Workloads validate() cannot search: more than one player, each with its own optimizer.
SINGLE_OBJECTIVE_ONLY: tuple[str, ...] = ("gan",)

TrialState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: States a trial never leaves.
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


def _one_of(kind: str, value: Any, valid: Sequence[str]) -> str:
    if isinstance(value, str) and value in valid:
        return value
    shown = value[:80] if isinstance(value, str) else value
    raise PydanticCustomError(
        "unknown_value",
        "unknown {kind} '{value}'",
        {"kind": kind, "value": shown, "valid": list(valid), "suggestion": suggest(value, valid)},
    )


def _enum_schema(values: Sequence[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


class TrialRequest(BaseModel):
    """A trial run to queue: a Profile (the service recommends) or a Recommendation, and how to run it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        # "exactly one of profile or recommendation" (the model validator below), stated in the schema as well
        # and "validate, not race" and "validate, not on a two-player workload" (the same validator)
        json_schema_extra={
            "oneOf": [
                {"required": ["profile"], "properties": {"profile": {"type": "object"}}},
                {"required": ["recommendation"], "properties": {"recommendation": {"type": "object"}}},
            ],
            "allOf": [
                {
                    "not": {
                        "required": ["validate", "race"],
                        "properties": {"validate": {"const": True}, "race": {"minimum": 1}},
                    }
                },
                {
                    "not": {
                        "required": ["validate", "workload"],
                        "properties": {"validate": {"const": True}, "workload": {"enum": list(SINGLE_OBJECTIVE_ONLY)}},
                    }
                },
            ],
        },
    )

    profile: Profile | None = Field(default=None, description="The job; the service recommends for it.")
    recommendation: Recommendation | None = Field(
        default=None, description="A Recommendation as POST /recommend returned it (instead of a profile)."
    )
    workload: str = Field(
        default="auto",
        description="'auto' (the proxy matching the profile) or a name from GET /workloads.",
        json_schema_extra=_enum_schema(WORKLOAD_NAMES),
    )
    steps: JsonInt = Field(default=200, ge=1, description="Optimizer steps (at most the server's limit).")
    device: str = Field(
        default="auto",
        description="'auto' (CUDA when available), 'cpu' or 'cuda'.",
        json_schema_extra=_enum_schema(DEVICES),
    )
    seed: JsonInt = Field(default=0, ge=0, le=2**32 - 1)
    size: JsonInt = Field(
        default=1,
        ge=1,
        description=(
            "Workload scale (at most the server's limit). A trial whose peak memory, estimated from its "
            "workload, size and steps before it starts, passes the server's trial memory limit is refused "
            "with a 422 that names the estimate and the limit."
        ),
    )
    race: JsonInt = Field(
        default=0,
        ge=0,
        le=MAX_RACE,
        description="0: the recommendation only; k > 0: race it and its top alternatives, k candidates in all.",
    )
    search: bool = Field(
        default=False,
        alias="validate",
        strict=True,
        description="true: optirec.validate() on the proxy workload instead of one run: a successive-halving "
        "search over the recommendation's lr grid, its alternatives and the learning-rate-free optimizers, "
        f"within {VALIDATE_RUNS} runs of `steps`; the result is {{'validation': ValidationReport}}.",
    )

    @field_validator("workload", mode="before")
    @classmethod
    def _workload(cls, value: Any) -> str:
        return _one_of("workload", value, WORKLOAD_NAMES)

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> str:
        return _one_of("device", value, DEVICES)

    @model_validator(mode="after")
    def _exactly_one(self) -> TrialRequest:
        if (self.profile is None) == (self.recommendation is None):
            raise PydanticCustomError(
                "profile_or_recommendation", "give exactly one of 'profile' or 'recommendation'", {}
            )
        if self.search and self.race:
            raise PydanticCustomError(
                "validate_or_race", "give 'validate': true or 'race': k, not both (each compares candidates)", {}
            )
        if self.search and self.workload in SINGLE_OBJECTIVE_ONLY:
            raise PydanticCustomError(
                "validate_workload",
                "the {workload} workload trains two players; validate searches one objective: pick another workload",
                {"workload": self.workload},
            )
        return self


class TrialProgress(BaseModel):
    """Steps done out of the total (all candidates of a race together) and the last training loss."""

    steps_done: int
    steps_total: int
    loss: float | None = None


class TrialStatus(BaseModel):
    """A trial as the service knows it. ``result`` is a TrialResult, a RaceOutcome (``{"ranked": [...]}``) for a
    race or a ValidationOutcome (``{"validation": ...}``) for a validate() search (optirec.optimizers.results)."""

    id: str
    status: TrialState
    progress: TrialProgress
    request: dict[str, Any] = Field(description="The submitted TrialRequest.")
    result: TrialOutput | None = Field(
        default=None,
        description="A TrialResult for one run, {'ranked': [RaceEntry, ...], 'warnings': [...]} for a race, or "
        "{'validation': ValidationReport | null, 'workload': {...}, 'warnings': [...]} for a validate() search; "
        "a diverged run is a finished trial whose result says diverged.",
    )
    error: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    worker_pid: int | None = Field(default=None, description="The worker process running it (while running).")

    @property
    def finished(self) -> bool:
        """True once the trial can no longer change."""
        return self.status in FINISHED


class WorkloadInfo(BaseModel):
    """One proxy workload a trial can run on."""

    name: str
    description: str


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside a field's type: ``Schedule``, ``Schedule | None``, ``list[ParamGroup]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model whose field the last part of ``loc`` would be (TrialRequest at the top; list indexes skipped)."""
    model: type[BaseModel] = TrialRequest
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = model.model_fields
        info = fields.get(str(part)) or next((f for f in fields.values() if f.alias == part), None)
        found = _nested_model(info.annotation) if info is not None else None
        if found is None:
            return None
        model = found
    return model


def _belongs_under(name: str) -> str:
    """For a top-level field that is a Profile's or a Recommendation's: where it goes (a flat body is a common
    first try: ``{"architecture": "resnet", "steps": 50}``)."""
    for key, model in (("profile", Profile), ("recommendation", Recommendation)):
        if name in _field_names(model):
            return f'; {name!r} is a {key} field and goes under {key!r}: send {{"{key}": {{"{name}": ...}}, ...}}'
    return ""


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _field_names(model: type[BaseModel]) -> list[str]:
    """The names a client spells (the alias where a field has one)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def request_issues(errors: Iterable[Mapping[str, Any]]) -> list[FieldIssue]:
    """Pydantic/FastAPI errors of a trial request -> FieldIssues with dotted field paths and the valid values."""
    issues: list[FieldIssue] = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path"):
            where, loc = loc[0], loc[1:]
        else:
            where = "body"
        etype = err.get("type")
        field = _dotted(loc)
        if etype == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "malformed JSON")
            issues.append(FieldIssue(field="body", message=f"not valid JSON ({reason})"))
        elif etype == "missing" and not loc:
            issues.append(FieldIssue(field="body", message="a JSON object is required"))
        elif etype in ("model_type", "model_attributes_type", "dict_type") and not loc and where == "body":
            issues.append(FieldIssue(field="body", message="must be a JSON object", valid=_field_names(TrialRequest)))
        elif etype == "validate_or_race":
            issues.append(FieldIssue(field="validate", message=str(err["msg"]), valid=["validate", "race"]))
        elif etype == "validate_workload":
            searchable = [w for w in WORKLOAD_NAMES if w not in SINGLE_OBJECTIVE_ONLY]
            issues.append(FieldIssue(field="workload", message=str(err["msg"]), valid=searchable))
        elif etype == "profile_or_recommendation":
            issues.append(FieldIssue(field="profile", message=str(err["msg"]), valid=["profile", "recommendation"]))
        elif etype == "extra_forbidden":
            name = str(loc[-1]) if loc else ""
            model = _model_at(loc)
            valid = _field_names(model) if model is not None else None
            issues.append(
                FieldIssue(
                    field=field,
                    message="unknown field" + (_belongs_under(name) if len(loc) == 1 else ""),
                    valid=valid,
                    suggestion=suggest(name, valid) if valid else None,
                )
            )
        else:
            issue = issues_from_errors([{**err, "loc": (field or "body",)}], fields=[])[0]
            issues.append(issue)
    return issues
