"""The Profile: what a caller knows about a training job (every field optional).

Enumerated fields (domain, architecture, data, goal, rl_method) take the names of
``rules/data/vocabulary.toml`` or their aliases, case-insensitively; anything else is refused with
the valid values and a "did you mean" suggestion.  Numbers are bounded, booleans strict, unknown
fields refused: nothing is accepted silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import FieldIssue, ProfileError, suggest
from .loader import default_rulebook

__all__ = ["ENUM_FIELDS", "Profile", "issues_from_errors", "parse_profile", "profile_field_options"]

#: Profile field -> vocabulary kind it takes values from.
ENUM_FIELDS = {
    "domain": "domain",
    "architecture": "architecture",
    "backbone": "architecture",
    "data": "data",
    "goal": "goal",
    "rl_method": "rl_method",
    "phase": "phase",
    "sharding": "sharding",
    "adapter": "adapter",
    "precision": "precision",
    "optimizer_state_precision": "optimizer_state_precision",
}

_KIND_LABEL = {
    "data": "data characteristic",
    "rl_method": "reinforcement-learning method",
    "phase": "training phase",
    "sharding": "sharding strategy",
    "adapter": "adapter (which weights train)",
    "optimizer_state_precision": "optimizer-state precision",
}
_MAX_PARAMS = 10**13
_MAX_BATCH = 2**26


def _resolve(kind: str, value: Any) -> str:
    book = default_rulebook()
    if not isinstance(value, str):
        raise PydanticCustomError(
            "unknown_value",
            "must be a string, one of the valid values",
            {"valid": book.valid(kind), "kind": kind},
        )
    canonical = book.resolve(kind, value)
    if canonical is None:
        valid = book.valid(kind)
        hint = book.aliases[kind].get(suggest(value, book.aliases[kind]) or "", None)
        raise PydanticCustomError(
            "unknown_value",
            "unknown {kind} '{value}'",
            {"kind": _KIND_LABEL.get(kind, kind), "value": value[:80], "valid": valid, "suggestion": hint},
        )
    return canonical


def _schema_extra(schema: dict[str, Any]) -> None:
    """Put the live vocabulary into the JSON schema (OpenAPI, web form)."""
    book = default_rulebook()
    props = schema.get("properties", {})
    for field, kind in ENUM_FIELDS.items():
        prop = props.get(field)
        if prop is None:
            continue
        values = book.valid(kind)
        if field == "data":
            # a list of names; the validator also takes one name or null (= no characteristics)
            prop["items"] = {"type": "string", "enum": values}
            prop.pop("type", None)
            prop["anyOf"] = [{"type": "array"}, {"type": "string", "enum": values}, {"type": "null"}]
        else:
            prop["anyOf"] = [{"type": "string", "enum": values}, {"type": "null"}]


class Profile(BaseModel):
    """What the caller knows about the training job. Every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_schema_extra)

    domain: str | None = Field(default=None, description="Problem domain (004 §2.2).", examples=["computer_vision"])
    architecture: str | None = Field(
        default=None, description="Model architecture: a row of 004 §2.3 or a generic family.", examples=["resnet"]
    )
    backbone: str | None = Field(
        default=None,
        description="The encoder a self-supervised method trains (an architecture name, e.g. vit or resnet): for "
        "moco, simclr, byol and dino it sets the architecture family the answer is for (MoCo v3 with a ViT trains "
        "like a transformer, with a ResNet like a convnet).",
        examples=["vit"],
    )
    rl_method: str | None = Field(default=None, description="Reinforcement learning: value_based or policy_based.")
    data: list[str] = Field(
        default_factory=list, max_length=16, description="Data characteristics (004 §2.4).", examples=[["noisy"]]
    )
    goal: str | None = Field(default=None, description="Training goal (004 §2.5).", examples=["best_accuracy"])
    num_parameters: int | None = Field(default=None, ge=1, le=_MAX_PARAMS, description="Trainable parameters.")
    batch_size: int | None = Field(default=None, ge=1, le=_MAX_BATCH, description="Global batch size.")
    total_steps: int | None = Field(default=None, ge=1, le=10**10, description="Optimizer steps in the whole run.")
    epochs: int | None = Field(default=None, ge=1, le=10**6)
    steps_per_epoch: int | None = Field(default=None, ge=1, le=10**9)
    dataset_size: int | None = Field(default=None, ge=1, le=10**13, description="Training examples.")
    memory_limited: StrictBool | None = Field(default=None, description="Memory is the binding constraint.")
    device_memory_gb: float | None = Field(
        default=None, gt=0, le=100_000, allow_inf_nan=False, description="Accelerator memory per device, GB."
    )
    on_device: StrictBool | None = Field(default=None, description="Training runs on a phone / edge device.")
    mixed_precision: StrictBool | None = Field(default=None, description="fp16/bf16 autocast training.")
    phase: str | None = Field(
        default=None,
        description="Training phase: pretraining, fine_tuning (from pretrained weights) or from_scratch.",
        examples=["pretraining"],
    )
    num_devices: int | None = Field(default=None, ge=1, le=10**6, description="Accelerators the job trains on.")
    sharding: str | None = Field(
        default=None,
        description="How optimizer state, gradients and weights are split over the devices (none, zero1, zero2, "
        "zero3, fsdp).",
    )
    adapter: str | None = Field(
        default=None,
        description="Which weights train: none (all of them) or lora (low-rank adapters beside frozen pretrained "
        "weights, QLoRA included; num_parameters is then the frozen model's size).",
        examples=["lora"],
    )
    precision: str | None = Field(default=None, description="Weights and gradients: fp32, bf16 or fp16.")
    optimizer_state_precision: str | None = Field(
        default=None, description="Optimizer state: fp32 (4 bytes per value) or 8bit (1 byte)."
    )
    sequence_length: int | None = Field(default=None, ge=1, le=10**8, description="Tokens per training sequence.")
    batch_tokens: int | None = Field(default=None, ge=1, le=10**11, description="Tokens per optimizer step.")
    total_tokens: int | None = Field(default=None, ge=1, le=10**16, description="Training tokens in the whole run.")

    #: what the profile's own words were read as (e.g. goal 'pretraining' -> phase), for the answer's notes
    _readings: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _goal_that_is_a_phase(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """``"goal": "pretraining"`` names a training phase, not a 004 §2.5 goal: it sets ``phase``."""
        reading = None
        if isinstance(data, Mapping) and isinstance(data.get("goal"), str):
            book = default_rulebook()
            said = data["goal"]
            phase = book.resolve("phase", said) if book.resolve("goal", said) is None else None
            given = data.get("phase")
            same = given is None or (isinstance(given, str) and book.resolve("phase", given) == phase)
            if phase is not None and same:
                data = {**data, "goal": None, "phase": phase}
                reading = f"goal '{said[:40]}' is a training phase, not a training goal: read as phase '{phase}'."
        profile = handler(data)
        if reading is not None and isinstance(profile, Profile):
            profile._readings = (reading,)
        return profile

    @field_validator(*(f for f in ENUM_FIELDS if f != "data"), mode="before")
    @classmethod
    def _enum(cls, value: Any, info: Any) -> Any:
        if value is None:
            return None
        if info.field_name == "goal" and isinstance(value, str):
            book = default_rulebook()
            phase = book.resolve("phase", value) if book.resolve("goal", value) is None else None
            if phase is not None:  # _goal_that_is_a_phase moves it unless the profile's phase says otherwise
                raise PydanticCustomError(
                    "unknown_value",
                    "'{value}' is a training phase, not a goal, and it contradicts the profile's phase",
                    {"value": value[:80], "valid": book.valid("goal"), "suggestion": None},
                )
        return _resolve(ENUM_FIELDS[info.field_name], value)

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise PydanticCustomError("list_type", "must be a list of data characteristics", {})
        if len(value) > 16:
            return value  # max_length reports it
        out: list[str] = []
        for item in value:
            canonical = _resolve("data", item)
            if canonical not in out:
                out.append(canonical)
        return out

    @field_validator(
        "num_parameters",
        "batch_size",
        "total_steps",
        "epochs",
        "steps_per_epoch",
        "dataset_size",
        "device_memory_gb",
        "num_devices",
        "sequence_length",
        "batch_tokens",
        "total_tokens",
        mode="before",
    )
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError("number_type", "must be a number, not a boolean", {})
        if isinstance(value, str):
            raise PydanticCustomError("number_type", "must be a JSON number, not a string", {})
        if info.field_name != "device_memory_gb" and isinstance(value, float) and value.is_integer():
            return int(value)  # 7e9 written as a float is still a whole number; the bounds then apply
        return value


def profile_field_options() -> dict[str, list[str]]:
    """Valid values per enumerated Profile field (for forms and error messages)."""
    book = default_rulebook()
    return {field: book.valid(kind) for field, kind in ENUM_FIELDS.items()}


def issues_from_errors(errors: Iterable[Mapping[str, Any]], fields: list[str] | None = None) -> list[FieldIssue]:
    """Pydantic error dicts -> FieldIssues naming the field, the bad value and the valid values.

    ``fields`` are the valid field names of the document (default: the Profile's).
    """
    if fields is None:
        fields = list(Profile.model_fields)
    issues: list[FieldIssue] = []
    for err in errors:
        loc = [str(p) for p in err["loc"]]
        field = loc[0] if loc else "profile"
        if len(loc) > 1 and loc[1].isdigit():
            field = f"{loc[0]}[{loc[1]}]"
        ctx = err.get("ctx") or {}
        etype = err["type"]
        if etype == "extra_forbidden":
            issues.append(
                FieldIssue(
                    field=field, message="unknown field", value=None, valid=fields, suggestion=suggest(loc[0], fields)
                )
            )
        elif etype == "unknown_value":
            issues.append(
                FieldIssue(
                    field=field,
                    message=err["msg"],
                    value=err.get("input"),
                    valid=ctx.get("valid"),
                    suggestion=ctx.get("suggestion"),
                )
            )
        elif etype in ("literal_error", "enum"):
            valid = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            value = err.get("input")
            shown = value if isinstance(value, str | int | float | bool) else None
            issues.append(
                FieldIssue(
                    field=field,
                    message=f"unknown value {shown!r}" if shown is not None else err["msg"],
                    value=shown,
                    valid=valid or None,
                    suggestion=suggest(str(shown), valid) if valid and isinstance(shown, str) else None,
                )
            )
        elif etype in ("model_type", "dict_type", "model_attributes_type") and field != "profile":
            # a nested object of another document (e.g. recommendation.optimizer): name it, not the profile
            issues.append(FieldIssue(field=field, message="must be a JSON object"))
        elif etype in ("model_type", "dict_type", "model_attributes_type"):
            issues.append(FieldIssue(field="profile", message="must be a JSON object of profile fields", valid=fields))
        else:
            value = err.get("input")
            message = err["msg"]
            if isinstance(value, str | int | float | bool) and not isinstance(value, dict):
                shown = repr(value[:80] if isinstance(value, str) else value)
                message = f"{message} (got {shown})"
            else:
                value = None
            issues.append(FieldIssue(field=field, message=message, value=value))
    return issues


def parse_profile(profile: Profile | Mapping[str, Any] | None = None, **fields: Any) -> Profile:
    """A validated Profile from a mapping and/or keyword fields; raises ProfileError."""
    if isinstance(profile, Profile) and not fields:
        return profile
    if isinstance(profile, Profile):
        data: Any = {**profile.model_dump(exclude_defaults=True), **fields}
    elif profile is None:
        data = fields
    elif isinstance(profile, Mapping):
        data = {**profile, **fields} if fields else profile
    else:
        raise ProfileError([FieldIssue(field="profile", message="must be a JSON object of profile fields")])
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(issues_from_errors(exc.errors(include_url=False))) from None
