"""LR schedules composed from ``torch.optim.lr_scheduler``.

Names (004 §6.2 schedules): constant, step (step decay), cosine (cosine annealing), linear
(linear decay), exponential, one_cycle, cosine_restarts (warm restarts), and from the published recipes
inverse_sqrt (the Transformer's and T5's lr ~ 1/sqrt(step)) and poly ((1 - t/T) ** power, as DeepLab and
nnU-Net). cosine, linear, poly and exponential decay to ``final_lr_fraction`` of each group's peak lr
(0 when not given; exponential: 1%). Torch's own classes are used where they express the curve
(CosineAnnealingLR, LinearLR, PolynomialLR, ExponentialLR); ``LambdaLR`` with the closed form where torch has
none (cosine or poly to a fraction of each group's own peak, inverse square root). A linear warmup, given as
steps or as a ratio of the total, is put in front with ``SequentialLR`` (one-cycle has its own).
The scheduler is stepped once per optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from optirec.rules.recommendation import ScheduleSpec

from .errors import BuildError

__all__ = ["SCHEDULES", "WARMUP_START_FACTOR", "build_scheduler"]

SCHEDULES = (
    "constant",
    "step",
    "cosine",
    "linear",
    "exponential",
    "one_cycle",
    "cosine_restarts",
    "inverse_sqrt",
    "poly",
)
#: Warmup starts at this fraction of the peak lr and rises linearly to it.
WARMUP_START_FACTOR = 1e-3
#: Warm restarts: the first cycle spans this fraction of the post-warmup steps, each next one twice as long.
RESTART_FIRST_CYCLE = 0.25
#: inverse_sqrt without a warmup: the lr is flat for this many steps' worth of decay (T5's 1/sqrt(max(n, 10^4)),
#: Raffel et al. 2020 §3.1.2; also transformers' get_inverse_sqrt_schedule default timescale)
INVERSE_SQRT_TIMESCALE = 10_000


def cosine_to(final: float, steps: int) -> Callable[[int], float]:
    """Cosine decay from 1 to ``final`` over ``steps``: the factor of each group's own peak lr."""
    return lambda t: final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(t, steps) / steps))


def poly_to(final: float, power: float, steps: int) -> Callable[[int], float]:
    """(1 - t/steps) ** power from 1 to ``final``."""
    return lambda t: final + (1.0 - final) * (1.0 - min(t, steps) / steps) ** power


def inverse_sqrt(timescale: int) -> Callable[[int], float]:
    """sqrt(timescale / (timescale + t)): 1 at the end of the warmup, then falling as 1/sqrt(step)."""
    return lambda t: math.sqrt(timescale / (timescale + t))


def build_scheduler(
    optimizer: Optimizer,
    schedule: ScheduleSpec,
    total_steps: int | None = None,
    warmup_steps: int | None = None,
    warmup_ratio: float | None = None,
) -> sched.LRScheduler:
    """The scheduler a recommendation's ``schedule`` describes.

    ``total_steps`` / ``warmup_steps`` / ``warmup_ratio`` override the recommendation's values.
    """
    name = schedule.name
    total = total_steps if total_steps is not None else schedule.total_steps
    if total is None:
        if name != "constant":
            raise BuildError(
                "total_steps",
                f"the {name!r} schedule needs the run's length: give total_steps to build() or to the profile",
            )
        total = 1
    if total < 1:
        raise BuildError("total_steps", f"must be at least 1, got {total}")
    if warmup_steps is None:
        if warmup_ratio is not None:
            warmup_steps = round(total * warmup_ratio)
        elif total_steps is None and schedule.warmup_steps is not None:
            warmup_steps = schedule.warmup_steps
        else:
            warmup_steps = round(total * schedule.warmup_ratio)
    if warmup_steps < 0 or (warmup_steps > 0 and warmup_steps >= total):
        raise BuildError("warmup_steps", f"must be in [0, total_steps={total}), got {warmup_steps}")
    main_steps = max(1, total - warmup_steps)

    if name == "one_cycle":
        cycle = "momentum" in optimizer.defaults or "betas" in optimizer.defaults
        return sched.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total,
            pct_start=min(0.5, max(warmup_steps / total, 0.05)),
            cycle_momentum=cycle,
        )

    main: sched.LRScheduler
    final = schedule.final_lr_fraction or 0.0
    if name == "constant":
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif name == "cosine":
        if final:
            main = sched.LambdaLR(optimizer, cosine_to(final, main_steps))
        else:
            main = sched.CosineAnnealingLR(optimizer, T_max=main_steps, eta_min=0.0)
    elif name == "linear":
        main = sched.LinearLR(optimizer, start_factor=1.0, end_factor=final, total_iters=main_steps)
    elif name == "poly":
        power = schedule.power if schedule.power is not None else 1.0
        if final:
            main = sched.LambdaLR(optimizer, poly_to(final, power, main_steps))
        else:
            main = sched.PolynomialLR(optimizer, total_iters=main_steps, power=power)
    elif name == "inverse_sqrt":
        main = sched.LambdaLR(optimizer, inverse_sqrt(warmup_steps if warmup_steps > 0 else INVERSE_SQRT_TIMESCALE))
    elif name == "step":
        if schedule.milestones is not None and total_steps is None:
            milestones = schedule.milestones
        else:
            milestones = [max(1, round(f * total)) for f in (schedule.milestone_fractions or [0.5, 0.75])]
        shifted = sorted({m - warmup_steps for m in milestones if m > warmup_steps})
        main = sched.MultiStepLR(optimizer, milestones=shifted or [main_steps], gamma=schedule.gamma or 0.1)
    elif name == "exponential":
        end = schedule.final_lr_fraction or 0.01
        gamma = schedule.gamma if schedule.gamma is not None and total_steps is None else end ** (1 / main_steps)
        main = sched.ExponentialLR(optimizer, gamma=gamma)
    elif name == "cosine_restarts":
        main = sched.CosineAnnealingWarmRestarts(
            optimizer, T_0=max(1, round(main_steps * RESTART_FIRST_CYCLE)), T_mult=2
        )
    else:  # pragma: no cover - ScheduleSpec's Literal keeps this out
        raise BuildError("schedule.name", f"unknown schedule {name!r}; valid values: {', '.join(SCHEDULES)}")

    if warmup_steps <= 0:
        return main
    warmup = sched.LinearLR(optimizer, start_factor=WARMUP_START_FACTOR, end_factor=1.0, total_iters=warmup_steps)
    return sched.SequentialLR(optimizer, schedulers=[warmup, main], milestones=[warmup_steps])
