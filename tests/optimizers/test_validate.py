"""validate(): a budgeted successive-halving search anchored on the recommendation (issue 20)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import optirec
from optirec.optimizers import halving, validation
from optirec.optimizers.errors import BuildError
from optirec.optimizers.validation import validate
from optirec.rules import Recommendation, recommend
from optirec.rules.recommendation import Alternative, ParamGroup

#: curvatures of the planted quadratic: for plain SGD at a constant lr the best lr is 2 / (min + max)
CURVATURES = (1.0, 3.0)
BEST_SGD_LR = 2 / (CURVATURES[0] + CURVATURES[1])
STEPS = 90


class Quadratic(nn.Module):
    """offset + 0.5 * sum_i h_i (w_i - 1)^2 with h spread over CURVATURES: the loss is its own held-out score."""

    def __init__(self, curvatures: tuple[float, float] = CURVATURES, dim: int = 10, offset: float = 0.0) -> None:
        super().__init__()
        self.offset = offset
        self.w = nn.Parameter(torch.zeros(dim))
        self.register_buffer("h", torch.logspace(*torch.log10(torch.tensor(curvatures)).tolist(), dim))

    def forward(self) -> torch.Tensor:
        return self.offset + 0.5 * (self.h * (self.w - 1.0) ** 2).sum()


def _quadratic_objective(model: nn.Module, batch: Any) -> torch.Tensor:
    return model()


BATCHES = [torch.zeros(1)] * 4


def _rec(name: str, lr: float, alternatives: list[Alternative] | None = None, **hp: Any) -> Recommendation:
    """A recommendation of ``name`` at ``lr``: constant schedule, no warmup, no clipping, no groups."""
    base = recommend({"architecture": "mlp", "total_steps": STEPS})
    schedule = base.schedule.model_copy(update={"name": "constant", "warmup_ratio": 0.0, "warmup_steps": None})
    return base.model_copy(
        update={
            "optimizer": base.optimizer.model_copy(update={"name": name, "hyperparameters": {"lr": lr, **hp}}),
            "schedule": schedule,
            "gradient_clipping": None,
            "param_groups": [],
            "alternatives": alternatives or [],
        }
    )


def _search(rec: Recommendation, model: nn.Module | None = None, **kwargs: Any) -> validation.ValidationReport:
    return validate(
        model or Quadratic(),
        None,
        BATCHES,
        rec,
        objective=_quadratic_objective,
        steps=STEPS,
        heldout=BATCHES[:1],
        **kwargs,
    )


# ------------------------------------------------------------------------------------------ the search
@pytest.mark.parametrize("off", [30.0, 1 / 30.0], ids=["30x-too-high", "30x-too-low"])
def test_the_search_finds_a_planted_optimum_from_a_recommendation_30x_off(off: float) -> None:
    report = _search(_rec("sgd", BEST_SGD_LR * off))
    assert report.recommendation.optimizer.name == "sgd", report.winner
    assert BEST_SGD_LR / 1.5 < report.validated_lr < BEST_SGD_LR * 1.5, (report.winner, report.validated_lr)
    assert report.verdict == ("diverged" if off > 1 else "too_low"), report.advice
    change = next(c for c in report.changes if c.field == "optimizer.hyperparameters.lr")
    assert change.from_ == pytest.approx(BEST_SGD_LR * off) and change.to == pytest.approx(report.validated_lr)
    assert "validate():" in report.recommendation.notes[-1]


def test_a_diverging_candidate_is_dropped_and_the_search_goes_on() -> None:
    report = _search(_rec("sgd", BEST_SGD_LR * 30))
    dropped = [c for c in report.candidates if c.diverged]
    assert dropped, "lrs 10x and more above the stable range diverge"
    first_rung = report.rungs[0].steps
    for c in dropped:
        assert c.eliminated_at == 0 and c.rung_scores == [None] and c.steps < first_rung, c
    assert report.candidates[0].diverged, "the recommendation itself diverged"
    assert any(c.eliminated_at is None and not c.diverged for c in report.candidates), "finalists trained on"


def test_the_search_switches_optimizer_when_an_alternative_is_clearly_better(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a quadratic with curvatures 1e-4..1, no plain-SGD lr gets far in 90 steps; Adam's per-coordinate
    step does."""
    monkeypatch.setattr(validation, "LR_FREE", ())
    adam = Alternative(name="adam", score=1.0, why="test", hyperparameters={"lr": 0.05})
    report = _search(_rec("sgd", 1.0, [adam]), model=Quadratic((1e-4, 1.0)))
    assert report.verdict == "switched" and report.recommendation.optimizer.name == "adam", report.advice
    assert report.changes[0].field == "optimizer.name"
    assert report.recommendation.alternatives[0].name == "sgd", "the former choice is the first alternative"
    assert "adam" not in [a.name for a in report.recommendation.alternatives]


