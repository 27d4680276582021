"""optirec.diagnose on a loss that never improves, and on a late plateau under any schedule.

A flat, a period-2 (sawtooth) and a noisy flat curve over 1,000 steps are each reported as ``no_improvement``
whatever the schedule; healthy falling curves never are. No seed names a cause for a loss that never falls,
so the finding says what was seen and what to check, and changes nothing. A late plateau is reported under a
cosine schedule too, without the seed's cause (a fixed learning rate), which holds only under a fixed one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from optirec import Recommendation, diagnose, recommend

N = 1000


def _rec(schedule: str | None) -> Recommendation | None:
    if schedule is None:
        return None
    rec = recommend({"architecture": "resnet", "total_steps": N})
    return rec.model_copy(update={"schedule": rec.schedule.model_copy(update={"name": schedule})})


def _noise(values: list[float], seed: int, rel: float) -> list[float]:
    rng = random.Random(seed)
    return [v * (1 + rel * rng.gauss(0, 1)) for v in values]


def flat(seed: int) -> list[float]:
    return [2.3026] * N  # log(10): a 10-class classifier that learns nothing


def sawtooth(seed: int) -> list[float]:
    return [2.3 * (1 + 0.05 * (1 if t % 2 else -1)) for t in range(N)]


def small_sawtooth(seed: int) -> list[float]:
    return _noise([2.3 * (1 + 0.01 * (1 if t % 2 else -1)) for t in range(N)], seed, 0.005)


def noisy_flat(seed: int) -> list[float]:
    return _noise([2.3] * N, seed, 0.05)


def heavy_noise_flat(seed: int) -> list[float]:
    curve = _noise([1.0] * N, seed, 0.3)
    curve[500] = 40.0  # one wild point moves no median
    return curve


def period_3(seed: int) -> list[float]:
    return _noise([2.3 * (1 + 0.04 * (0, 1, -1)[t % 3]) for t in range(N)], seed, 0.01)


def slow_rise(seed: int) -> list[float]:
    return _noise([2.3 + 0.1 * t / N for t in range(N)], seed, 0.02)


FLAT = {
    "flat": flat,
    "sawtooth": sawtooth,
    "small-sawtooth": small_sawtooth,
    "noisy-flat": noisy_flat,
    "heavy-noise-flat": heavy_noise_flat,
    "period-3": period_3,
    "slow-rise": slow_rise,
}


def exp_decay(seed: int) -> list[float]:
    return _noise([2.0 * math.exp(-4 * t / N) + 0.2 for t in range(N)], seed, 0.05)


def slow_fall(seed: int) -> list[float]:
    return _noise([2.3 * (1 - 0.1 * t / N) for t in range(N)], seed, 0.05)  # 10% over the run, under 5% noise


def steady_small_fall(seed: int) -> list[float]:
    return _noise([2.3 * (1 - 0.04 * t / N) for t in range(N)], seed, 0.03)  # within the block noise, yet steady


def fast_then_flat(seed: int) -> list[float]:
    return _noise([2.0 * math.exp(-t / 5) + 0.3 for t in range(N)], seed, 0.02)  # learned, then stalled


def falling_sawtooth(seed: int) -> list[float]:
    return [(2.0 * math.exp(-3 * t / N) + 0.3) * (1 + 0.05 * (1 if t % 2 else -1)) for t in range(N)]


def noisy_power_law(seed: int) -> list[float]:
    return _noise([3.0 * (t + 10) ** -0.5 + 0.05 for t in range(N)], seed, 0.2)


HEALTHY = {
    "exp-decay": exp_decay,
    "slow-fall": slow_fall,
    "steady-small-fall": steady_small_fall,
    "fast-then-flat": fast_then_flat,
    "falling-sawtooth": falling_sawtooth,
    "noisy-power-law": noisy_power_law,
}
SCHEDULES = [pytest.param(None, id="no-schedule"), "constant", "cosine", "step", "linear"]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", list(FLAT))
def test_a_loss_that_never_improves_is_reported_whatever_the_schedule(
    shape: str, seed: int, schedule: str | None
) -> None:
    rec = _rec(schedule)
    dx = diagnose(train_loss=FLAT[shape](seed), recommendation=rec)
    found = {f.symptom: f for f in dx.findings}
    assert "no_improvement" in found, [(f.symptom, f.evidence.summary) for f in dx.findings]
    f = found["no_improvement"]
    assert (f.evidence.start_step, f.evidence.end_step) == (0, N - 1)
    head = "over the whole curve (steps 0-999, 1000 points) the loss does not fall beyond its noise: it starts at "
    assert f.evidence.summary.startswith(head), f.evidence.summary
    assert f.severity == "high" and not dx.healthy
    # no seed names a cause: the finding says so, says what to check, and changes nothing
    assert f.cause_applies is False and f.actions == []
    assert f.cause.startswith("not named by the seeds")
    assert "learning rate" in f.fix and "optirec validate" in f.fix
    assert f.source.startswith("004 §6.3")
    assert not [c for c in dx.changes if c.symptom == "no_improvement"]
    assert "no_improvement" not in {c.symptom for c in dx.causes}
    assert "late_plateau" not in found  # it never fell, so it did not stall after learning


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", list(HEALTHY))
def test_a_falling_loss_is_never_reported_as_not_improving(shape: str, seed: int, schedule: str | None) -> None:
    dx = diagnose(train_loss=HEALTHY[shape](seed), recommendation=_rec(schedule))
    found = {f.symptom for f in dx.findings}
    assert not found & {"no_improvement", "loss_rising"}, [f.evidence.summary for f in dx.findings]


@pytest.mark.parametrize(
    ("shape", "oscillation"),
    [pytest.param(sawtooth, True, id="sawtooth"), pytest.param(noisy_flat, False, id="noisy-flat")],
)
def test_a_sawtooth_is_both_an_oscillation_and_no_improvement(
    shape: Callable[[int], list[float]], oscillation: bool
) -> None:
    dx = diagnose(train_loss=shape(0), recommendation=_rec("constant"))
    found = {f.symptom: f for f in dx.findings}
    assert ("oscillation" in found) is oscillation
    assert ("swings up and down" in found["no_improvement"].evidence.summary) is oscillation
    if oscillation:  # the oscillation row's seed cause still applies, and its fix is made
        assert found["oscillation"].cause_applies and any(c.symptom == "oscillation" for c in dx.changes)


@pytest.mark.parametrize(("n", "checked"), [(2, "only divergence was"), (5, "only divergence was"), (29, "jumps were")])
def test_short_curves_are_not_judged_and_say_so(n: int, checked: str) -> None:
    dx = diagnose(train_loss=[2.3] * n)
    assert dx.healthy and "too few to judge most symptoms" in dx.message
    assert any(note.startswith(f"{n} point(s) are too few") and checked in note for note in dx.notes), dx.notes
    assert "too few" not in diagnose(train_loss=[2.3] * 30).message


def test_named_no_improvement_uses_its_aliases() -> None:
    dx = diagnose(symptoms=["not learning"])
    assert [f.symptom for f in dx.findings] == ["no_improvement"] and not dx.changes
    assert any("no seed names a cause" in n for n in dx.notes)


# ---------------------------------------------------------------------------------------- loss rising
def u_shape(seed: int) -> list[float]:
    return _noise([2.3 - math.sin(math.pi * t / N) for t in range(N)], seed, 0.03)


def fall_then_climb(seed: int) -> list[float]:
    return _noise(
        [2.0 * math.exp(-t / 80) + 0.3 + (0.4 * (t - 600) / 400 if t > 600 else 0.0) for t in range(N)], seed, 0.03
    )


def slow_creep(seed: int) -> list[float]:
    return _noise([2.0 * math.exp(-t / 50) + 0.5 + 0.1 * t / N for t in range(N)], seed, 0.01)


RISING = {"u-shape": u_shape, "fall-then-climb": fall_then_climb, "slow-creep": slow_creep}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", list(RISING))
def test_a_loss_that_climbs_back_is_reported(shape: str, seed: int, schedule: str | None) -> None:
    dx = diagnose(train_loss=RISING[shape](seed), recommendation=_rec(schedule))
    found = {f.symptom: f for f in dx.findings}
    assert "loss_rising" in found, [(f.symptom, f.evidence.summary) for f in dx.findings]
    f = found["loss_rising"]
    assert f.evidence.end_step == N - 1 and 0 < f.evidence.start_step < N - 100
    assert f.evidence.summary.startswith("the loss fell to ") and "then rose to " in f.evidence.summary
    assert f.cause_applies is False and f.actions == [] and "divides the learning rate by 10" in f.fix
    assert not found.keys() & {"no_improvement", "late_plateau", "divergence"}
    assert not [c for c in dx.changes if c.symptom == "loss_rising"]


def test_a_climb_under_warm_restarts_is_the_schedule() -> None:
    assert "loss_rising" not in {
        f.symptom for f in diagnose(train_loss=u_shape(0), recommendation=_rec("cosine_restarts")).findings
    }


# ---------------------------------------------------------------------------------------- late plateau
def plateau(seed: int = 5) -> list[float]:
    return _noise([2.0 * math.exp(-t / 60) + 0.3 for t in range(N)], seed, 0.05)


@pytest.mark.parametrize(
    ("schedule", "applies"),
    [
        pytest.param("constant", True, id="constant"),
        pytest.param("step", True, id="step-fixed-between-milestones"),
        pytest.param(None, True, id="unknown-schedule"),
        pytest.param("cosine", False, id="cosine"),
        pytest.param("linear", False, id="linear"),
        pytest.param("one_cycle", False, id="one-cycle"),
    ],
)
def test_a_late_plateau_is_reported_under_any_schedule(schedule: str | None, applies: bool) -> None:
    rec = _rec(schedule)
    dx = diagnose(train_loss=plateau(), recommendation=rec)
    assert [f.symptom for f in dx.findings] == ["late_plateau"], [f.evidence.summary for f in dx.findings]
    f = dx.findings[0]
    assert f.cause_applies is applies
    if applies:
        assert (f.cause, f.fix, f.actions) == ("fixed learning rate", "apply cosine annealing", ["cosine_annealing"])
        assert dx.recommendation.schedule.name == "cosine"
        assert [c.symptom for c in dx.causes] == ["late_plateau"]
    else:
        assert rec is not None
        assert f.cause.startswith("not the seed's") and "fixed learning rate" in f.cause
        assert f.actions == [] and not dx.changes and dx.recommendation == rec and dx.causes == []
        assert f"a {schedule} schedule" in f.evidence.summary
        assert any("does not hold under a" in n for n in dx.notes)


def test_a_named_plateau_under_cosine_changes_nothing() -> None:
    rec = _rec("cosine")
    dx = diagnose(symptoms=["plateau"], recommendation=rec)
    assert dx.findings[0].cause_applies is False and dx.recommendation == rec


def test_oscillating_tail_is_not_also_a_plateau() -> None:
    curve = exp_decay(6)
    for t in range(500, N):
        curve[t] = 0.45 * (1 + 0.08 * (1 if t % 2 else -1))
    dx = diagnose(train_loss=curve, recommendation=_rec("cosine"))
    assert [f.symptom for f in dx.findings] == ["oscillation"]
