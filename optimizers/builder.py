"""``build(model_or_params, recommendation)``: the optimizer, LR scheduler and clipping, ready to use."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from optirec.rules import Recommendation, Rulebook, default_rulebook

from .errors import BuildError, recommendation_error
from .groups import FREEZE_FRACTION, Depth, plan_groups
from .hybrid import HybridOptimizer
from .registry import make_optimizer
from .schedulers import build_scheduler

__all__ = ["BuildResult", "as_recommendation", "build"]


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` returns; unpacks as ``optimizer, scheduler, clipping``."""

    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | None
    clipping: float | None  # max gradient norm, or None for no clipping
    recommendation: Recommendation
    needs_closure: bool  # step() needs a closure that recomputes the loss (LBFGS, SAM, Newton, ...)
    frozen: tuple[str, ...]  # parameter names frozen for transfer learning
    depth: Depth  # how the model's depth was read for freezing and layer-wise lr (``depth.describe()``)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.optimizer, self.scheduler, self.clipping))


def as_recommendation(rec: Recommendation | Mapping[str, Any]) -> Recommendation:
    """A Recommendation from the object or its JSON (e.g. from the service)."""
    if isinstance(rec, Recommendation):
        return rec
    if not isinstance(rec, Mapping):
        raise BuildError("recommendation", f"must be a Recommendation or its JSON object, not {type(rec).__name__}")
    try:
        return Recommendation.model_validate(rec)
    except ValidationError as exc:  # pydantic's report -> one "field.path: what is wrong" line per field
        raise recommendation_error(exc) from None


def build(
    model_or_params: nn.Module | Iterable[Any],
    recommendation: Recommendation | Mapping[str, Any],
    *,
    total_steps: int | None = None,
    warmup_steps: int | None = None,
    scheduler: bool = True,
    freeze_fraction: float = FREEZE_FRACTION,
    rulebook: Rulebook | None = None,
) -> BuildResult:
    """Turn a Recommendation into torch objects.

    ``model_or_params`` is preferably the model (needed for embedding/norm detection, the model's own
    ``no_weight_decay()`` lists, freezing and layer-wise lr over its real blocks, and K-FAC; see
    optimizers/depth.py); a parameter iterable or list of param-group dicts also works. ``total_steps`` overrides
    the recommendation's (schedules other than constant need one of them).
    """
    book = rulebook or default_rulebook()
    rec = _canonical(book, as_recommendation(recommendation))
    if not isinstance(model_or_params, nn.Module):
        model_or_params = list(model_or_params)
    plan = plan_groups(model_or_params, rec, freeze_fraction=freeze_fraction, defaults=book.defaults)
    if not plan.groups:
        raise BuildError("model", "no trainable parameters (every parameter has requires_grad=False)")
    model = model_or_params if isinstance(model_or_params, nn.Module) else None

    optimizers: dict[str, torch.optim.Optimizer] = {}
    for name, groups in plan.groups.items():
        hp = _hyperparameters(book, rec, name)
        optimizers[name] = make_optimizer(book, name, groups, hp, model=model)
    optimizer = next(iter(optimizers.values())) if len(optimizers) == 1 else HybridOptimizer(optimizers)

    lr_scheduler = None
    if scheduler:
        lr_scheduler = build_scheduler(optimizer, rec.schedule, total_steps=total_steps, warmup_steps=warmup_steps)
    clipping = rec.gradient_clipping.max_norm if rec.gradient_clipping else None
    needs_closure = any(book.optimizers[name].needs_closure for name in optimizers)
    return BuildResult(optimizer, lr_scheduler, clipping, rec, needs_closure, tuple(plan.frozen), plan.depth)


def _canonical(book: Rulebook, rec: Recommendation) -> Recommendation:
    """Optimizer names as the catalog spells them (aliases such as 'momentum' accepted; unknown names refused)."""
    name = book.optimizer(rec.optimizer.name).name
    groups = [
        g.model_copy(update={"optimizer": book.optimizer(g.optimizer).name}) if g.optimizer else g
        for g in rec.param_groups
    ]
    if name == rec.optimizer.name and groups == rec.param_groups:
        return rec
    return rec.model_copy(update={"optimizer": rec.optimizer.model_copy(update={"name": name}), "param_groups": groups})


def _hyperparameters(book: Rulebook, rec: Recommendation, name: str) -> dict[str, Any]:
    """The hyperparameters for one of the optimizers a recommendation uses."""
    if name == rec.optimizer.name:
        return dict(rec.optimizer.hyperparameters)
    for group in rec.param_groups:
        if group.optimizer == name:
            return dict(group.hyperparameters)
    return dict(book.defaults[name])
