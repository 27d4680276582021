"""Check a recommendation before committing compute: on the user's own model, or as a race of candidates.

- ``validate(model, loss_fn, batches, rec)``: the LR range test, a short run on the user's model and
  data, and a confirmation search: the range test's suggested lr when it calls the recommended one
  off, then steps of 2x (the way the range test points) while short runs keep improving; the weights
  (and requires_grad flags) are restored after every run. The report carries the lr the runs favour
  and the recommendation with it, and says when the search ran out of runs while still improving.
- ``race(rec, k=3, ...)``: the recommendation and its top alternatives on the same proxy workload, budget
  and seeds, ranked by held-out loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel
from torch import nn

from optirec.rules import Recommendation
from optirec.rules.recommendation import OptimizerChoice

from .builder import as_recommendation, build
from .errors import BuildError
from .lr_finder import LRRangeTest, lr_range_test, preserved
from .training import train_step
from .trial import TrialResult, exploded, run_trial
from .workloads.base import Workload

__all__ = ["LRProbe", "RaceEntry", "ShortRun", "ValidationReport", "race", "validate"]

#: the confirmation search moves the lr by this factor per probe
LR_STEP = 2.0
#: from a diverging lr the search steps down by this factor (004 §6.4.1: divide the lr by 10)
DIVERGED_STEP = 10.0
#: a probe must beat the best score so far by this fraction to move the lr (ties keep the recommendation)
MIN_GAIN = 0.01
#: validate()'s default budget of short runs. A search that stops improving ends after three runs (the
#: recommendation and a step either way), so the budget is spent only while runs keep improving, which is
#: when the recommended lr is far off: 8 runs reach 2**5 = 32x past the range test's suggestion
LR_RUNS = 8

Objective = Callable[[nn.Module, Any], torch.Tensor]


class ShortRun(BaseModel):
    steps: int
    losses: list[float | None]
    diverged: bool
    diverged_at: int | None
    improved: bool  # last loss below the first


class LRProbe(BaseModel):
    """One short run of the confirmation search."""

    lr: float
    factor: float  # lr / recommended lr
    score: float | None  # held-out loss at the end (or the mean of the last tenth of training losses); None: diverged
    diverged: bool


class ValidationReport(BaseModel):
    optimizer: str
    recommended_lr: float
    lr_test: LRRangeTest
    short_run: ShortRun
    lr_search: list[LRProbe]  # in the order run; the first is the recommended lr
    scored_on: Literal["heldout", "train_tail"]
    validated_lr: float  # the lr the short runs favour (the recommended one unless a probe beat it by MIN_GAIN)
    # the last run was the best and the run budget was spent: the best lr may lie further the same way
    still_improving: bool
    recommendation: Recommendation  # the recommendation with every lr scaled to validated_lr
    verdict: str
    advice: str


def validate(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    batches: Iterable[Any],
    recommendation: Recommendation | Mapping[str, Any],
    *,
    steps: int = 50,
    range_steps: int = 100,
    heldout: Iterable[Any] | None = None,
    lr_runs: int = LR_RUNS,
    objective: Objective | None = None,
) -> ValidationReport:
    """The LR range test, a ``steps``-step run with the recommendation, and a confirmation search.

    ``batches`` are ``(inputs, targets)`` pairs scored by ``loss_fn(model(inputs), targets)``, or anything
    ``objective(model, batch)`` turns into a loss (then ``loss_fn`` may be None). Short runs are scored on
    ``heldout`` batches when given, else on the mean of their last tenth of training losses. The search
    makes at most ``lr_runs`` short runs in all (1 turns it off). When the range test calls the lr too
    high or too low, the second run takes its suggested lr as it is; the search then starts from
    whichever of the two did better. From there it steps by ``LR_STEP``: first the way the range test
    points (up unless it says "too_high"), then the other way if that did not help. It keeps going while
    a run beats the best so far by ``MIN_GAIN``. When the budget runs out while the last run was still
    the best, the report's ``still_improving`` is set and its advice says which way to look further.
    """
    rec = as_recommendation(recommendation)
    data = list(batches)
    if not data:
        raise BuildError("batches", "no batches to validate on")
    if steps < 1:
        raise BuildError("steps", f"must be at least 1, got {steps}")
    if lr_runs < 1:
        raise BuildError("lr_runs", f"must be at least 1 (1 runs only the recommendation), got {lr_runs}")
    if objective is None:
        if loss_fn is None:
            raise BuildError("loss_fn", "give loss_fn(outputs, targets) or objective(model, batch)")
        fn = loss_fn

        def objective(m: nn.Module, batch: Any) -> torch.Tensor:
            return fn(m(batch[0]), batch[1])

    held = list(heldout) if heldout is not None else []
    if heldout is not None and not held:
        raise BuildError(
            "heldout", "no held-out batches to score the short runs on (leave it out to score on training loss)"
        )
    test = lr_range_test(model, objective, data, rec, steps=range_steps)
    rec_lr = test.recommended_lr

    def probe(factor: float) -> tuple[LRProbe, ShortRun]:
        run, score = _short_run(model, objective, data, _scaled(rec, factor), steps, held)
        return LRProbe(lr=rec_lr * factor, factor=factor, score=score, diverged=score is None), run

    first, short = probe(1.0)
    probes = [first]
    best = anchor = first
    directions = [-1, 1] if test.verdict == "too_high" else [1, -1]  # the range test's hint first
    if first.diverged:
        directions = [-1]
    elif test.verdict in ("too_high", "too_low") and test.factor and lr_runs > 1:
        # the range test says the lr is more than VERDICT_TOLERANCE x off: try its suggestion as it is, and
        # search around it from there (further first, then back) when it does better
        jump, _ = probe(1.0 / test.factor)
        probes.append(jump)
        if _better(jump, best):
            best = anchor = jump
    cursor = anchor
    while len(probes) < lr_runs and directions:
        sign = directions[0]
        # while nothing has trained yet, divide by 10 as 004 §6.4.1 does for a diverging loss
        cursor, _ = probe(cursor.factor * (DIVERGED_STEP if best.score is None else LR_STEP) ** sign)
        probes.append(cursor)
        if _better(cursor, best):
            best = cursor
            directions = [sign]  # keep going the way that helped
        elif best.score is not None:  # worse: turn back from where the search started, or stop once it moved
            directions = directions[1:] if best is anchor else []
            cursor = anchor
    # the loop left with a direction still open only when the budget ran out, and the last run was the best
    still_improving = bool(directions) and len(probes) > 1 and best is probes[-1]
    verdict, advice = _judge(test, short, best, first)
    if still_improving:
        way = "higher" if best.factor > first.factor else "lower"
        advice += (
            f"; the search was still improving when its {len(probes)} runs were spent, so the best lr may be "
            f"{way} still: validate again from the returned recommendation, or pass a larger lr_runs"
        )
    return ValidationReport(
        optimizer=rec.optimizer.name,
        recommended_lr=rec_lr,
        lr_test=test,
        short_run=short,
        lr_search=probes,
        scored_on="heldout" if held else "train_tail",
        validated_lr=best.lr,
        still_improving=still_improving,
        recommendation=_adjusted(rec, best, first),
        verdict=verdict,
        advice=advice,
    )


def _better(candidate: LRProbe, best: LRProbe) -> bool:
    if candidate.score is None:
        return False
    if best.score is None:
        return True
    return candidate.score < best.score - MIN_GAIN * abs(best.score)


def _judge(test: LRRangeTest, short: ShortRun, best: LRProbe, first: LRProbe) -> tuple[str, str]:
    moved = best is not first
    if short.diverged:
        found = f"; the short runs trained without diverging at lr {best.lr:.3g}" if moved else ""
        return "diverged", f"the short run diverged: divide the lr by 10 (004 §6.4.1) and validate again{found}"
    if moved:
        was = "n/a" if first.score is None else f"{first.score:.4g}"
        return (
            "too_low" if best.factor > 1 else "too_high",
            f"short runs favour lr {best.lr:.3g} ({best.factor:.3g}x the recommendation): "
            f"score {best.score:.4g} against {was}",
        )
    if test.verdict in ("too_high", "too_low") and test.suggested_lr is not None:
        return (
            "ok",
            f"the range test suggests lr {test.suggested_lr:.3g} ({test.factor:.3g}x off the recommendation), "
            f"but short runs {LR_STEP:g}x that way did not do better: keep the recommended lr",
        )
    if test.verdict == "ok":
        return "ok", "the recommended lr is in the range test's good region and no neighbouring lr did better"
    return test.verdict, "the range test found no clear descent; the short runs found no better lr"


def _short_run(
    model: nn.Module, objective: Objective, data: list[Any], rec: Recommendation, steps: int, held: list[Any]
) -> tuple[ShortRun, float | None]:
    """``steps`` training steps from the current weights, the schedule fitted to them, and the run's score
    (None when it diverged); the weights are restored afterwards."""
    losses: list[float | None] = []
    diverged_at: int | None = None
    held_score: float | None = None
    with preserved(model) as optimizers:
        built = build(model, rec, total_steps=steps)
        optimizers.append(built.optimizer)
        first: float | None = None
        for i in range(steps):
            batch = data[i % len(data)]

            def step_objective(batch: Any = batch) -> torch.Tensor:
                return objective(model, batch)

            value = train_step(model, None, batch, built, objective=step_objective)
            losses.append(value if math.isfinite(value) else None)
            if first is None and math.isfinite(value):
                first = value
            if not math.isfinite(value) or exploded(value, first):
                diverged_at = i
                break
        if held and diverged_at is None:
            held_score = _heldout_loss(model, objective, held)
    finite = [x for x in losses if x is not None]
    short = ShortRun(
        steps=len(losses),
        losses=losses,
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        improved=len(finite) >= 2 and finite[-1] < finite[0],
    )
    if held:
        score = held_score
    else:
        tail = [x for x in losses[-max(1, len(losses) // 10) :] if x is not None]
        score = sum(tail) / len(tail) if tail else None
    if short.diverged or score is None or not math.isfinite(score):
        return short, None
    return short, score


def _heldout_loss(model: nn.Module, objective: Objective, held: list[Any]) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        total = sum(float(objective(model, batch)) for batch in held)
    model.train(was_training)
    return total / len(held)


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


def _adjusted(rec: Recommendation, best: LRProbe, first: LRProbe) -> Recommendation:
    if best is first:
        return rec
    note = (
        f"validate(): lr x{best.factor:g} ({first.lr:.3g} -> {best.lr:.3g}) after short runs on your model "
        f"scored {best.score:.4g} against {'n/a' if first.score is None else f'{first.score:.4g}'}"
    )
    return _scaled(rec, best.factor).model_copy(update={"notes": [*rec.notes, note]})


class RaceEntry(BaseModel):
    rank: int
    optimizer: str
    hyperparameters: dict[str, Any]
    mean_final_loss: float | None
    diverged_runs: int
    results: list[TrialResult]


def with_optimizer(rec: Recommendation, name: str, hyperparameters: Mapping[str, Any]) -> Recommendation:
    """``rec`` with another optimizer (schedule, clipping and the rest kept); parameter groups that name an
    optimizer of their own belong to the old choice and are dropped."""
    choice = OptimizerChoice(name=name, hyperparameters=dict(hyperparameters))
    plain_groups = [g for g in rec.param_groups if g.optimizer is None]
    return rec.model_copy(update={"optimizer": choice, "param_groups": plain_groups})


def candidates(rec: Recommendation, k: int) -> list[Recommendation]:
    """The recommendation and its first ``k - 1`` alternatives, each as a full recommendation."""
    return [rec] + [with_optimizer(rec, alt.name, alt.hyperparameters) for alt in rec.alternatives[: max(0, k - 1)]]


def race(
    recommendation: Recommendation | Mapping[str, Any],
    k: int = 3,
    *,
    workload: str | Workload = "auto",
    steps: int = 200,
    seeds: Sequence[int] = (0, 1, 2),
    device: str = "auto",
    size: int = 1,
) -> list[RaceEntry]:
    """Run the top-``k`` candidates on the same workload, budget and seeds; best held-out loss first."""
    rec = as_recommendation(recommendation)
    if k < 1:
        raise BuildError("k", f"must be at least 1, got {k}")
    if not seeds:
        raise BuildError("seeds", "at least one seed is needed")
    entries: list[tuple[float, RaceEntry]] = []
    for cand in candidates(rec, k):
        results = [run_trial(cand, workload, steps, device, seed, size=size) for seed in seeds]
        finals = [r.final_loss for r in results if r.final_loss is not None and not r.diverged]
        mean = sum(finals) / len(finals) if finals else None
        diverged = sum(r.diverged for r in results)
        entry = RaceEntry(
            rank=0,
            optimizer=cand.optimizer.name,
            hyperparameters=dict(cand.optimizer.hyperparameters),
            mean_final_loss=mean,
            diverged_runs=diverged,
            results=results,
        )
        entries.append((math.inf if mean is None else mean + (math.inf if diverged == len(results) else 0.0), entry))
    entries.sort(key=lambda pair: pair[0])
    return [entry.model_copy(update={"rank": i + 1}) for i, (_, entry) in enumerate(entries)]
