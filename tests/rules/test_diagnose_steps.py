"""optirec.diagnose quotes the caller's steps (``steps`` / ``val_steps``), never the index of a point.

Every detector is run on a curve logged every 20 steps from step 760, and its finding must quote steps in
760-1980; validation evaluated at uneven steps sits where it was evaluated. Bad steps name the field.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest

from optirec import diagnose, recommend
from optirec.rules import ProfileError

STEPS = list(range(760, 1981, 20))  # 62 points, as a CSV logged every 20 steps from a resumed run
N = len(STEPS)
#: the numbers a summary quotes as steps: "step 1520", "steps 760-1980", "between steps 1560 and 1560", "to 1980"
_STEP_WORDS = re.compile(r"\b(?:steps?|to|and|-)\s*(\d+)(?![\d.])")


def _noisy(values: list[float], seed: int, rel: float = 0.02) -> list[float]:
    rng = random.Random(seed)
    return [v * (1 + rel * rng.gauss(0, 1)) for v in values]


def _decay(n: int = N, seed: int = 0) -> list[float]:
    return _noisy([2.0 * math.exp(-4 * t / n) + 0.2 for t in range(n)], seed)


def nan_from_row_38() -> dict[str, Any]:
    curve: list[float | None] = list(_decay())
    curve[38:] = [None] * (N - 38)
    return {"train_loss": curve}


def spike_at_row_40() -> dict[str, Any]:
    curve = _decay()
    curve[40] *= 8
    return {"train_loss": curve, "recommendation": recommend({"architecture": "bert"})}


def flat() -> dict[str, Any]:
    return {"train_loss": _noisy([2.3] * N, 1)}


def oscillating_tail() -> dict[str, Any]:
    curve = _decay()
    curve[20:] = [0.5 * (1 + 0.08 * (1 if t % 2 else -1)) for t in range(20, N)]
    return {"train_loss": curve, "recommendation": recommend({"architecture": "resnet"})}


# (maker, symptom, expected step of the start, expected end)
CASES = [
    pytest.param(nan_from_row_38, "divergence", STEPS[38], STEPS[-1], id="divergence"),
    pytest.param(spike_at_row_40, "gradient_explosion", STEPS[40], STEPS[40], id="gradient-explosion"),
    pytest.param(flat, "no_improvement", STEPS[0], STEPS[-1], id="no-improvement"),
]


@pytest.mark.parametrize(("maker", "symptom", "start", "end"), CASES)
def test_findings_quote_the_callers_steps(maker: Any, symptom: str, start: int, end: int) -> None:
    kwargs = maker()
    by_index = {f.symptom: f for f in diagnose(**kwargs).findings}
    dx = diagnose(**kwargs, steps=STEPS)
    found = {f.symptom: f for f in dx.findings}
    assert found.keys() == by_index.keys(), "the steps change what is quoted, not what is found"
    f = found[symptom]
    assert (f.evidence.start_step, f.evidence.end_step) == (start, end), f.evidence
    assert str(start) in f.evidence.summary and str(start) in dx.message
    quoted = [int(s) for s in _STEP_WORDS.findall(f.evidence.summary)]
    assert quoted and all(s in STEPS for s in quoted), f.evidence.summary
    assert (dx.curves.first_step, dx.curves.last_step) == (760, 1980)


def test_oscillation_quotes_the_callers_steps() -> None:
    dx = diagnose(**oscillating_tail(), steps=[10 * s for s in range(N)])
    f = next(f for f in dx.findings if f.symptom == "oscillation")
    assert f.evidence.start_step % 10 == 0 and f.evidence.end_step == 10 * (N - 1)


def test_a_curve_that_starts_late_may_be_a_plateau() -> None:
    f = diagnose(**flat(), steps=STEPS).findings[0]
    assert "the curve starts at step 760" in f.evidence.summary


def _overfit(val_steps: list[int], n: int = 1000) -> tuple[list[float], list[float]]:
    train = _noisy([2.0 * math.exp(-4 * t / n) + 0.2 for t in range(n)], 7, rel=0.03)
    val = [0.9 + 1.5 * math.exp(-10 * s / n) + (0.25 * (s - 400) / 600 if s > 400 else 0.0) for s in val_steps]
    return train, _noisy(val, 8, rel=0.01)


def test_uneven_validation_steps_are_placed_where_they_were_evaluated() -> None:
    # dense evaluations early, sparse late: spread evenly they would put the minimum near step 100
    val_steps = [*range(9, 300, 5), *range(309, 1000, 50)]
    train, val = _overfit(val_steps)
    dx = diagnose(
        train_loss=train, val_loss=val, val_steps=val_steps, recommendation=recommend({"architecture": "vit"})
    )
    f = next(f for f in dx.findings if f.symptom == "overfitting")
    assert f.evidence.start_step in val_steps and 300 <= f.evidence.start_step <= 500, f.evidence
    assert f.evidence.end_step == val_steps[-1]
    # spread evenly over the 1,000 training points, the 73 evaluations would be quoted at steps they never ran at
    spread = diagnose(train_loss=train, val_loss=val, recommendation=recommend({"architecture": "vit"}))
    assert all(f2.evidence.start_step not in val_steps for f2 in spread.findings if f2.symptom == "overfitting")


def test_validation_alone_uses_its_val_steps() -> None:
    dx = diagnose(val_loss=[1.0, None], val_steps=[500, 1000])
    assert dx.findings[0].evidence.start_step == 1000


def test_integral_floats_are_steps() -> None:
    dx = diagnose(train_loss=[1.0, 0.9, None], steps=[10.0, 20.0, 30.0])
    assert dx.findings[0].evidence.start_step == 30


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        pytest.param({"train_loss": [1, 2, 3], "steps": [1, 2]}, "steps", "2 step(s) for 3 point(s)", id="short"),
        pytest.param({"train_loss": [1, 2], "steps": [1, 2, 3]}, "steps", "3 step(s) for 2", id="long"),
        pytest.param({"train_loss": [1, 2, 3], "steps": [0, 5, 5]}, "steps[2]", "increase strictly", id="repeat"),
        pytest.param({"train_loss": [1, 2, 3], "steps": [9, 5, 7]}, "steps[1]", "increase strictly", id="falling"),
        pytest.param({"train_loss": [1, 2], "steps": [-1, 5]}, "steps[0]", "integer from 0", id="negative"),
        pytest.param({"train_loss": [1, 2], "steps": [0, 1.5]}, "steps[1]", "integer from 0", id="fraction"),
        pytest.param({"train_loss": [1, 2], "steps": [0, "1"]}, "steps[1]", "integer from 0", id="string-element"),
        pytest.param({"train_loss": [1, 2], "steps": [True, 2]}, "steps[0]", "integer from 0", id="boolean"),
        pytest.param({"train_loss": [1, 2], "steps": [0, 2**60]}, "steps[1]", "integer from 0", id="huge"),
        pytest.param({"train_loss": [1, 2], "steps": [0, math.nan]}, "steps[1]", "integer from 0", id="nan"),
        pytest.param({"train_loss": [1, 2], "steps": "0,1"}, "steps", "list of integers", id="string"),
        pytest.param({"train_loss": [1, 2], "steps": 5}, "steps", "list of integers", id="scalar"),
        pytest.param({"val_loss": [1, 2], "steps": [0, 1]}, "steps", "train_loss, which is not given", id="no-train"),
        pytest.param(
            {"train_loss": [1, 2], "val_steps": [0]}, "val_steps", "val_loss, which is not given", id="no-val"
        ),
        pytest.param({"val_loss": [1, 2], "val_steps": [0]}, "val_steps", "1 step(s) for 2", id="val-short"),
        pytest.param({"val_loss": [1, 2], "val_steps": [4, 4]}, "val_steps[1]", "strictly", id="val-repeat"),
        pytest.param({"val_loss": [1, 2], "val_steps": (s for s in range(5))}, "val_steps", "more than 2", id="gen"),
    ],
)
def test_bad_steps_name_the_field(kwargs: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ProfileError) as info:
        diagnose(**kwargs)
    issue = info.value.issues[0]
    assert issue.field == field, info.value.issues
    assert words in issue.message, issue.message


@pytest.mark.parametrize(
    ("val_steps", "outside"),
    [
        pytest.param([100, 200, 300], 0, id="inside"),
        pytest.param([100, 2_000, 3_000], 2, id="epochs-vs-steps"),
        pytest.param([0, 100, 200], 1, id="before-the-first"),
    ],
)
def test_val_steps_outside_the_training_steps_are_noted(val_steps: list[int], outside: int) -> None:
    dx = diagnose(
        train_loss=_decay(), steps=[10 + 10 * i for i in range(N)], val_loss=[1.0, 0.9, 0.8], val_steps=val_steps
    )
    notes = [n for n in dx.notes if "lie outside the training steps 10-620" in n]
    assert len(notes) == (1 if outside else 0), dx.notes
    if outside:
        assert notes[0].startswith(f"{outside} of 3 val_steps")
