"""``validate(model, loss_fn, batches, rec)``: a budgeted search on the user's own model, anchored on the
recommendation.

The candidates, in priority order (the budget trims from the end): the recommendation, its lr on a log
grid from 1/30x to 30x, its ranked alternatives with their own hyperparameters (and their lr 3x either
way), and the learning-rate-free and schedule-free optimizers of the catalog at their published defaults.
Successive halving (optirec.optimizers.halving: Jamieson & Talwalkar 2016; Li et al. 2018) trains them
for rungs of growing length, scored on held-out batches; diverged runs are dropped at once, the
recommendation always reaches the last rung, and a challenger must beat it there, at full length, by
``MIN_GAIN`` to replace it. The LR range test runs first as a diagnostic (its steps count against the
budget). Weights, requires_grad flags, train/eval mode and the global RNG are restored after every run;
the search is deterministic for a seed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from optirec.rules import Recommendation, default_rulebook
from optirec.rules.recommendation import AdaptedValue, Alternative

from .builder import BuildResult, as_recommendation, build
from .errors import BuildError
from .halving import Plan, halve, minimum_budget
from .halving import plan as halving_plan
from .lr_finder import LRRangeTest, lr_range_test, preserved
from .racing import at_catalog_defaults, with_optimizer
from .results import Candidate, Kind, Rung, SearchCost, ValidationReport
from .training import evaluation_mode, train_step
from .trial import exploded

__all__ = ["Candidate", "Rung", "RungTrainer", "SearchCost", "SearchReplica", "ValidationReport", "validate"]

#: the recommendation's lr times these, in priority order (the first ones survive a small budget): a log
#: grid 10**0.5 apart from about 1/30x to 30x
LR_GRID = (1.0, 10**0.5, 10**-0.5, 10.0, 0.1, 10**1.5, 10**-1.5)
#: an alternative's own lr times these
ALTERNATIVE_GRID = (1.0, 10**0.5, 10**-0.5)
#: the learning-rate-free and schedule-free optimizers tried at their catalog defaults
LR_FREE = ("prodigy", "schedulefree_adamw")
#: alternatives tried (ranked as the answer ranks them)
ALTERNATIVES = 2
#: validate()'s default budget, in runs of the caller's ``steps``
DEFAULT_RUNS = 4
#: a challenger must beat the recommendation's full-run score by this fraction (ties keep the recommendation)
MIN_GAIN = 0.01
#: without ``heldout``, this share of the caller's batches (the last ones) scores the runs and is never trained on
HELDOUT_SHARE = 0.2

Objective = Callable[[nn.Module, Any], torch.Tensor]
Progress = Callable[[int, int, float | None], None]
#: rung_trainer(candidates, length) -> (held-out score or None, steps done) per candidate: SearchReplica.train
RungTrainer = Callable[[list[int], int], list[tuple[float | None, int]]]


@dataclass
class _Spec:
    label: str
    kind: Kind
    rec: Recommendation
    factor: float | None
    grid: tuple[float, ...] = ()


@dataclass
class _Run:
    built: BuildResult
    trainable: dict[str, bool]
    weights: dict[str, torch.Tensor] | None = None
    done: int = 0
    first: float | None = None  # the run's first finite loss (an explosion is judged against it)


@dataclass
class _Runner:
    """Trains candidates on the user's model, each from the same starting weights, resuming where it stopped."""

    model: nn.Module
    objective: Objective
    train: list[Any]
    held: list[Any]
    specs: list[_Spec]
    steps: int
    seed: int
    initial: dict[str, torch.Tensor]
    trainable: dict[str, bool]
    progress: Progress | None
    cancel: Callable[[], bool] | None
    total: int
    spent: int = 0
    optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    runs: dict[int, _Run] = field(default_factory=dict)
    steps_of: dict[int, int] = field(default_factory=dict)

    def __call__(self, index: int, length: int) -> float | None:
        run = self.runs.get(index)
        if run is None:
            run = self._start(index)
        else:
            assert run.weights is not None
            self.model.load_state_dict(run.weights)
            for name, p in self.model.named_parameters():
                p.requires_grad_(run.trainable.get(name, p.requires_grad))
        # common random numbers: every candidate draws the same dropout masks (and any other randomness) at
        # the same step, so that the runs differ by their config and not by their luck
        torch.manual_seed(self.seed * 1_000_003 + run.done)
        while run.done < length:
            if self.cancel is not None and self.cancel():
                raise _Cancelled
            batch = self.train[run.done % len(self.train)]

            def step_objective(batch: Any = batch) -> torch.Tensor:
                return self.objective(self.model, batch)

            value = train_step(self.model, None, batch, run.built, objective=step_objective)
            run.done += 1
            self.spent += 1
            self.steps_of[index] = run.done
            if self.progress is not None:
                self.progress(self.spent, self.total, value if math.isfinite(value) else None)
            if run.first is None and math.isfinite(value):
                run.first = value
            if not math.isfinite(value) or exploded(value, run.first):
                return None
        score = _heldout_loss(self.model, self.objective, self.held, run.built.optimizer)
        run.weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return score if math.isfinite(score) else None

    def _start(self, index: int) -> _Run:
        self.model.load_state_dict(self.initial)
        for name, p in self.model.named_parameters():
            p.requires_grad_(self.trainable.get(name, p.requires_grad))
        built = build(self.model, self.specs[index].rec, total_steps=self.steps)
        self.optimizers.append(built.optimizer)
        run = _Run(built, {name: p.requires_grad for name, p in self.model.named_parameters()})
        self.runs[index] = run
        return run

    def release(self, index: int) -> None:
        run = self.runs.pop(index, None)
        if run is not None:  # its optimizer, state and weights go now, not at the end of the search
            self.optimizers[:] = [o for o in self.optimizers if o is not run.built.optimizer]
            remove = getattr(run.built.optimizer, "remove_hooks", None)
            if callable(remove):
                remove()


