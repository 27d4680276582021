"""Trial runs, the LR range test, validate() on a user's model, and the candidate race (issue 4)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from torch import nn

import optirec
from optirec.optimizers import TrialBudget, lr_range_test, race, run_trial, validate
from optirec.optimizers.errors import BuildError
from optirec.optimizers.validation import LR_RUNS, candidates, with_optimizer
from optirec.optimizers.workloads.base import Batch, Workload
from optirec.rules import Recommendation, recommend


class Regression(Workload):
    """A seeded linear-regression workload, independent of the bundled proxies."""

    name = "test_regression"
    family = "mlp"
    description = "y = Xw + noise"

    def build_model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1)).to(self.device)

    def _data(self, tag: int) -> Batch:
        g = torch.Generator().manual_seed(self.seed * 1000 + tag)
        x = torch.randn(64, 8, generator=g)
        w = torch.linspace(-1, 1, 8).unsqueeze(1)
        return x.to(self.device), (x @ w + 0.05 * torch.randn(64, 1, generator=g)).to(self.device)

    def train_batch(self, step: int) -> Batch:
        return self._data(step % 8)

    def heldout_batches(self) -> list[Batch]:
        return [self._data(10_000)]

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(model(batch[0]), batch[1])


def _rec(name: str = "adam", lr: float | None = None, **profile: Any) -> Recommendation:
    base = recommend({"architecture": "mlp", "total_steps": 100, **profile})
    hp = dict(base.optimizer.hyperparameters) if base.optimizer.name == name else {"lr": 1e-3}
    if name == "sgd_momentum":
        hp = {"lr": 0.05, "momentum": 0.9}
    if lr is not None:
        hp["lr"] = lr
    return base.model_copy(
        update={"optimizer": base.optimizer.model_copy(update={"name": name, "hyperparameters": hp})}
    )


def test_trial_trains_and_reports_curves() -> None:
    result = run_trial(_rec("adam", lr=1e-2), Regression(), steps=60, device="cpu", seed=0)
    assert result.status == "succeeded" and not result.diverged
    assert result.steps_done == 60 and len(result.train_loss) == 60
    assert result.heldout and result.heldout[-1].step == 60
    assert result.final_loss is not None and result.final_loss < result.train_loss[0]
    assert result.steps_per_second > 0 and result.peak_memory_bytes > 0 and result.device == "cpu"


def test_trial_is_reproducible_on_cpu() -> None:
    a = run_trial(_rec("adam", lr=1e-2), Regression(seed=3), steps=30, device="cpu", seed=3)
    b = run_trial(_rec("adam", lr=1e-2), Regression(seed=3), steps=30, device="cpu", seed=3)
    assert a.train_loss == b.train_loss and a.final_loss == b.final_loss


def test_a_100x_too_high_lr_is_flagged_as_diverged() -> None:
    good = run_trial(_rec("sgd_momentum"), Regression(), steps=60, device="cpu")
    bad = run_trial(_rec("sgd_momentum", lr=0.05 * 100), Regression(), steps=60, device="cpu")
    assert not good.diverged
    assert bad.diverged and bad.status == "diverged"
    assert bad.diverged_at is not None and bad.diverged_at < 60
    assert bad.divergence_reason


def test_progress_callback_and_cancellation() -> None:
    seen: list[tuple[int, int]] = []
    cancel = threading.Event()

    def progress(done: int, total: int, loss: float) -> None:
        seen.append((done, total))
        if done == 5:
            cancel.set()

    result = run_trial(_rec(), Regression(), steps=50, device="cpu", progress=progress, cancel=cancel)
    assert result.status == "cancelled" and result.steps_done == 5
    assert seen[0] == (1, 50) and seen[-1] == (5, 50)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"steps": 0}, "steps", id="zero-steps"),
        pytest.param({"steps": 10, "budget": TrialBudget(max_steps=5)}, "steps", id="over-step-budget"),
        pytest.param({"steps": 10, "budget": TrialBudget(max_parameters=10)}, "size", id="over-parameter-cap"),
        pytest.param({"steps": 10, "device": "tpu9"}, "device", id="unknown-device"),
    ],
)
def test_budgets_and_bad_arguments_are_refused(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(BuildError) as err:
        run_trial(_rec(), Regression(), **{"device": "cpu", **kwargs})
    assert err.value.field == field


def test_wall_clock_budget_stops_the_run() -> None:
    result = run_trial(_rec(), Regression(), steps=5000, device="cpu", budget=TrialBudget(max_seconds=0.05))
    assert result.status == "budget_exhausted" and result.steps_done < 5000


def _objective(model: nn.Module, batch: Batch) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch[0]), batch[1])


@pytest.mark.parametrize(("lr", "expected"), [(1e-6, "too_low"), (30.0, "too_high")])
def test_range_test_verdict_on_a_deliberately_bad_lr(lr: float, expected: str) -> None:
    work = Regression()
    model = work.build_model()
    batches = [work.train_batch(i) for i in range(8)]
    test = lr_range_test(model, _objective, batches, _rec("adam", lr=lr), steps=80)
    assert test.verdict == expected, (test.suggested_lr, test.factor)
    assert test.suggested_lr is not None and test.lrs and len(test.lrs) == len(test.losses)


def test_range_test_restores_weights() -> None:
    work = Regression()
    model = work.build_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr_range_test(model, _objective, [work.train_batch(i) for i in range(4)], _rec("adam", lr=1e-3), steps=40)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_validate_on_the_users_model_restores_everything() -> None:
    work = Regression()
    model = work.build_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = optirec.validate(
        model, nn.functional.mse_loss, [work.train_batch(i) for i in range(8)], _rec("adam", lr=1e-2)
    )
    assert report.short_run.steps > 0 and report.short_run.improved
    assert report.verdict in ("ok", "too_high", "too_low", "inconclusive")
    assert report.lr_test.recommended_lr == pytest.approx(1e-2)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert validate is optirec.validate


def test_validate_reports_a_diverging_lr() -> None:
    work = Regression()
    report = validate(
        work.build_model(),
        nn.functional.mse_loss,
        [work.train_batch(i) for i in range(8)],
        _rec("sgd_momentum", lr=5.0),
    )
    assert report.short_run.diverged and report.verdict == "diverged"


def _validate(rec: Recommendation, **kwargs: Any) -> Any:
    work = Regression()
    return validate(
        work.build_model(),
        nn.functional.mse_loss,
        [work.train_batch(i) for i in range(8)],
        rec,
        steps=40,
        heldout=work.heldout_batches(),
        **kwargs,
    )


def test_validate_moves_a_too_low_lr_up_until_short_runs_stop_improving() -> None:
    report = _validate(_rec("adam", lr=1e-4))
    assert report.scored_on == "heldout"
    assert report.validated_lr > 1e-4 and report.verdict == "too_low", report.advice
    scores = [p.score for p in report.lr_search]
    assert scores[0] is not None and all(s is not None for s in scores)
    best = min(report.lr_search, key=lambda p: p.score)
    assert best.lr == report.validated_lr and best.score < scores[0]
    assert report.lr_test.verdict == "too_low" and report.lr_test.factor is not None
    factors = [p.factor for p in report.lr_search]
    assert factors[:2] == [1.0, pytest.approx(1 / report.lr_test.factor)], "then the range test's suggestion as it is"
    assert factors[2] == pytest.approx(2 * factors[1]), "it won, so the search goes on from it, further first"
    assert len(report.lr_search) <= LR_RUNS
    assert report.recommendation.optimizer.hyperparameters["lr"] == pytest.approx(report.validated_lr)
    assert any("validate(): lr x" in note for note in report.recommendation.notes)


def test_validate_goes_back_to_the_recommendation_when_the_range_tests_suggestion_loses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A suggestion ten million times too high diverges: the search then steps from the recommended lr by
    2x, the way the range test pointed."""
    from optirec.optimizers import validation

    real = validation.lr_range_test

    def misleading(*args: Any, **kwargs: Any) -> Any:
        test = real(*args, **kwargs)
        return test.model_copy(update={"verdict": "too_low", "factor": 1e-7, "suggested_lr": test.recommended_lr * 1e7})

    monkeypatch.setattr(validation, "lr_range_test", misleading)
    report = _validate(_rec("adam", lr=1e-4))
    jump = report.lr_search[1]
    assert jump.factor == pytest.approx(1e7) and jump.diverged and jump.score is None
    assert [p.factor for p in report.lr_search][2] == pytest.approx(2.0)
    assert 1.0 < report.validated_lr / 1e-4 < 1e7


