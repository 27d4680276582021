"""Exceptions raised by the torch side of optirec.

    OptirecError                      (optirec.rules.errors)
     └── BuildError (ValueError)      a recommendation cannot be turned into torch objects as asked
          ├── NewtonTooLarge          Newton's exact Hessian would not fit (O(n^2) memory)
          └── ExportError             a format cannot express a recommendation

Each carries ``field`` (what to change), ``message`` and ``issues`` (one :class:`FieldIssue` per wrong field);
``str(err)`` is "field: message", one such line per field when several are wrong (``recommendation_error``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from optirec.rules.errors import FieldIssue, OptirecError, suggest
from optirec.rules.recommendation import Recommendation

__all__ = ["BuildError", "ExportError", "NewtonTooLarge", "recommendation_error"]


class BuildError(OptirecError, ValueError):
    """A recommendation (or its use) cannot be built into torch objects."""

    def __init__(self, field: str, message: str, issues: Sequence[FieldIssue] = ()) -> None:
        self.field = field
        self.message = message
        self.issues = list(issues) or [FieldIssue(field=field, message=message)]
        super().__init__("\n".join(issue.sentence() for issue in self.issues))

    @classmethod
    def from_issues(cls, issues: Sequence[FieldIssue]) -> BuildError:
        """One error for several wrong fields: ``field`` and ``message`` are the first one's."""
        first = issues[0]
        return cls(first.field, first.sentence().removeprefix(f"{first.field}: "), issues)


class NewtonTooLarge(BuildError):
    """Newton's method was asked for more parameters than its exact Hessian can hold."""

    def __init__(self, num_parameters: int, limit: int) -> None:
        super().__init__(
            "num_parameters",
            f"Newton's method needs an exact Hessian of {num_parameters:,}^2 = {num_parameters**2:,} values "
            f"(O(n^2) memory); it is refused above {limit:,} parameters",
        )
        self.num_parameters = num_parameters
        self.limit = limit


class ExportError(BuildError):
    """A recommendation cannot be expressed in the requested export format."""


def recommendation_error(exc: ValidationError, error: type[BuildError] = BuildError) -> BuildError:
    """A Recommendation that did not validate -> ``error`` with one line per wrong field: the dotted path
    (``param_groups[0].name``), what is wrong, and the valid field names or values where there is a list."""
    issues = [_issue(err) for err in exc.errors(include_url=False)]
    return error.from_issues(issues or [FieldIssue(field="recommendation", message="not a valid Recommendation")])


def _issue(err: Mapping[str, Any]) -> FieldIssue:
    loc = tuple(err.get("loc", ()))
    field = _dotted(loc) or "recommendation"
    etype = err.get("type")
    value = err.get("input")
    if etype == "extra_forbidden":
        valid = _field_names(_model_at(loc[:-1]))
        return FieldIssue(field, "unknown field", valid=valid, suggestion=suggest(str(loc[-1]), valid))
    if etype == "missing":
        fields = _field_names(_model_at(loc))
        return FieldIssue(field, f"required: {_object(fields)}" if fields else "required")
    if etype in ("model_type", "model_attributes_type", "dict_type"):
        return FieldIssue(field, f"must be {_object(_field_names(_model_at(loc)))}{_got(value)}")
    if etype == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        valid = [v.strip().strip("'") for v in str(expected).replace(" or ", ", ").split(",") if v.strip()]
        shown = f" {value[:80]!r}" if isinstance(value, str) else _got(value)
        return FieldIssue(field, f"unknown value{shown}", valid=valid, suggestion=suggest(value, valid))
    message = str(err.get("msg", "is not valid"))
    if message.startswith("Input should be"):
        message = "must be" + message.removeprefix("Input should be")
    elif message[:1].isupper():
        message = message[0].lower() + message[1:]
    return FieldIssue(field, message + _got(value))


def _object(fields: list[str]) -> str:
    return f"a JSON object with the fields {', '.join(fields)}" if fields else "a JSON object"


def _got(value: Any) -> str:
    if isinstance(value, str):
        return f" (got {value[:80]!r})"
    if isinstance(value, bool | int | float):
        return f" (got {value!r})"
    if value is not None and not isinstance(value, Mapping | list | tuple):
        return f" (got {type(value).__name__})"
    return ""


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model a path of a Recommendation points into (list indices skipped), or None past a plain value."""
    model: type[BaseModel] | None = Recommendation
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        info = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        model = _model_in(info.annotation) if info is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union, list):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _field_names(model: type[BaseModel] | None) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()] if model is not None else []
