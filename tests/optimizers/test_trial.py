"""Trial runs, the LR range test and the candidate race (issue 4); validate() is tests/optimizers/test_validate.py."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch
from torch import nn

from optirec.optimizers import TrialBudget, lr_range_test, race, run_trial
from optirec.optimizers.errors import BuildError
from optirec.optimizers.racing import candidates, with_optimizer
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
