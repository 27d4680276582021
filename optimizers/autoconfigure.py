"""``autoconfig(model, **profile)``: a training job's one-liner from its description to torch objects, and with
``validate=batches`` the recommendation checked first by a budgeted search on the model itself."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from optirec.rules import Recommendation, recommend

from .builder import build

__all__ = ["autoconfig"]


def _recommend(profile: dict[str, Any], url: str | None) -> Recommendation:
    if not url:
        return recommend(profile)
    from optirec.service.client import OptirecClient
    from optirec.service.errors import ServiceError

    try:
        with OptirecClient(url) as client:
            return client.recommend(profile)
    except ServiceError as exc:  # unreachable or failing service; a 4xx about the profile is raised as is
        warnings.warn(
            f"optirec service at {url} failed ({exc}); using the embedded engine instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return recommend(profile)


def autoconfig(
    model: nn.Module,
    *,
    url: str | None = None,
    validate: Iterable[Any] | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    objective: Callable[[nn.Module, Any], torch.Tensor] | None = None,
    heldout: Iterable[Any] | None = None,
    validate_steps: int | None = None,
    budget: int | None = None,
    seed: int = 0,
    **profile: Any,
) -> tuple[torch.optim.Optimizer, LRScheduler | None, Recommendation]:
    """Recommend for ``model`` and build it: ``(optimizer, scheduler, recommendation)``.

    ``profile`` takes the Profile's fields (architecture=..., batch_size=..., total_steps=...);
    ``num_parameters`` defaults to the model's trainable parameter count. With ``url`` or
    ``$OPTIREC_URL`` the recommendation comes from that service (falling back to the embedded
    engine, with a RuntimeWarning, when it cannot be reached). Without a run length, schedules
    other than constant cannot be built: the scheduler is None and a UserWarning says so.

    ``validate=batches`` (with ``loss_fn(outputs, targets)`` or ``objective(model, batch)``) first runs
    ``optirec.validate`` on the model: a search of ``validate_steps`` per full run (default: one pass over the
    batches), within ``budget`` optimizer steps (default 4 such runs), scored on ``heldout`` or a held-out
    slice; the weights are restored, and what is built is the revised recommendation (its notes and the
    search's ``changes`` say what moved). The schedule still spans the profile's ``total_steps``.
    """
    profile.setdefault("num_parameters", sum(p.numel() for p in model.parameters() if p.requires_grad) or None)
    if profile["num_parameters"] is None:
        del profile["num_parameters"]
    rec = _recommend(profile, url if url is not None else os.environ.get("OPTIREC_URL"))
    if validate is not None:
        from .validation import validate as search

        batches = list(validate)
        report = search(
            model,
            loss_fn,
            batches,
            rec,
            steps=validate_steps if validate_steps is not None else max(1, len(batches)),
            budget=budget,
            heldout=heldout,
            seed=seed,
            objective=objective,
        )
        rec = report.recommendation
    has_length = rec.schedule.total_steps is not None or rec.schedule.name == "constant"
    if not has_length:
        warnings.warn(
            "no total_steps (or epochs with steps_per_epoch): no LR scheduler was built; "
            f"the recommended schedule is {rec.schedule.name!r}",
            UserWarning,
            stacklevel=2,
        )
    built = build(model, rec, scheduler=has_length)
    return built.optimizer, built.scheduler, rec
