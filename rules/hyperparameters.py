"""What a recommendation's hyperparameters and optimizer names may be, torch-free: the checks POST /trials makes
before any worker builds an optimizer, and the same constraints as JSON schema (openapi.yaml), so that a client
generated from the schema sends what the server accepts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import FieldIssue
from .numbers import BEYOND_FLOAT, beyond_float, finite_float

__all__ = [
    "HYPERPARAMETER_NAME",
    "HYPERPARAMETER_RANGES",
    "hyperparameter_issues",
    "hyperparameters_schema",
    "in_range",
    "optimizer_name_schema",
]

#: What a hyperparameter name may look like: a Python keyword argument (torch.optim's names all are).
HYPERPARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: name -> (lowest, lowest allowed?, highest, highest allowed?) for the hyperparameters every family shares
HYPERPARAMETER_RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "lr": (0.0, False, math.inf, False),
    "weight_decay": (0.0, True, math.inf, False),
    "eps": (0.0, True, math.inf, False),
    "momentum": (0.0, True, 1.0, True),
    "dampening": (0.0, True, 1.0, True),
}


def in_range(value: Any, bounds: tuple[float, bool, float, bool]) -> bool:
    """Whether ``value`` is a finite number inside ``bounds`` (see HYPERPARAMETER_RANGES)."""
    low, low_ok, high, high_ok = bounds
    x = finite_float(value)
    if x is None:
        return False
    return (low < x or (low_ok and x == low)) and (x < high or (high_ok and x == high))


def _number_schema(bounds: tuple[float, bool, float, bool]) -> dict[str, Any]:
    low, low_ok, high, high_ok = bounds
    schema: dict[str, Any] = {"type": "number", "minimum" if low_ok else "exclusiveMinimum": low}
    if not math.isinf(high):
        schema["maximum" if high_ok else "exclusiveMaximum"] = high
    return schema


def hyperparameters_schema(schema: dict[str, Any]) -> None:
    """A hyperparameters object's JSON schema: keyword-argument names, the shared ranges, betas in [0, 1)."""
    props: dict[str, Any] = {name: _number_schema(bounds) for name, bounds in HYPERPARAMETER_RANGES.items()}
    props["lr"] = {"anyOf": [props["lr"], {"type": "null"}]}  # null: the optimizer's own relative step (Adafactor)
    props["betas"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 3,
        "items": {"anyOf": [{"type": "number", "minimum": 0, "exclusiveMaximum": 1}, {"type": "null"}]},
    }
    base: dict[str, Any] = {"type": "string"}
    optimizer_name_schema(base)  # a wrapper's base optimizer (lookahead, sam) is a catalog name as well
    props["base"] = {"anyOf": [base, {"type": "null"}]}  # null: the wrapper's own default base
    schema["properties"] = props
    schema["propertyNames"] = {"pattern": f"^{HYPERPARAMETER_NAME.pattern}$"}


def optimizer_name_schema(schema: dict[str, Any]) -> None:
    """An optimizer name's JSON schema: the live catalog's canonical names (GET /optimizers; the server also
    takes their aliases, which a generated client has no need to send)."""
    from .loader import default_rulebook  # the rulebook loads once, when a schema is first asked for

    names = default_rulebook().valid("optimizer")
    target = schema
    if "anyOf" in schema:  # str | None
        target = next((s for s in schema["anyOf"] if s.get("type") == "string"), schema)
    target["enum"] = names


def hyperparameter_issues(hyperparameters: Any, field: str) -> list[FieldIssue]:
    """Torch-free sanity checks of a recommendation's hyperparameters, before any worker builds them.

    Names must be keyword-argument names (the build then accepts only the ones the optimizer class takes);
    ``lr`` > 0 (or null, e.g. Adafactor's relative step), ``weight_decay`` and ``eps`` >= 0, ``momentum`` and
    ``dampening`` in [0, 1], each of ``betas`` in [0, 1). Anything else is for the optimizer class to judge.
    """
    if not isinstance(hyperparameters, Mapping):
        return []  # the model validation reports a wrong type
    issues: list[FieldIssue] = []
    for name, value in hyperparameters.items():
        where = f"{field}.{str(name)[:64]}"
        if not isinstance(name, str) or not HYPERPARAMETER_NAME.fullmatch(name):
            issues.append(
                FieldIssue(where, "not a hyperparameter name: letters, digits and '_' only, as torch.optim spells them")
            )
        elif name in HYPERPARAMETER_RANGES and beyond_float(value):
            issues.append(FieldIssue(where, BEYOND_FLOAT))
        elif (
            name in HYPERPARAMETER_RANGES
            and not (name == "lr" and value is None)
            and not in_range(value, HYPERPARAMETER_RANGES[name])
        ):
            low, low_ok, high, high_ok = HYPERPARAMETER_RANGES[name]
            if math.isinf(high):
                interval = f"{'>=' if low_ok else '>'} {low:g}"
            else:
                interval = f"in {'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"
            issues.append(FieldIssue(where, f"must be a number {interval}", value=value))
        elif name == "betas":
            betas = value if isinstance(value, list | tuple) else None
            if betas is None or not 1 <= len(betas) <= 3:
                issues.append(FieldIssue(where, "must be a list of 2 (or 3) numbers in [0, 1)"))
            else:
                for i, beta in enumerate(betas):
                    if beyond_float(beta):
                        issues.append(FieldIssue(f"{where}[{i}]", BEYOND_FLOAT))
                    elif beta is not None and not in_range(beta, (0.0, True, 1.0, False)):
                        issues.append(FieldIssue(f"{where}[{i}]", "must be a number in [0, 1)", value=beta))
    return issues
