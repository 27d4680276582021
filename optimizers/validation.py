"""Check a recommendation before committing compute: on the user's own model, or as a race of candidates.

- ``validate(model, loss_fn, batches, rec)``: the LR range test and a short run on the user's model and
  data; the weights (and requires_grad flags) are restored afterwards.
- ``race(rec, k=3, ...)``: the recommendation and its top alternatives on the same proxy workload, budget
  and seeds, ranked by held-out loss.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from optirec.rules import Recommendation
from optirec.rules.recommendation import OptimizerChoice

from .builder import as_recommendation, build
from .errors import BuildError
from .lr_finder import LRRangeTest, lr_range_test, restore
from .training import train_step
from .trial import DIVERGENCE_FACTOR, TrialResult, run_trial
from .workloads.base import Workload

__all__ = ["RaceEntry", "ShortRun", "ValidationReport", "race", "validate"]


class ShortRun(BaseModel):
    steps: int
    losses: list[float | None]
    diverged: bool
    diverged_at: int | None
    improved: bool  # last loss below the first


class ValidationReport(BaseModel):
    optimizer: str
    recommended_lr: float
    lr_test: LRRangeTest
    short_run: ShortRun
    verdict: str
    advice: str


def validate(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    batches: Iterable[Sequence[Any]],
    recommendation: Recommendation | Mapping[str, Any],
    *,
    steps: int = 50,
    range_steps: int = 100,
) -> ValidationReport:
    """LR range test + a ``steps``-step run with the recommendation on ``batches`` of ``(inputs, targets)``."""
    rec = as_recommendation(recommendation)
    data = list(batches)
    if not data:
        raise BuildError("batches", "no batches to validate on")

    def objective(m: nn.Module, batch: Any) -> torch.Tensor:
        return loss_fn(m(batch[0]), batch[1])

    test = lr_range_test(model, objective, data, rec, steps=range_steps)
    saved = copy.deepcopy(model.state_dict())
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    built = None
    losses: list[float | None] = []
    diverged_at: int | None = None
    try:
        built = build(model, rec, total_steps=steps)
        first: float | None = None
        for i in range(steps):
            batch = data[i % len(data)]
            value = train_step(model, loss_fn, batch, built)
            losses.append(value if math.isfinite(value) else None)
            if first is None and math.isfinite(value):
                first = value
            if not math.isfinite(value) or (
                first is not None and abs(value) > DIVERGENCE_FACTOR * max(abs(first), 1e-8)
            ):
                diverged_at = i
                break
    finally:
        restore(model, saved, trainable, was_training, built.optimizer if built is not None else None)
    finite = [x for x in losses if x is not None]
    short = ShortRun(
        steps=len(losses),
        losses=losses,
        diverged=diverged_at is not None,
        diverged_at=diverged_at,
        improved=len(finite) >= 2 and finite[-1] < finite[0],
    )
    if short.diverged:
        verdict, advice = "diverged", "the short run diverged: divide the lr by 10 (004 §6.4.1) and validate again"
    elif test.verdict in ("too_high", "too_low") and test.suggested_lr is not None:
        verdict = test.verdict
        advice = f"the range test suggests lr {test.suggested_lr:.3g} ({test.factor:.3g}x off the recommendation)"
    else:
        verdict, advice = (
            ("ok", "the recommended lr is in the range-test's good region")
            if test.verdict == "ok"
            else (
                test.verdict,
                "the range test found no clear descent; judge by the short run",
            )
        )
    return ValidationReport(
        optimizer=rec.optimizer.name,
        recommended_lr=test.recommended_lr,
        lr_test=test,
        short_run=short,
        verdict=verdict,
        advice=advice,
    )


class RaceEntry(BaseModel):
    rank: int
    optimizer: str
    hyperparameters: dict[str, Any]
    mean_final_loss: float | None
    diverged_runs: int
    results: list[TrialResult]


def candidates(rec: Recommendation, k: int) -> list[Recommendation]:
    """The recommendation and its first ``k - 1`` alternatives, each as a full recommendation."""
    out = [rec]
    plain_groups = [g for g in rec.param_groups if g.optimizer is None]
    for alt in rec.alternatives[: max(0, k - 1)]:
        choice = OptimizerChoice(name=alt.name, hyperparameters=dict(alt.hyperparameters))
        out.append(rec.model_copy(update={"optimizer": choice, "param_groups": plain_groups}))
    return out


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