class _Cancelled(Exception):
    pass


def validate(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    batches: Iterable[Any],
    recommendation: Recommendation | Mapping[str, Any],
    *,
    steps: int = 100,
    budget: int | None = None,
    heldout: Iterable[Any] | None = None,
    seed: int = 0,
    range_steps: int | None = None,
    objective: Objective | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    rung_trainer: RungTrainer | None = None,
) -> ValidationReport:
    """Search for a better config than ``recommendation`` on the user's model, within ``budget`` optimizer steps.

    ``batches`` are ``(inputs, targets)`` pairs scored by ``loss_fn(model(inputs), targets)``, or anything
    ``objective(model, batch)`` turns into a loss (then ``loss_fn`` may be None); they are cycled when shorter
    than ``steps``. ``steps`` is the full run length the last rung reaches. ``budget`` (default
    ``DEFAULT_RUNS * steps``) bounds every optimizer step taken, the range test's included
    (``range_steps``, default ``min(100, steps // 3)``, none below 15 steps; 0 turns it off). Runs are scored
    on ``heldout`` batches, or on the last ``HELDOUT_SHARE`` of ``batches``, which then no run trains on.
    ``progress(spent, budget, loss)`` is called every step; ``cancel()`` returning True stops the search
    (BuildError "cancel"). With ``rung_trainer`` each rung's candidates are trained by it, side by side (by
    SearchReplica copies of the search on other machines); the report is the same.
    """
    search = _setup(recommendation, loss_fn, batches, steps, budget, heldout, range_steps, objective)
    rec, objective, the_plan, specs = search.rec, search.objective, search.plan, search.specs
    budget, range_steps = search.budget, search.range_steps

    with torch.random.fork_rng(devices=_cuda_devices(model)), preserved(model) as optimizers:
        torch.manual_seed(seed)
        test = lr_range_test(model, objective, search.train, rec, steps=range_steps) if range_steps else None
        runner = _runner(model, search, seed, progress, cancel, optimizers)
        try:
            train_rung = None if rung_trainer is None else _remote_rungs(runner, rung_trainer)
            scores = halve(the_plan, runner, protected=0, release=runner.release, train_rung=train_rung)
        except _Cancelled:
            raise BuildError("cancel", "the search was cancelled") from None
    return _report(rec, specs, search.skipped, scores, the_plan, runner, test, budget, range_steps, search.scored_on)


