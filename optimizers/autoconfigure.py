"""``autoconfig(model, **profile)``: a training job's one-liner from its description to torch objects."""

from __future__ import annotations

import os
import warnings
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
    model: nn.Module, *, url: str | None = None, **profile: Any
) -> tuple[torch.optim.Optimizer, LRScheduler | None, Recommendation]:
    """Recommend for ``model`` and build it: ``(optimizer, scheduler, recommendation)``.

    ``profile`` takes the Profile's fields (architecture=..., batch_size=..., total_steps=...);
    ``num_parameters`` defaults to the model's trainable parameter count. With ``url`` or
    ``$OPTIREC_URL`` the recommendation comes from that service (falling back to the embedded
    engine, with a RuntimeWarning, when it cannot be reached). Without a run length, schedules
    other than constant cannot be built: the scheduler is None and a UserWarning says so.
    """
    profile.setdefault("num_parameters", sum(p.numel() for p in model.parameters() if p.requires_grad) or None)
    if profile["num_parameters"] is None:
        del profile["num_parameters"]
    rec = _recommend(profile, url if url is not None else os.environ.get("OPTIREC_URL"))
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
