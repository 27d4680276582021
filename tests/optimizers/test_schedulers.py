"""``build_scheduler``: every schedule name, with and without warmup, against its closed-form curve.

The lr "at step s" is the lr the (s+1)-th optimizer step uses: the group's lr after ``s`` scheduler steps
(the scheduler is stepped once per optimizer step, after it).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from optirec.optimizers import SCHEDULES, BuildError, build_scheduler
from optirec.optimizers.schedulers import INVERSE_SQRT_TIMESCALE, RESTART_FIRST_CYCLE, WARMUP_START_FACTOR
from optirec.rules.recommendation import ScheduleSpec

LR = 0.1
TOTAL = 100


def _spec(name: str, **fields: Any) -> ScheduleSpec:
    values: dict[str, Any] = {"warmup_steps": None, "warmup_ratio": 0.0, "total_steps": None} | fields
    return ScheduleSpec(name=name, **values)


def _optimizer(momentum: float = 0.9) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=LR, momentum=momentum)


def _curve(schedule: ScheduleSpec, steps: int, **kwargs: Any) -> list[float]:
    """The lr at steps 0 .. steps-1."""
    optimizer = _optimizer()
    scheduler = build_scheduler(optimizer, schedule, **kwargs)
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


# ------------------------------------------------------------------------------------ closed forms


def _main(name: str, k: int, main_steps: int, total: int, warmup: int, **extra: Any) -> float:
    """The post-warmup curve at k steps after the warmup (``main_steps`` = total - warmup)."""
    if name == "constant":
        return LR
    final = extra.get("final", 0.0)
    if name == "cosine":
        return LR * (final + (1 - final) * (1 + math.cos(math.pi * k / main_steps)) / 2)
    if name == "linear":
        return LR * (final + (1 - final) * (1 - min(k, main_steps) / main_steps))
    if name == "poly":
        return LR * (final + (1 - final) * (1 - min(k, main_steps) / main_steps) ** extra.get("power", 1.0))
    if name == "inverse_sqrt":
        timescale = warmup if warmup > 0 else INVERSE_SQRT_TIMESCALE
        return LR * math.sqrt(timescale / (timescale + k))
    if name == "exponential":
        gamma = extra.get("gamma", 0.01 ** (1 / main_steps))  # by default: down to 1% of the peak at the end
        return LR * gamma**k
    if name == "step":
        milestones = extra.get("milestones") or [round(f * total) for f in (0.5, 0.75)]
        gamma = extra.get("gamma", 0.1)
        s = k + warmup
        return LR * gamma ** sum(1 for m in milestones if m <= s)
    if name == "cosine_restarts":
        period, into = max(1, round(main_steps * RESTART_FIRST_CYCLE)), k
        while into >= period:  # cycles of T_0, 2 T_0, 4 T_0, ...
            into -= period
            period *= 2
        return LR * (1 + math.cos(math.pi * into / period)) / 2
    raise AssertionError(name)


def _one_cycle(s: int, total: int, warmup: int) -> float:
    """torch's OneCycleLR, cosine annealing, two phases: up from LR/25 to LR over pct_start of the run, then down
    to LR/25/1e4. pct_start is the warmup fraction, clamped to [0.05, 0.5]."""
    pct_start = min(0.5, max(warmup / total, 0.05))
    initial, peak = LR / 25, LR
    final = initial / 1e4
    up_end = pct_start * total - 1

    def anneal(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))

    if s <= up_end:
        return anneal(initial, peak, s / up_end)
    return anneal(peak, final, (s - up_end) / (total - 1 - up_end))


def expected_curve(name: str, total: int, warmup: int, **extra: Any) -> list[float]:
    if name == "one_cycle":
        return [_one_cycle(s, total, warmup) for s in range(total)]
    out = []
    for s in range(total):
        if s < warmup:  # linear warmup from WARMUP_START_FACTOR * LR to LR
            out.append(LR * (WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * s / warmup))
        else:
            out.append(_main(name, s - warmup, max(1, total - warmup), total, warmup, **extra))
    return out


def _assert_curve(actual: list[float], expected: list[float], label: str) -> None:
    assert len(actual) == len(expected)
    for s, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a == pytest.approx(e, rel=1e-6, abs=1e-12), f"{label}: step {s}: lr {a!r}, closed form {e!r}"


# ------------------------------------------------------------------------------------------ tests

WARMUPS = {
    # id: (build_scheduler kwargs, ScheduleSpec fields, expected warmup steps)
    "no_warmup": ({"total_steps": TOTAL}, {}, 0),
    "warmup_steps_arg": ({"total_steps": TOTAL, "warmup_steps": 12}, {}, 12),
    "warmup_ratio_arg": ({"total_steps": TOTAL, "warmup_ratio": 0.08}, {}, 8),
    "spec_warmup_steps": ({}, {"total_steps": TOTAL, "warmup_steps": 12, "warmup_ratio": 0.12}, 12),
    "spec_warmup_ratio": ({"total_steps": TOTAL}, {"warmup_ratio": 0.08}, 8),
}


def test_schedule_names_are_the_nine() -> None:
    names = "constant step cosine linear exponential one_cycle cosine_restarts inverse_sqrt poly"
    assert sorted(SCHEDULES) == sorted(names.split())


@pytest.mark.parametrize("warmup_case", list(WARMUPS), ids=list(WARMUPS))
@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("cosine", {"final_lr_fraction": 0.1}),
        ("linear", {"final_lr_fraction": 0.1}),
        ("poly", {"power": 0.9}),
        ("poly", {"power": 2.0, "final_lr_fraction": 0.05}),
    ],
    ids=["cosine-to-10pct", "linear-to-10pct", "poly-0.9", "poly-2-to-5pct"],
)
def test_decay_to_a_final_fraction_follows_closed_form(name: str, fields: dict[str, Any], warmup_case: str) -> None:
    kwargs, spec_fields, warmup = WARMUPS[warmup_case]
    actual = _curve(_spec(name, **spec_fields, **fields), TOTAL + 1, **kwargs)
    extra = {"final": fields.get("final_lr_fraction", 0.0), "power": fields.get("power", 1.0)}
    _assert_curve(actual[:TOTAL], expected_curve(name, TOTAL, warmup, **extra), f"{name}/{warmup_case}")
    assert actual[TOTAL] == pytest.approx(LR * extra["final"], abs=1e-12)  # ends at the fraction of the peak


def test_a_final_fraction_is_of_each_groups_own_peak() -> None:
    """Layer-wise lrs: every group decays to the fraction of its own lr, not to one absolute floor."""
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": [params[0]], "lr": 1.0}, {"params": [params[1]], "lr": 0.01}])
    scheduler = build_scheduler(optimizer, _spec("cosine", final_lr_fraction=0.1), total_steps=10)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.1, 0.001])


@pytest.mark.parametrize("warmup_case", list(WARMUPS), ids=list(WARMUPS))
@pytest.mark.parametrize("name", SCHEDULES, ids=SCHEDULES)
def test_schedule_follows_closed_form(name: str, warmup_case: str) -> None:
    kwargs, fields, warmup = WARMUPS[warmup_case]
    actual = _curve(_spec(name, **fields), TOTAL, **kwargs)
    _assert_curve(actual, expected_curve(name, TOTAL, warmup), f"{name}/{warmup_case}")
    if name not in ("constant", "one_cycle"):
        # peak lr is reached right after warmup (a curve not starting at LR would hide behind a lax check)
        assert actual[warmup] == pytest.approx(LR)
    if warmup:
        assert actual[0] == pytest.approx(LR * (WARMUP_START_FACTOR if name != "one_cycle" else 1 / 25))


def test_end_points() -> None:
    """Spot values that need no formula: cosine and linear end near 0, exponential at 1% of the peak."""
    cosine = _curve(_spec("cosine"), TOTAL + 1, total_steps=TOTAL)
    assert cosine[TOTAL] == pytest.approx(0.0, abs=1e-12)
    assert cosine[TOTAL // 2] == pytest.approx(LR / 2)
    linear = _curve(_spec("linear"), TOTAL + 1, total_steps=TOTAL)
    assert linear[TOTAL] == pytest.approx(0.0, abs=1e-12)
    assert linear[TOTAL // 4] == pytest.approx(0.75 * LR)
    exponential = _curve(_spec("exponential"), TOTAL + 1, total_steps=TOTAL)
    assert exponential[TOTAL] == pytest.approx(0.01 * LR)
    step = _curve(_spec("step"), TOTAL, total_steps=TOTAL)
    assert (step[49], step[50], step[74], step[75]) == pytest.approx((LR, LR / 10, LR / 10, LR / 100))


def test_step_schedule_with_explicit_milestones_and_gamma() -> None:
    spec = _spec("step", total_steps=TOTAL, milestones=[30, 60, 90], gamma=0.5)
    _assert_curve(_curve(spec, TOTAL), expected_curve("step", TOTAL, 0, milestones=[30, 60, 90], gamma=0.5), "step")


def test_step_schedule_with_milestone_fractions_and_warmup() -> None:
    spec = _spec("step", total_steps=TOTAL, warmup_steps=10, warmup_ratio=0.1, milestone_fractions=[0.3, 0.6])
    _assert_curve(_curve(spec, TOTAL), expected_curve("step", TOTAL, 10, milestones=[30, 60]), "step")


def test_exponential_schedule_keeps_the_spec_gamma() -> None:
    spec = _spec("exponential", total_steps=TOTAL, gamma=0.97)
    _assert_curve(_curve(spec, TOTAL), expected_curve("exponential", TOTAL, 0, gamma=0.97), "exponential")


def test_one_cycle_cycles_momentum_when_the_optimizer_has_one() -> None:
    optimizer = _optimizer(momentum=0.9)
    scheduler = build_scheduler(optimizer, _spec("one_cycle"), total_steps=TOTAL)
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.95)  # OneCycleLR's max_momentum at the start
    for _ in range(TOTAL // 4):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["momentum"] < 0.95


def test_constant_needs_no_total_steps() -> None:
    assert _curve(_spec("constant"), 5) == pytest.approx([LR] * 5)


@pytest.mark.parametrize("name", [n for n in SCHEDULES if n != "constant"])
def test_schedule_without_total_steps_raises(name: str) -> None:
    with pytest.raises(BuildError, match="total_steps") as info:
        build_scheduler(_optimizer(), _spec(name))
    assert info.value.field == "total_steps"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total_steps": 10, "warmup_steps": 10},
        {"total_steps": 10, "warmup_steps": 11},
        {"total_steps": 10, "warmup_ratio": 1.0},
        {"total_steps": 10, "warmup_steps": -1},
    ],
    ids=["warmup_eq_total", "warmup_gt_total", "ratio_one", "negative"],
)
def test_warmup_not_shorter_than_total_raises(kwargs: dict[str, Any]) -> None:
    with pytest.raises(BuildError) as info:
        build_scheduler(_optimizer(), _spec("cosine"), **kwargs)
    assert info.value.field == "warmup_steps"


def test_warmup_from_spec_not_shorter_than_total_raises() -> None:
    with pytest.raises(BuildError, match="warmup_steps"):
        build_scheduler(_optimizer(), _spec("linear", total_steps=5, warmup_steps=5))


def test_total_steps_below_one_raises() -> None:
    with pytest.raises(BuildError, match="total_steps"):
        build_scheduler(_optimizer(), _spec("cosine"), total_steps=0)