def test_ties_keep_the_recommendation() -> None:
    """Near the best lr every good candidate reaches the floor of 1.0: none beats the recommendation by 1%."""
    report = _search(_rec("sgd", BEST_SGD_LR), model=Quadratic(offset=1.0))
    assert report.verdict == "ok" and report.winner == "recommendation", report.advice
    assert report.recommendation.optimizer.hyperparameters["lr"] == BEST_SGD_LR and report.changes == []


def test_every_candidate_is_reported_with_its_rung_scores() -> None:
    report = _search(_rec("sgd", BEST_SGD_LR / 3))
    assert [r.steps for r in report.rungs] == sorted(r.steps for r in report.rungs) and report.rungs[-1].steps == STEPS
    labels = [c.label for c in report.candidates]
    assert labels[0] == "recommendation" and len(set(labels)) == len(labels)
    assert {c.kind for c in report.candidates} == {"recommendation", "lr_free"}
    factors = sorted(c.lr_factor for c in report.candidates if c.kind == "recommendation" and c.lr_factor)
    assert factors[0] <= 0.1 and factors[-1] >= 30, "the lr grid spans at least 1/10x to 30x"
    for c in report.candidates:
        assert 1 <= len(c.rung_scores) <= len(report.rungs)
    finalists = [c for c in report.candidates if c.eliminated_at is None]
    assert len(finalists) == halving.FINALISTS and report.candidates[0] in finalists
    assert report.winner in [c.label for c in finalists]
    assert report.lr_test is not None and report.lr_test.recommended_lr == pytest.approx(BEST_SGD_LR / 3)


# ------------------------------------------------------------------------------------------ budget
class _Counter:
    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.mark.parametrize(
    "budget",
    [None, 2 * STEPS + 30, 3 * STEPS, 10 * STEPS],
    ids=["default", "the-least", "three-runs", "ten-runs"],
)
def test_the_budget_is_never_exceeded(monkeypatch: pytest.MonkeyPatch, budget: int | None) -> None:
    from optirec.optimizers import lr_finder

    counter = _Counter(validation.train_step)
    monkeypatch.setattr(validation, "train_step", counter)
    monkeypatch.setattr(lr_finder, "train_step", counter)
    report = _search(_rec("adam", 1e-2), budget=budget)
    limit = budget if budget is not None else validation.DEFAULT_RUNS * STEPS
    assert counter.calls == report.cost.spent_steps <= limit == report.cost.budget_steps
    assert report.cost.full_runs == pytest.approx(counter.calls / STEPS)
    assert report.cost.range_test_steps == 30


def test_a_larger_budget_tries_more_candidates() -> None:
    small = _search(_rec("adam", 1e-2), budget=2 * STEPS + 30)
    large = _search(_rec("adam", 1e-2))
    assert len(small.candidates) < len(large.candidates)
    assert small.skipped and all("budget" in s for s in small.skipped)


# ------------------------------------------------------------------------------------------ the user's model
class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _regression_batches(n: int = 10) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x = torch.randn(32, 8, generator=g)
        out.append((x, x.sum(1, keepdim=True) + 0.1 * torch.randn(32, 1, generator=g)))
    return out


def _net_search(model: nn.Module, rec: Recommendation, **kwargs: Any) -> validation.ValidationReport:
    return validate(model, nn.functional.mse_loss, _regression_batches(), rec, steps=45, **kwargs)


def test_weights_flags_mode_and_rng_are_restored_bit_for_bit() -> None:
    model = _Net()
    model.body[0].bias.requires_grad_(False)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    report = _net_search(model, _rec("adam", 1e-2))
    assert report.scored_on == "heldout_slice"
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.body[0].bias.requires_grad is False and model.body[0].weight.requires_grad is True
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_search_is_deterministic_for_a_seed() -> None:
    a = _net_search(_Net(), _rec("adam", 1e-2), seed=3)
    b = _net_search(_Net(), _rec("adam", 1e-2), seed=3)
    assert [c.rung_scores for c in a.candidates] == [c.rung_scores for c in b.candidates]
    assert a.winner == b.winner


