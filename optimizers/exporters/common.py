"""What every exporter shares: the refusal, the recommendation's coercion, Python literals, warmup and
parameter-split helpers, and the conventions repeated from the torch side."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from optirec.rules import Recommendation, Rulebook, default_rulebook
from optirec.rules.recommendation import ParamGroup, ScheduleSpec

from ..errors import ExportError, recommendation_error

RecommendationLike = Recommendation | Mapping[str, Any] | str | bytes

# Conventions shared with optimizers/schedulers.py and optimizers/registry.py (which import torch,
# so the values are repeated here rather than imported).
WARMUP_START_FACTOR: Final = 1e-3  # warmup starts at this fraction of the peak lr
RESTART_FIRST_CYCLE: Final = 0.25  # warm restarts: first cycle = 25% of the post-warmup steps, then doubling
INVERSE_SQRT_TIMESCALE: Final = 10_000  # inverse_sqrt without warmup: T5's 1/sqrt(max(n, 10^4))
LOOKAHEAD_BASE_KEYS: Final = ("lr", "weight_decay", "betas", "momentum")
RENAMED: Final = {"lookahead_alpha": "alpha"}
PLACEHOLDER_TOTAL_STEPS: Final = 10_000


class Unsupported(Exception):
    """Raised inside an exporter: ``what`` (optimizer, schedule, ...) cannot be expressed, and why."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why


#: keys that may stay in the hyperparameters when they hold these (class default) values
HARMLESS_DEFAULTS: Final[dict[str, Any]] = {"amsgrad": False, "maximize": False, "foreach": None}


def coerce(rec: RecommendationLike) -> Recommendation:
    if isinstance(rec, Recommendation):
        return rec
    try:
        if isinstance(rec, str | bytes):
            return Recommendation.model_validate_json(rec)
        return Recommendation.model_validate(rec)
    except ValidationError as exc:  # one "field.path: what is wrong" line per field, as build() reports it
        raise recommendation_error(exc, ExportError) from None


def rulebook() -> Rulebook:
    return default_rulebook()


def made_by(rec: Recommendation) -> str:
    """Which rulebook made the answer, for a header comment (a hand-written recommendation names none)."""
    if rec.rulebook is None:
        return "a hand-written recommendation (no rulebook)"
    return f"rulebook {rec.rulebook.version} ({rec.rulebook.hash[:12]})"


def optimizer_label(name: str) -> str:
    spec = rulebook().optimizers.get(name)
    return f"{name!r} ({spec.display_name})" if spec is not None else repr(name)


def py_literal(value: Any) -> str:
    """A Python literal for a hyperparameter value (lists become tuples, as torch expects for betas)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return f"float({str(value)!r})"
        return repr(value)
    if isinstance(value, list | tuple):
        inner = ", ".join(py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def py_kwargs(hp: Mapping[str, Any]) -> str:
    return ", ".join(f"{RENAMED.get(k, k)}={py_literal(v)}" for k, v in hp.items())


def split_groups(rec: Recommendation) -> list[ParamGroup]:
    """Param groups that give part of the model a different optimizer (004 §5.6.1)."""
    return [g for g in rec.param_groups if g.optimizer is not None]


def refuse_split(rec: Recommendation) -> None:
    groups = split_groups(rec)
    if groups:
        split = ", ".join(f"{g.name} -> {g.optimizer}" for g in groups)
        raise Unsupported(
            f"the parameter split ({split})",
            "it builds a single optimizer for the whole model, not one optimizer per parameter group",
        )


def advice_notes(rec: Recommendation, fmt: str, notes: list[str]) -> None:
    """What the dict formats leave to the user: freezing, layer-wise lr, EMA, optimizer phases."""
    for g in rec.param_groups:
        if g.frozen:
            notes.append(f"param_groups.{g.name}: freeze {', '.join(g.match)} yourself (requires_grad_(False)).")
        if g.layerwise_lr_decay is not None and fmt != "timm":
            notes.append(
                f"param_groups.{g.name}: layer-wise lr decay {g.layerwise_lr_decay} is not expressed; "
                "build those parameter groups yourself."
            )
    if rec.ema is not None:
        notes.append(f"ema: keep an exponential moving average of the weights (decay {rec.ema.decay}) yourself.")
    if rec.phases:
        plan = " -> ".join(p.optimizer.name for p in rec.phases)
        notes.append(
            f"phases: only the first phase is exported; the plan is {plan}, switching when {rec.phases[0].trigger}."
        )


def warmup_of(schedule: ScheduleSpec) -> tuple[int | None, float]:
    """(warmup steps when known, warmup ratio)."""
    return schedule.warmup_steps, schedule.warmup_ratio


def has_warmup(schedule: ScheduleSpec) -> bool:
    steps, ratio = warmup_of(schedule)
    return (steps or 0) > 0 if steps is not None else ratio > 0


def describe_schedule(schedule: ScheduleSpec) -> str:
    if not has_warmup(schedule):
        return f"{schedule.name}, no warmup"
    if schedule.warmup_steps is not None:
        return f"{schedule.name}, {schedule.warmup_steps} warmup steps"
    return f"{schedule.name}, warmup {schedule.warmup_ratio:.0%} of the steps"


def refuse_leftovers(hp: Mapping[str, Any], fmt_label: str) -> None:
    for key, value in hp.items():
        if key in HARMLESS_DEFAULTS and HARMLESS_DEFAULTS[key] == value:
            continue
        raise Unsupported(f"the hyperparameter {key}={value!r}", f"{fmt_label} has no place for it")


def pop_except(hp: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """Every entry of ``hp`` but ``keep``, removed from it (lists as tuples)."""
    return {k: as_tuple(hp.pop(k)) for k in [k for k in hp if k not in keep]}


def pop_only(hp: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The entries ``keys`` of ``hp`` that are there, removed from it (lists as tuples)."""
    return {k: as_tuple(hp.pop(k)) for k in keys if k in hp}


def as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def lookahead_base_hp(base: str, wrapper_hp: Mapping[str, Any]) -> dict[str, Any]:
    """The base optimizer's hyperparameters: its catalog defaults, overridden as optimizers/registry.py does."""
    book = rulebook()
    if base not in book.optimizers:
        raise Unsupported(f"the base optimizer {base!r}", "it is not in the optimizer catalog")
    if book.optimizers[base].needs_eval_mode:  # as optimizers/registry.py refuses to build it
        raise Unsupported(
            f"the base optimizer {optimizer_label(base)}",
            "a wrapper cannot wrap an optimizer that keeps separate training and evaluation weights (Schedule-Free)",
        )
    base_hp = {k: v for k, v in book.defaults[base].items() if k != "base"}
    for key in LOOKAHEAD_BASE_KEYS:
        if key in wrapper_hp and (key in base_hp or key in ("lr", "weight_decay")):
            base_hp[key] = wrapper_hp[key]
    return base_hp
