"""A diverged trial carries its diagnosis; the revised lr trains (on a real curve, not a synthetic one)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from optirec import diagnose, recommend
from optirec.optimizers import run_trial
from optirec.rules import Recommendation

STEPS = 60


def _too_high(factor: float) -> Recommendation:
    rec = recommend({"architecture": "mlp", "total_steps": STEPS})
    hp = {**rec.optimizer.hyperparameters, "lr": rec.optimizer.hyperparameters["lr"] * factor}
    return rec.model_copy(update={"optimizer": rec.optimizer.model_copy(update={"hyperparameters": hp})})


def test_diverged_trial_carries_its_diagnosis_and_the_revised_lr_trains() -> None:
    # 100x the recommended lr diverges; the diagnosis's tenfold cut brings it to 10x, which trains (the MLP's
    # recipe starts at its peak lr: no warmup to soften a larger excess)
    rec = _too_high(100)
    result = run_trial(rec, workload="mlp", steps=STEPS, device="cpu", seed=0)
    assert result.diverged, result.divergence_reason
    assert result.diagnosis is not None
    symptoms = [f["symptom"] for f in result.diagnosis["findings"]]
    assert "divergence" in symptoms, result.diagnosis["findings"]
    revised = Recommendation.model_validate(result.diagnosis["recommendation"])
    assert revised.optimizer.hyperparameters["lr"] == pytest.approx(rec.optimizer.hyperparameters["lr"] / 10)
    # the same answer from the public function on the trial's own curve
    assert diagnose(train_loss=result.train_loss, recommendation=rec).recommendation == revised
    again = run_trial(revised, workload="mlp", steps=STEPS, device="cpu", seed=0)
    assert not again.diverged, again.divergence_reason
    assert again.diagnosis is None
    assert again.final_loss is not None and again.final_loss < again.train_loss[0]


def test_healthy_trial_has_no_diagnosis() -> None:
    result = run_trial(recommend({"architecture": "mlp", "total_steps": 20}), workload="mlp", steps=20, device="cpu")
    assert not result.diverged and result.diagnosis is None