def test_every_parameter_groups_lr_moves_with_the_winner() -> None:
    extra = ParamGroup(name="dense", match=["Linear"], hyperparameters={"lr": 3e-6}, why="test group")
    rec = _rec("sgd", BEST_SGD_LR / 30).model_copy(update={"param_groups": [extra]})
    report = _search(rec)
    factor = report.validated_lr / (BEST_SGD_LR / 30)
    assert factor > 1
    moved = next(g for g in report.recommendation.param_groups if g.name == "dense")
    assert moved.hyperparameters["lr"] == pytest.approx(3e-6 * factor)


def test_schedule_free_candidates_are_scored_at_their_averaged_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """The held-out loss of a schedule-free optimizer is taken in its eval mode (the averaged weights)."""
    built: list[Any] = []
    real_build = validation.build

    def spy_build(*args: Any, **kwargs: Any) -> Any:
        result = real_build(*args, **kwargs)
        built.append(result.optimizer)
        return result

    in_eval: list[tuple[bool, int]] = []  # (scoring?, how many schedule-free optimizers are in eval mode)

    def objective(model: nn.Module, batch: Any) -> torch.Tensor:
        sf = [o for o in built if type(o).__name__ == "ScheduleFreeAdamW"]
        in_eval.append((not torch.is_grad_enabled(), sum(not g["train_mode"] for o in sf for g in o.param_groups)))
        return model()

    monkeypatch.setattr(validation, "build", spy_build)
    validate(
        Quadratic(),
        None,
        BATCHES,
        _rec("schedulefree_adamw", 0.05),
        objective=objective,
        steps=STEPS,
        heldout=BATCHES[:1],
    )
    scoring = [n for is_scoring, n in in_eval if is_scoring]
    training = [n for is_scoring, n in in_eval if not is_scoring]
    # a schedule-free run is scored with its optimizer (and only it) in eval mode; a Prodigy run has none
    assert 1 in scoring and all(n <= 1 for n in scoring), scoring
    assert training and all(n == 0 for n in training), "every training step is taken in train mode"


# ------------------------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"batches": []}, "batches", id="empty-batches"),
        pytest.param({"batches": BATCHES[:1]}, "batches", id="one-batch-and-no-heldout"),
        pytest.param({"heldout": []}, "heldout", id="empty-heldout"),
        pytest.param({"steps": 0}, "steps", id="no-steps"),
        pytest.param({"budget": 2 * STEPS}, "budget", id="budget-below-the-least-search"),
        pytest.param({"budget": 10}, "budget", id="budget-below-one-rung"),
        pytest.param({"range_steps": 3}, "range_steps", id="range-test-too-short"),
        pytest.param({"loss_fn": None, "objective": None}, "loss_fn", id="no-loss"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"loss_fn": None, "batches": BATCHES, "objective": _quadratic_objective, "steps": STEPS}
    args |= kwargs
    with pytest.raises(BuildError) as info:
        validate(Quadratic(), args.pop("loss_fn"), args.pop("batches"), _rec("sgd", 0.1), **args)
    assert info.value.field == field
    assert validate is optirec.validate


def test_a_cancelled_search_stops_and_restores_the_weights() -> None:
    model = Quadratic()
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 20

    with pytest.raises(BuildError) as info:
        _search(_rec("sgd", 0.1), model=model, cancel=cancel)
    assert info.value.field == "cancel" and torch.equal(model.w, torch.zeros(10))


# ------------------------------------------------------------------------------------------ halving
@pytest.mark.parametrize(
    ("available", "steps", "budget"),
    [(13, 300, 1100), (13, 300, 600), (5, 300, 1100), (13, 100, 367), (13, 30, 120), (2, 50, 100), (9, 90, 330)],
    ids=lambda v: str(v),
)
def test_a_plan_fits_its_budget_and_ends_at_the_full_run(available: int, steps: int, budget: int) -> None:
    plan = halving.plan(available, steps, budget)
    assert plan is not None and plan.cost <= budget and plan.lengths[-1] == steps
    assert 2 <= plan.candidates <= available
    assert list(plan.keep) == sorted(plan.keep, reverse=True) and plan.keep[-1] >= min(2, plan.candidates)
    if len(plan.lengths) > 1:
        assert plan.lengths[0] >= halving.MIN_RUNG_STEPS


