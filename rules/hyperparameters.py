"""What a recommendation's hyperparameters and optimizer names may be, torch-free: the checks POST /trials makes
before any worker builds an optimizer, and the same constraints as JSON schema (openapi.yaml), so that a client
generated from the schema sends what the server accepts.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .numbers import finite_float

__all__ = [
    "HYPERPARAMETER_NAME",
    "HYPERPARAMETER_RANGES",
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
