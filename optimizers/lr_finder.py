"""LR range test (in the style of fastai's / Lightning's ``lr_find``) and a verdict on a recommended lr.

The lr grows exponentially from far below to far above the recommended one, one optimizer step per
value; the loss is smoothed with a bias-corrected moving average and the sweep stops once it
diverges. The suggestion is the point of steepest descent of the smoothed loss (on log lr) before
its minimum, or the minimum's lr / 10 when no clear slope exists. Model weights are restored after.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import nn

from optirec.rules import Recommendation

from .builder import as_recommendation, build
from .errors import BuildError
from .results import LRRangeTest, Verdict
from .training import train_step

__all__ = ["LRRangeTest", "lr_range_test", "preserved", "verdict"]

#: the recommended lr is judged off when it is more than this factor from the suggestion
VERDICT_TOLERANCE = 4.0
SMOOTHING = 0.9  # EMA factor of the loss curve
DIVERGE_FACTOR = 4.0  # stop when the smoothed loss exceeds this multiple of its minimum


def verdict(recommended: float, suggested: float | None) -> tuple[Verdict, float | None]:
    """'too_high' / 'too_low' when the recommendation is more than VERDICT_TOLERANCE x off the suggestion."""
    if suggested is None or suggested <= 0:
        return "inconclusive", None
    factor = recommended / suggested
    if factor > VERDICT_TOLERANCE:
        return "too_high", factor
    if factor < 1 / VERDICT_TOLERANCE:
        return "too_low", factor
    return "ok", factor


def _suggest(lrs: list[float], losses: list[float]) -> tuple[float | None, Literal["steepest", "min_over_10", "none"]]:
    """Steepest descent of the smoothed loss before its minimum (the first points, while the average
    warms up, are ignored); the minimum's lr / 10 when the curve has no descending stretch."""
    skip = max(3, len(losses) // 10)
    if len(losses) < skip + 3:
        return None, "none"
    i_min = min(range(skip, len(losses)), key=losses.__getitem__)
    logs = [math.log10(x) for x in lrs]
    slopes = {i: (losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(skip, i_min)}
    if slopes:
        j = min(slopes, key=slopes.__getitem__)
        if slopes[j] < 0:
            return lrs[j], "steepest"
    return lrs[i_min] / 10, "min_over_10"


def lr_range_test(
    model: nn.Module,
    objective: Callable[[nn.Module, Any], torch.Tensor],
    batches: Iterable[Any],
    recommendation: Recommendation | Mapping[str, Any],
    *,
    steps: int = 100,
    low: float | None = None,
    high: float | None = None,
) -> LRRangeTest:
    """Sweep the lr exponentially over ``steps`` steps; weights restored after.

    The sweep covers fastai's classic range [1e-7, 10] widened to include 1000x below and 100x above
    the recommended lr, unless ``low`` / ``high`` (absolute lrs) are given.

    ``objective(model, batch)`` returns the loss; ``batches`` is cycled if shorter than ``steps``.
    """
    rec = as_recommendation(recommendation)
    rec_lr = float(rec.optimizer.hyperparameters.get("lr", 0.0))
    if rec_lr <= 0:
        raise BuildError("optimizer.hyperparameters.lr", f"{rec.optimizer.name} has no positive lr to test")
    if steps < 5:
        raise BuildError("steps", f"an lr range test needs at least 5 steps, got {steps}")
    data = list(batches)
    if not data:
        raise BuildError("batches", "no batches to run the range test on")
    with preserved(model) as optimizers:
        built = build(model, rec, scheduler=False)
        optimizers.append(built.optimizer)
        base = [g["lr"] for g in built.optimizer.param_groups]
        lo = low if low is not None else min(1e-7, rec_lr / 1e3)
        hi = high if high is not None else max(10.0, rec_lr * 100)
        if not 0 < lo < hi:
            raise BuildError("low", f"the sweep needs 0 < low < high, got {lo} and {hi}")
        lrs: list[float] = []
        smoothed: list[float] = []
        avg = 0.0
        best = math.inf
        stopped = False
        for i in range(steps):
            mult = (lo * (hi / lo) ** (i / (steps - 1))) / rec_lr
            for g, lr in zip(built.optimizer.param_groups, base, strict=True):
                g["lr"] = lr * mult
            batch = data[i % len(data)]

            def step_objective(batch: Any = batch) -> torch.Tensor:
                return objective(model, batch)

            loss = train_step(model, None, batch, built, objective=step_objective)
            if not math.isfinite(loss):
                stopped = True
                break
            avg = SMOOTHING * avg + (1 - SMOOTHING) * loss
            value = avg / (1 - SMOOTHING ** (i + 1))
            lrs.append(rec_lr * mult)
            smoothed.append(value)
            best = min(best, value)
            if i > 5 and value > DIVERGE_FACTOR * best:
                stopped = True
                break
    suggestion, method = _suggest(lrs, smoothed)
    judged, factor = verdict(rec_lr, suggestion)
    return LRRangeTest(
        lrs=lrs,
        losses=smoothed,
        suggested_lr=suggestion,
        method=method,
        recommended_lr=rec_lr,
        verdict=judged,
        factor=factor,
        stopped_early=stopped,
        steps=len(lrs),
    )


@contextmanager
def preserved(model: nn.Module) -> Iterator[list[torch.optim.Optimizer]]:
    """Put the user's model back exactly on leaving the block, however it ends: weights, requires_grad flags
    and mode; the hooks of the optimizers the block appends to the yielded list are dropped too."""
    saved = copy.deepcopy(model.state_dict())
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    optimizers: list[torch.optim.Optimizer] = []
    try:
        yield optimizers
    finally:
        model.load_state_dict(saved)
        for name, p in model.named_parameters():
            p.requires_grad_(trainable.get(name, p.requires_grad))
        model.train(was_training)
        for optimizer in optimizers:
            remove = getattr(optimizer, "remove_hooks", None)
            if callable(remove):
                remove()