def test_no_plan_below_the_least_budget() -> None:
    assert halving.plan(13, 100, halving.minimum_budget(100) - 1) is None


def test_halving_promotes_the_best_keeps_the_protected_one_and_drops_the_diverged() -> None:
    plan = halving.Plan(lengths=(10, 30, 90), keep=(9, 3, 2))
    quality = {0: 9.0, 1: 1.0, 2: None, 3: 2.0, 4: 3.0, 5: 8.0, 6: 7.0, 7: 6.0, 8: 5.0}  # lower is better
    calls: list[tuple[int, int]] = []
    released: list[int] = []

    def train(i: int, length: int) -> float | None:
        calls.append((i, length))
        q = quality[i]
        return None if q is None else q / length

    scores = halving.halve(plan, train, protected=0, release=released.append)
    assert [i for i, n in calls if n == 30] == [0, 1, 3], "the recommendation (protected) and the two best"
    assert [i for i, n in calls if n == 90] == [0, 1]
    assert scores[2] == [None] and (2, 30) not in calls
    assert sorted(released) == [2, 3, 4, 5, 6, 7, 8], "every candidate that stopped was released"
    assert len(scores[0]) == 3 and len(scores[4]) == 1


def test_every_candidate_draws_the_same_randomness_at_the_same_step() -> None:
    """Common random numbers: dropout masks (any torch randomness) depend on the step, not on the candidate."""
    draws: list[float] = []

    def objective(model: nn.Module, batch: Any) -> torch.Tensor:
        if torch.is_grad_enabled():
            draws.append(float(torch.rand(())))
        return model()

    report = validate(
        Quadratic(),
        None,
        BATCHES,
        _rec("sgd", BEST_SGD_LR / 3),
        objective=objective,
        steps=STEPS,
        heldout=BATCHES[:1],
        range_steps=0,
    )
    first = report.rungs[0].steps
    assert not report.candidates[1].diverged
    assert draws[:first] == draws[first : 2 * first], "candidate 1 saw candidate 0's random numbers"


def test_halving_by_whole_rungs_scores_and_promotes_as_one_at_a_time() -> None:
    plan = halving.Plan(lengths=(10, 30, 90), keep=(9, 3, 2))
    quality = {0: 9.0, 1: 1.0, 2: None, 3: 2.0, 4: 3.0, 5: 8.0, 6: 7.0, 7: 6.0, 8: 5.0}

    def train(i: int, length: int) -> float | None:
        q = quality[i]
        return None if q is None else q / length

    rungs: list[tuple[list[int], int]] = []

    def train_rung(indices: list[int], length: int) -> list[float | None]:
        rungs.append((indices, length))
        return [train(i, length) for i in indices]

    def unused(i: int, length: int) -> float | None:
        raise AssertionError("a whole-rung search trains nothing one at a time")

    assert halving.halve(plan, unused, train_rung=train_rung) == halving.halve(plan, train)
    assert rungs == [(list(range(9)), 10), ([0, 1, 3], 30), ([0, 1], 90)]


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_a_search_on_replicas_equals_the_search_in_one_process(replicas: int) -> None:
    """What the Ray backend does: each replica builds the same model and holds some candidates' state."""
    rec = _rec("adam", 1e-2)
    alone = _net_search(_Net(), rec, seed=2)
    copies = [
        validation.SearchReplica(_Net(), nn.functional.mse_loss, _regression_batches(), rec, steps=45, seed=2)
        for _ in range(replicas)
    ]
    calls: list[int] = []

    def rung_trainer(indices: list[int], length: int) -> list[tuple[float | None, int]]:
        calls.append(len(indices))
        out: dict[int, tuple[float | None, int]] = {}
        for r, replica in enumerate(copies):  # candidate i always on replica i % replicas, where its state is
            mine = [i for i in indices if i % replicas == r]
            out.update(zip(mine, replica.train(mine, length), strict=True))
        return [out[i] for i in indices]

    spread = _net_search(_Net(), rec, seed=2, rung_trainer=rung_trainer)
    assert [c.rung_scores for c in spread.candidates] == [c.rung_scores for c in alone.candidates]
    assert [c.steps for c in spread.candidates] == [c.steps for c in alone.candidates]
    assert (spread.winner, spread.validated_lr, spread.cost) == (alone.winner, alone.validated_lr, alone.cost)
    assert len(calls) == len(alone.rungs) and calls[0] == len(alone.candidates)
