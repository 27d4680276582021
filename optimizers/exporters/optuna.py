"""Optuna and Ray Tune: a search space around the recommendation, which is trial 0.

The ranges are the rules' (``Recommendation.search_space`` / ``tuning``: 004 §6.3, rules/training_plan.py
``tuning_hints``), with the answer inside each of them:

- an answer strictly inside the rules' range keeps that range;
- an answer on an edge of it (the rules clamp the lr range to 004 §6.3's global range, take a recipe's lr range,
  or start momentum at 0.9) gets the rules' range joined with the rules' width centred on the answer (on the log
  scale for a log range), so the rules' range stays searched and the answer lies inside; momentum stays below 1;
- an answer of 0 on a log range (weight decay off) gets the linear range [0, high]: no log range holds 0
  (optuna/distributions.py FloatDistribution: ``low > 0`` must hold for ``log=True``);
- the one edge kept is the batch size under a memory budget, whose upper end is the answer by the rules
  (``tuning_hints``: ``hi_b = batch if budgeted``): the search goes down from the largest batch that fits.

A split recommendation (one optimizer per parameter group) searches each group's own optimizer's lr too:
``<group>.lr`` (``dense.lr``), ranged as the rules range an lr (rules/lr_terms.py ``lr_search_range``).

Output: ``params`` (type/low/high/log, for ``trial.suggest_float`` / ``suggest_int``), ``distributions``
(each entry exactly what ``optuna.distributions.distribution_to_json`` writes, so ``json_to_distribution``
reads it back), ``first_trial`` (the answer, for ``study.enqueue_trial``) and ``ray_tune`` (JSON objects,
``{"type": "loguniform", "lower": .., "upper": ..}``, named after Ray Tune's samplers: docs.ray.io
tune/api/search_space.html; ``randint`` / ``lograndint`` exclude their upper bound, so it is ``high + 1``);
:func:`ray_tune_space` turns them into ``ray.tune`` objects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from optirec.rules import Recommendation
from optirec.rules.lr_terms import lr_search_range

from ..errors import ExportError
from .common import rulebook, split_groups

__all__ = ["optuna_space", "ray_tune_space"]

_INT_PARAMS: Final = frozenset({"batch_size"})
#: learning-rate-free optimizers: lr is a multiplier of the step size they estimate (1.0 by their authors)
_LR_FREE: Final = frozenset({"prodigy", "dadapt_adam"})
#: parameters that must stay below this value (momentum 1 never forgets: SGD's momentum is in [0, 1))
_BELOW: Final = {"momentum": 1.0}
#: Ray Tune sampler for (integer, log): docs.ray.io tune/api/search_space.html
_RAY: Final = {
    (False, True): "loguniform",
    (False, False): "uniform",
    (True, True): "lograndint",
    (True, False): "randint",
}


def _recommended(rec: Recommendation, name: str) -> Any:
    if name == "batch_size":
        return rec.batch_size
    return rec.optimizer.hyperparameters.get(name)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fit(name: str, value: float, low: float, high: float, log: bool) -> tuple[float, float, bool]:
    """The rules' range joined with the rules' width centred on ``value`` (see the module docstring)."""
    if log:
        half = math.sqrt(high / low)
        lo, hi = min(low, value / half), max(high, value * half)
    else:
        half = (high - low) / 2
        lo, hi = min(low, value - half), max(high, value + half)
        if low >= 0:  # a non-negative parameter stays non-negative
            lo = max(0.0, lo)
    if name in _BELOW and hi >= _BELOW[name]:
        hi = (value + _BELOW[name]) / 2
    return lo, hi, log


def _entry(
    rec: Recommendation, name: str, value: Any, low: float, high: float, log: bool, source: str, notes: list[str]
) -> tuple[float, float, bool]:
    if not _number(value):
        notes.append(f"{name}: the recommendation gives no value, so the first trial lets Optuna sample it.")
        return low, high, log
    rules = f"the rules' {'log' if log else 'linear'} range [{low:g}, {high:g}] ({source})"
    budgeted = rec.memory is not None and rec.memory.budget_multiplier is not None
    if value == 0 and log:
        notes.append(
            f"{name}: the answer is 0, which no log range holds (Optuna's FloatDistribution needs low > 0 with "
            f"log=True); searched on the linear range [0, {high:g}] instead of {rules}."
        )
        return 0.0, high, False
    if low < value < high:
        return low, high, log
    if name == "batch_size" and budgeted and value == high:
        notes.append(
            f"batch_size: the range's upper end is the answer ({value:g}), the largest batch the memory budget "
            f"allows: {rules} searches only smaller ones."
        )
        return low, high, log
    lo, hi, log = _fit(name, float(value), low, high, log)
    notes.append(
        f"{name}: the answer {value:g} lies {'on the edge of' if low <= value <= high else 'outside'} {rules}; "
        f"searched on [{lo:.4g}, {hi:.4g}], that range joined with its width centred on the answer."
    )
    return lo, hi, log


def _spaces(rec: Recommendation, notes: list[str]) -> list[tuple[str, Any, float, float, bool, str]]:
    """(name, answer, rules' low, high, log, source) of each parameter, in the rules' priority order."""
    hints = {h.name: h for h in rec.tuning}
    out: list[tuple[str, Any, float, float, bool, str]] = []
    for name, bounds in rec.search_space.items():
        low, high = float(bounds[0]), float(bounds[1])
        hint = hints.get(name)
        scale = hint.scale if hint is not None else ("log" if low > 0 and high >= 10 * low else "linear")
        source = hint.source if hint is not None else "search_space"
        out.append((name, _recommended(rec, name), low, high, scale == "log" and low > 0, source))
        if name != "lr":
            continue
        for g in split_groups(rec):  # each other optimizer of a split gets its own lr searched
            group_lr = g.hyperparameters.get("lr")
            if g.optimizer == rec.optimizer.name or not isinstance(group_lr, int | float) or not group_lr > 0:
                continue
            lo, hi = lr_search_range(float(group_lr), rulebook().principles)
            out.append((f"{g.name}.lr", group_lr, lo, hi, True, "004 §6.3 lr range (rules/lr_terms.py)"))
            notes.append(
                f"{g.name}.lr: the lr of param_groups.{g.name}'s {g.optimizer}; lr is {rec.optimizer.name}'s, which "
                "build() gives every group of the main optimizer; the other searched values are the main "
                "optimizer's."
            )
    return out


def _distribution_json(kind: str, low: float, high: float, log: bool) -> str:
    """What ``optuna.distributions.distribution_to_json`` writes: ``json.dumps({"name": <class>, "attributes":
    <the instance's __dict__>})``, the attributes in the order FloatDistribution / IntDistribution set them."""
    if kind == "int":
        attributes: dict[str, Any] = {"log": log, "step": 1, "low": int(low), "high": int(high)}
        return json.dumps({"name": "IntDistribution", "attributes": attributes})
    attributes = {"step": None, "low": float(low), "high": float(high), "log": log}
    return json.dumps({"name": "FloatDistribution", "attributes": attributes})


def optuna_space(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    params: dict[str, dict[str, Any]] = {}
    distributions: dict[str, str] = {}
    first: dict[str, Any] = {}
    ray: dict[str, dict[str, Any]] = {}
    for name, value, low, high, log, source in _spaces(rec, notes):
        lo, hi, log = _entry(rec, name, value, low, high, log, source, notes)
        if name in _INT_PARAMS:  # the rules' bounds rounded inwards, a widened range's outwards
            widened = (lo, hi) != (low, high)
            lo_i = max(1, math.floor(lo) if widened else math.ceil(lo))
            hi_i = math.ceil(hi) if widened else math.floor(hi)
            params[name] = {"type": "int", "low": lo_i, "high": hi_i, "log": log}
            distributions[name] = _distribution_json("int", lo_i, hi_i, log)
            ray[name] = {"type": _RAY[(True, log)], "lower": lo_i, "upper": hi_i + 1}  # upper exclusive
            if _number(value):
                first[name] = int(value)
        else:
            params[name] = {"type": "float", "low": lo, "high": hi, "log": log}
            distributions[name] = _distribution_json("float", lo, hi, log)
            ray[name] = {"type": _RAY[(False, log)], "lower": lo, "upper": hi}
            if _number(value):
                first[name] = value
    if not params:
        notes.append("the recommendation has no search space.")
    if rec.optimizer.name in _LR_FREE and "lr" in params:
        notes.append(
            f"lr: {rec.optimizer.name} estimates its own step size and lr only multiplies it (the authors keep it at "
            "1.0), so searching lr searches that multiplier."
        )
    return {"params": params, "distributions": distributions, "first_trial": first, "ray_tune": ray}


#: the Ray Tune samplers the export names (ray.tune.search.sample, docs.ray.io "Search Space API")
RAY_SAMPLERS: Final = ("loguniform", "uniform", "lograndint", "randint")


def ray_tune_space(export: Mapping[str, Any]) -> dict[str, Any]:
    """``ray.tune`` sampler objects for ``to_optuna(rec)["ray_tune"]`` (or the whole export): ``tune.loguniform``,
    ``tune.uniform``, ``tune.lograndint``, ``tune.randint`` with the same bounds (Ray Tune is imported here only).
    Raises :class:`ExportError` (field ``ray_tune``) for a sampler type that is none of those, before importing Ray."""
    space = export.get("ray_tune", export)
    for name, spec in space.items():
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if kind not in RAY_SAMPLERS:
            raise ExportError("ray_tune", f"{name}: unknown sampler {kind!r}; valid values: {', '.join(RAY_SAMPLERS)}")
    from ray import tune  # optional: needed by this function alone

    samplers: dict[str, Callable[..., Any]] = {
        "loguniform": tune.loguniform,
        "uniform": tune.uniform,
        "lograndint": tune.lograndint,
    }
    samplers["randint"] = tune.randint
    return {
        name: samplers[spec["type"]](**{k: v for k, v in spec.items() if k != "type"}) for name, spec in space.items()
    }
