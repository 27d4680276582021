"""Optuna and Ray Tune: a search space centred on the recommendation."""

from __future__ import annotations

import math
from typing import Any, Final

from optirec.rules import Recommendation

_INT_PARAMS: Final = frozenset({"batch_size"})
#: learning-rate-free optimizers: lr is a multiplier of the step size they estimate (1.0 by their authors)
_LR_FREE: Final = frozenset({"prodigy", "dadapt_adam"})


def _recommended(rec: Recommendation, name: str) -> Any:
    if name == "batch_size":
        return rec.batch_size
    return rec.optimizer.hyperparameters.get(name)


def optuna_space(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    hints = {h.name: h for h in rec.tuning}
    params: dict[str, dict[str, Any]] = {}
    first: dict[str, Any] = {}
    ray: dict[str, str] = {}
    for name, bounds in rec.search_space.items():
        low, high = float(bounds[0]), float(bounds[1])
        hint = hints.get(name)
        scale = hint.scale if hint is not None else ("log" if low > 0 and high >= 10 * low else "linear")
        log = scale == "log" and low > 0
        value = _recommended(rec, name)
        if name in _INT_PARAMS:
            lo_i, hi_i = math.ceil(low), math.floor(high)
            params[name] = {"type": "int", "low": lo_i, "high": hi_i, "log": log}
            ray[name] = f"{'lograndint' if log else 'randint'}({lo_i}, {hi_i + 1})"
            lo_v: float = lo_i
            hi_v: float = hi_i
        else:
            params[name] = {"type": "float", "low": low, "high": high, "log": log}
            ray[name] = f"{'loguniform' if log else 'uniform'}({low!r}, {high!r})"
            lo_v, hi_v = low, high
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if lo_v <= value <= hi_v:
            first[name] = int(value) if name in _INT_PARAMS else value
        else:
            notes.append(
                f"{name}: the recommended value {value!r} lies outside the search range [{bounds[0]}, {bounds[1]}], "
                "so the first trial lets Optuna sample it."
            )
    if not params:
        notes.append("the recommendation has no search space.")
    if rec.optimizer.name in _LR_FREE and "lr" in params:
        notes.append(
            f"lr: {rec.optimizer.name} estimates its own step size and lr only multiplies it (the authors keep it at "
            "1.0), so searching lr searches that multiplier."
        )
    return {"params": params, "first_trial": first, "ray_tune": ray}