@dataclass
class _Search:
    """What validate() searches, from its arguments alone (so that every replica of the search agrees)."""

    rec: Recommendation
    objective: Objective
    train: list[Any]
    held: list[Any]
    scored_on: Literal["heldout", "heldout_slice"]
    range_steps: int
    budget: int
    specs: list[_Spec]
    skipped: list[str]
    plan: Plan
    steps: int


def _setup(
    recommendation: Recommendation | Mapping[str, Any],
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    batches: Iterable[Any],
    steps: int,
    budget: int | None,
    heldout: Iterable[Any] | None,
    range_steps: int | None,
    objective: Objective | None,
) -> _Search:
    rec = as_recommendation(recommendation)
    data = list(batches)
    if not data:
        raise BuildError("batches", "no batches to validate on")
    if steps < 1:
        raise BuildError("steps", f"must be at least 1, got {steps}")
    if objective is None:
        if loss_fn is None:
            raise BuildError("loss_fn", "give loss_fn(outputs, targets) or objective(model, batch)")
        fn = loss_fn

        def objective(m: nn.Module, batch: Any) -> torch.Tensor:
            return fn(m(batch[0]), batch[1])

    scored_on: Literal["heldout", "heldout_slice"] = "heldout"
    if heldout is not None:
        held, train = list(heldout), data
        if not held:
            raise BuildError("heldout", "no held-out batches to score the runs on (leave it out to hold out a slice)")
    else:
        if len(data) < 2:
            raise BuildError(
                "batches", "give heldout batches, or at least 2 batches so that a slice can be held out for scoring"
            )
        cut = len(data) - max(1, round(HELDOUT_SHARE * len(data)))
        train, held, scored_on = data[:cut], data[cut:], "heldout_slice"
    if range_steps is None:
        range_steps = min(100, steps // 3) if steps >= 15 else 0  # too short a run for a range test: none
    if range_steps != 0 and range_steps < 5:
        raise BuildError("range_steps", f"the LR range test needs at least 5 steps (0 turns it off), got {range_steps}")
    budget = DEFAULT_RUNS * steps if budget is None else budget
    least = minimum_budget(steps) + range_steps
    if budget < least:
        raise BuildError(
            "budget",
            f"must be at least {least} optimizer steps (the recommendation and one challenger for the full {steps} "
            f"steps{f', plus the {range_steps}-step range test' if range_steps else ''}), got {budget}",
        )

    specs, skipped = _candidates(rec)
    the_plan = halving_plan(len(specs), steps, budget - range_steps)
    assert the_plan is not None  # the budget holds the minimum plan
    skipped += [
        f"{s.label}: the budget of {budget} steps runs {the_plan.candidates} candidates"
        for s in specs[the_plan.candidates :]
    ]
    specs = specs[: the_plan.candidates]

    return _Search(rec, objective, train, held, scored_on, range_steps, budget, specs, skipped, the_plan, steps)


def _runner(
    model: nn.Module,
    search: _Search,
    seed: int,
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
    optimizers: list[torch.optim.Optimizer],
) -> _Runner:
    return _Runner(
        model=model,
        objective=search.objective,
        train=search.train,
        held=search.held,
        specs=search.specs,
        steps=search.steps,
        seed=seed,
        initial=copy.deepcopy(model.state_dict()),
        trainable={name: p.requires_grad for name, p in model.named_parameters()},
        progress=progress,
        cancel=cancel,
        total=search.range_steps + search.plan.cost,
        spent=search.range_steps,
        optimizers=optimizers,
    )


def _remote_rungs(runner: _Runner, rung_trainer: RungTrainer) -> Callable[[list[int], int], list[float | None]]:
    """A rung trained by ``rung_trainer`` (SearchReplica.train on other machines), booked in this runner."""

    def train_rung(indices: list[int], length: int) -> list[float | None]:
        if runner.cancel is not None and runner.cancel():
            raise _Cancelled
        out = rung_trainer(indices, length)
        for i, (_, done) in zip(indices, out, strict=True):
            runner.spent += done - runner.steps_of.get(i, 0)
            runner.steps_of[i] = done
        if runner.progress is not None:
            runner.progress(runner.spent, runner.total, None)
        return [score for score, _ in out]

    return train_rung


class SearchReplica:
    """A copy of validate()'s search that trains the candidates it is given, exactly as validate() would (same
    candidates, starting weights, batches and seeds): ``validate(..., rung_trainer=...)`` hands each rung's
    candidates to replicas on other machines (the Ray trial backend), each holding its candidates' state."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor] | None,
        batches: Iterable[Any],
        recommendation: Recommendation | Mapping[str, Any],
        *,
        steps: int = 100,
        budget: int | None = None,
        heldout: Iterable[Any] | None = None,
        seed: int = 0,
        range_steps: int | None = None,
        objective: Objective | None = None,
    ) -> None:
        search = _setup(recommendation, loss_fn, batches, steps, budget, heldout, range_steps, objective)
        self._runner = _runner(model, search, seed, None, None, [])

    def train(self, indices: list[int], length: int) -> list[tuple[float | None, int]]:
        """Train each candidate to ``length`` steps in all; (held-out score or None if diverged, steps done)."""
        out = []
        for i in indices:
            score = self._runner(i, length)
            out.append((score, self._runner.steps_of.get(i, 0)))
        return out

    def release(self, index: int) -> None:
        """Drop a candidate that the search will not train again."""
        self._runner.release(index)


def _cuda_devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def _heldout_loss(model: nn.Module, objective: Objective, held: list[Any], optimizer: torch.optim.Optimizer) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad(), evaluation_mode(optimizer):
        total = sum(float(objective(model, batch)) for batch in held)
    model.train(was_training)
    return total / len(held)


# ------------------------------------------------------------------------------------------ candidates
def _candidates(rec: Recommendation) -> tuple[list[_Spec], list[str]]:
    """Every candidate in priority order: the grids interleaved so that any prefix spans as much as it can."""
    book = default_rulebook()
    skipped: list[str] = []
    own = _Spec("recommendation", "recommendation", rec, 1.0, LR_GRID)
    alternatives: list[_Spec] = []
    for alt in rec.alternatives:
        if len(alternatives) == ALTERNATIVES:
            break
        entry = book.optimizers.get(alt.name)
        if alt.name == rec.optimizer.name or alt.name in LR_FREE or entry is None:
            continue
        if entry.needs_closure or entry.family == "second_order":
            skipped.append(f"alternative {alt.name}: it needs a closure or curvature, which the search does not run")
            continue
        hp = {**book.defaults[alt.name], **alt.hyperparameters}
        alternatives.append(
            _Spec(f"alternative {alt.name}", "alternative", with_optimizer(rec, alt.name, hp), 1.0, ALTERNATIVE_GRID)
        )
    free = [
        _Spec(f"{name} (catalog defaults)", "lr_free", at_catalog_defaults(rec, name), None)
        for name in LR_FREE
        if name != rec.optimizer.name and name in book.optimizers
    ]
    # the order: rec x1, x3.2, x0.32; the first lr-free; the first alternative; rec x10, x0.1; the second lr-free;
    # the second alternative; rec x32; the first alternative's neighbours; the second's
    queue: list[tuple[_Spec, float | None]] = [(own, f) for f in LR_GRID[:3]]
    queue += [(s, None) for s in free[:1]] + [(s, 1.0) for s in alternatives[:1]]
    queue += [(own, f) for f in LR_GRID[3:5]] + [(s, None) for s in free[1:]] + [(s, 1.0) for s in alternatives[1:]]
    queue += [(own, f) for f in LR_GRID[5:]]
    queue += [(s, f) for s in alternatives for f in ALTERNATIVE_GRID[1:]]
    out = []
    for spec, factor in queue:
        if factor is None or factor == 1.0:
            out.append(_Spec(spec.label, spec.kind, spec.rec, factor, spec.grid))
        else:
            out.append(_Spec(f"{spec.label} lr x{factor:.3g}", spec.kind, _scaled(spec.rec, factor), factor, spec.grid))
    return out, skipped


def _scaled(rec: Recommendation, factor: float) -> Recommendation:
    """The recommendation with the optimizer's lr and every parameter group's own lr times ``factor``."""
    if factor == 1.0:
        return rec
    hp = dict(rec.optimizer.hyperparameters)
    hp["lr"] = float(hp["lr"]) * factor
    groups = [
        g.model_copy(update={"hyperparameters": {**g.hyperparameters, "lr": float(g.hyperparameters["lr"]) * factor}})
        if "lr" in g.hyperparameters
        else g
        for g in rec.param_groups
    ]
    return rec.model_copy(
        update={"optimizer": rec.optimizer.model_copy(update={"hyperparameters": hp}), "param_groups": groups}
    )


# ------------------------------------------------------------------------------------------ the report
def _report(
    rec: Recommendation,
    specs: list[_Spec],
    skipped: list[str],
    scores: list[list[float | None]],
    the_plan: Plan,
    runner: _Runner,
    test: LRRangeTest | None,
    budget: int,
    range_steps: int,
    scored_on: Literal["heldout", "heldout_slice"],
) -> ValidationReport:
    last = len(the_plan.lengths) - 1
    candidates = [
        Candidate(
            index=i,
            label=spec.label,
            kind=spec.kind,
            optimizer=spec.rec.optimizer.name,
            hyperparameters=dict(spec.rec.optimizer.hyperparameters),
            schedule=spec.rec.schedule.name,
            lr_factor=spec.factor,
            rung_scores=scores[i],
            steps=runner.steps_of.get(i, 0),
            diverged=bool(scores[i]) and scores[i][-1] is None,
            eliminated_at=None if len(scores[i]) == last + 1 and scores[i][-1] is not None else len(scores[i]) - 1,
        )
        for i, spec in enumerate(specs)
    ]
    finalists = [c for c in candidates if c.eliminated_at is None]
    own = candidates[0]
    best = min(finalists, key=lambda c: (c.rung_scores[-1], c.index), default=None)
    own_score = own.rung_scores[-1] if own.eliminated_at is None else None
    if best is None:
        winner = own
    elif own_score is not None and best is not own:
        assert best.rung_scores[-1] is not None
        winner = best if best.rung_scores[-1] < own_score - MIN_GAIN * abs(own_score) else own
    else:
        winner = best
    spec = specs[winner.index]
    revised, changes = _revised(rec, spec, winner, own_score)
    spent = runner.spent
    cost = SearchCost(
        budget_steps=budget,
        spent_steps=spent,
        range_test_steps=range_steps,
        full_runs=spent / runner.steps,
        budget_runs=budget / runner.steps,
    )
    at_edge = spec.factor is not None and spec.factor != 1.0 and spec.factor in (max(spec.grid), min(spec.grid))
    verdict, advice = _judge(rec, own, winner, own_score, at_edge, best is None)
    rungs = [
        Rung(index=k, steps=n, candidates=c)
        for k, (n, c) in enumerate(zip(the_plan.lengths, the_plan.keep, strict=True))
    ]
    return ValidationReport(
        optimizer=rec.optimizer.name,
        recommended_lr=float(rec.optimizer.hyperparameters.get("lr", 0.0)),
        steps=runner.steps,
        lr_test=test,
        scored_on=scored_on,
        rungs=rungs,
        candidates=candidates,
        skipped=skipped,
        winner=winner.label,
        validated_lr=float(revised.optimizer.hyperparameters.get("lr", 0.0)),
        at_edge=at_edge,
        cost=cost,
        changes=changes,
        recommendation=revised,
        verdict=verdict,
        advice=advice,
    )


def _revised(
    rec: Recommendation, spec: _Spec, winner: Candidate, own_score: float | None
) -> tuple[Recommendation, list[AdaptedValue]]:
    if winner.index == 0:
        return rec, []
    score = winner.rung_scores[-1]
    against = "it diverged" if own_score is None else f"{own_score:.4g}"
    why = (
        f"validate(): {winner.label} scored {score:.4g} on held-out batches after the full run; "
        f"the recommendation {against}"
    )
    new = spec.rec
    changes: list[AdaptedValue] = []
    if new.optimizer.name != rec.optimizer.name:
        changes.append(
            AdaptedValue.model_validate(
                {"field": "optimizer.name", "from": rec.optimizer.name, "to": new.optimizer.name, "why": why}
            )
        )
    for key in sorted(set(rec.optimizer.hyperparameters) | set(new.optimizer.hyperparameters)):
        before, after = rec.optimizer.hyperparameters.get(key), new.optimizer.hyperparameters.get(key)
        if before != after:
            changes.append(
                AdaptedValue.model_validate(
                    {"field": f"optimizer.hyperparameters.{key}", "from": before, "to": after, "why": why}
                )
            )
    if new.schedule.name != rec.schedule.name:
        changes.append(
            AdaptedValue.model_validate(
                {"field": "schedule.name", "from": rec.schedule.name, "to": new.schedule.name, "why": why}
            )
        )
    alternatives = list(rec.alternatives)
    if new.optimizer.name != rec.optimizer.name:
        taken = next((a for a in alternatives if a.name == new.optimizer.name), None)
        alternatives = [a for a in alternatives if a.name != new.optimizer.name]
        former = Alternative(
            name=rec.optimizer.name,
            score=taken.score if taken is not None else 0.0,
            why=f"the recommendation before validate() ({against} against {score:.4g})",
            hyperparameters=dict(rec.optimizer.hyperparameters),
        )
        alternatives.insert(0, former)
    return new.model_copy(update={"alternatives": alternatives, "notes": [*rec.notes, why]}), changes


def _judge(
    rec: Recommendation, own: Candidate, winner: Candidate, own_score: float | None, at_edge: bool, nothing: bool
) -> tuple[Literal["ok", "too_low", "too_high", "switched", "diverged"], str]:
    edge = (
        "; its lr is at the end of the grid, so the best may lie further out: validate again from the returned "
        "recommendation"
        if at_edge
        else ""
    )
    if nothing:
        return "diverged", "every candidate diverged: divide the lr by 10 (004 §6.4.1) and validate again"
    if own_score is None and winner is not own:
        return "diverged", f"the recommendation diverged; {winner.label} trained best{edge}"
    if winner is own:
        return "ok", "no candidate beat the recommendation by more than 1% at full length: keep it"
    if winner.optimizer == rec.optimizer.name and winner.kind == "recommendation":
        way: Literal["too_low", "too_high"] = "too_low" if (winner.lr_factor or 1.0) > 1 else "too_high"
        return way, f"{winner.label} beat the recommended lr at full length{edge}"
    return "switched", f"{winner.label} beat the recommendation at full length{edge}"