def test_validate_says_when_its_run_budget_ran_out_while_still_improving() -> None:
    """A 1e-4 Adam lr is far too low here: the range test's suggestion wins, and with a budget of two runs the
    search has to stop right there."""
    cut = _validate(_rec("adam", lr=1e-4), lr_runs=2)
    assert len(cut.lr_search) == 2 and cut.validated_lr == cut.lr_search[-1].lr > 1e-4, "the last run was the best"
    assert cut.still_improving and "lr may be higher still" in cut.advice and "lr_runs" in cut.advice
    full = _validate(_rec("adam", lr=1e-4), lr_runs=12)
    assert not full.still_improving and "still improving" not in full.advice
    assert 2 < len(full.lr_search) < 12, "it stopped because runs did worse, not for want of runs"


def test_validate_keeps_the_lr_when_no_neighbour_beats_it() -> None:
    good = _validate(_rec("adam", lr=1e-4), lr_runs=12).validated_lr  # climbs to where it stops improving
    report = _validate(_rec("adam", lr=good))
    assert report.validated_lr == pytest.approx(good) and report.verdict == "ok", report.advice
    assert not report.still_improving
    assert report.recommendation.optimizer.hyperparameters["lr"] == pytest.approx(good)
    tried = sorted(p.factor for p in report.lr_search)
    assert tried[0] < 1.0 < tried[-1], "both neighbours were tried before keeping the recommendation"


def test_validate_searches_down_from_a_diverging_lr() -> None:
    report = _validate(_rec("sgd_momentum", lr=5.0))
    assert report.verdict == "diverged" and report.lr_search[0].diverged and report.lr_search[0].score is None
    assert all(p.factor <= 1.0 for p in report.lr_search), "never up from a diverging lr"
    assert report.validated_lr < 5.0 and "trained without diverging" in report.advice


def test_validate_with_one_run_only_checks_the_recommendation() -> None:
    report = _validate(_rec("adam", lr=1e-4), lr_runs=1)
    assert [p.factor for p in report.lr_search] == [1.0] and report.validated_lr == pytest.approx(1e-4)


def test_validate_scores_on_the_training_tail_without_heldout_and_takes_an_objective() -> None:
    work = Regression()
    report = validate(
        work.build_model(),
        None,
        [work.train_batch(i) for i in range(8)],
        _rec("adam", lr=1e-3),
        steps=30,
        objective=work.loss,
        lr_runs=2,
    )
    assert report.scored_on == "train_tail" and report.lr_search[0].score is not None


def test_validate_scales_every_parameter_group_lr() -> None:
    rec = _rec("adam", lr=1e-4)
    group = rec.param_groups[0] if rec.param_groups else None
    from optirec.rules.recommendation import ParamGroup

    extra = ParamGroup(name="dense", match=["Linear"], hyperparameters={"lr": 3e-4}, why="test group")
    rec = rec.model_copy(update={"param_groups": [*([group] if group else []), extra]})
    report = _validate(rec)
    factor = report.validated_lr / 1e-4
    assert factor > 1
    scaled = next(g for g in report.recommendation.param_groups if g.name == "dense")
    assert scaled.hyperparameters["lr"] == pytest.approx(3e-4 * factor)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lr_runs": 0}, "lr_runs"),
        ({"steps": 0}, "steps"),
        ({"heldout": []}, "heldout"),
    ],
    ids=["no-runs", "no-steps", "empty-heldout"],
)
def test_validate_refuses_bad_arguments(kwargs: dict[str, Any], field: str) -> None:
    work = Regression()
    with pytest.raises(BuildError) as info:
        validate(work.build_model(), nn.functional.mse_loss, [work.train_batch(0)], _rec("adam"), **kwargs)
    assert info.value.field == field


def test_validate_needs_a_loss_fn_or_an_objective() -> None:
    work = Regression()
    with pytest.raises(BuildError) as info:
        validate(work.build_model(), None, [work.train_batch(0)], _rec("adam"))
    assert info.value.field == "loss_fn"


def test_race_ranks_candidates_on_the_same_seeds() -> None:
    rec = recommend({"architecture": "mlp", "total_steps": 40})
    entries = race(rec, k=3, workload=Regression(), steps=40, seeds=(0, 1), device="cpu")
    assert [e.rank for e in entries] == list(range(1, len(entries) + 1))
    assert {e.optimizer for e in entries} == {rec.optimizer.name, *[a.name for a in rec.alternatives[:2]]}
    finite = [e.mean_final_loss for e in entries if e.mean_final_loss is not None]
    assert finite == sorted(finite)
    assert all(len(e.results) == 2 for e in entries)


@pytest.mark.gpu
def test_trial_on_gpu_with_mixed_precision() -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine: the GPU trial path needs a GPU")
    result = run_trial(_rec(mixed_precision=True), Regression(), steps=50, device="cuda")
    assert result.device.startswith("cuda") and result.mixed_precision and result.status == "succeeded"


def test_with_optimizer_keeps_the_plan_and_drops_the_old_choices_own_groups() -> None:
    rec = recommend({"domain": "recommender", "total_steps": 100})
    assert {g.optimizer for g in rec.param_groups} == {"adagrad", "adam"}  # the hybrid: one optimizer per group
    swapped = with_optimizer(rec, "sgd_momentum", {"lr": 0.05, "momentum": 0.9})
    assert swapped.optimizer.name == "sgd_momentum" and swapped.optimizer.hyperparameters == {
        "lr": 0.05,
        "momentum": 0.9,
    }
    assert swapped.param_groups == [] and swapped.schedule == rec.schedule and swapped.lr_scaling == rec.lr_scaling
    assert rec.optimizer.name == "adagrad" and len(rec.param_groups) == 2  # the original is untouched
    assert [c.optimizer.name for c in candidates(rec, 3)] == [
        rec.optimizer.name,
        *[a.name for a in rec.alternatives[:2]],
    ]
