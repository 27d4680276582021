"""``race(rec, k=3, ...)``: the recommendation and its top alternatives on the same proxy workload, budget
and seeds, ranked by held-out loss; ``with_optimizer`` / ``candidates``: a recommendation with another
optimizer (its schedule, clipping and the rest kept)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from optirec.rules import Recommendation, default_rulebook
from optirec.rules.recommendation import OptimizerChoice

from .builder import as_recommendation
from .errors import BuildError
from .results import RaceEntry, TrialResult
from .trial import run_trial
from .workloads.base import Workload

__all__ = ["RaceEntry", "at_catalog_defaults", "candidates", "race", "race_entries", "with_optimizer"]


def with_optimizer(rec: Recommendation, name: str, hyperparameters: Mapping[str, Any]) -> Recommendation:
    """``rec`` with another optimizer (schedule, clipping and the rest kept); parameter groups that name an
    optimizer of their own belong to the old choice and are dropped."""
    choice = OptimizerChoice(name=name, hyperparameters=dict(hyperparameters))
    plain_groups = [g for g in rec.param_groups if g.optimizer is None]
    return rec.model_copy(update={"optimizer": choice, "param_groups": plain_groups})


def at_catalog_defaults(rec: Recommendation, name: str) -> Recommendation:
    """``rec`` with catalog optimizer ``name`` at its cited defaults, and the catalog's schedule where that is
    constant (a schedule-free optimizer replaces the schedule; the warmup is kept)."""
    book = default_rulebook()
    out = with_optimizer(rec, name, dict(book.defaults[name]))
    if book.optimizers[name].schedule == "constant" and rec.schedule.name != "constant":
        out = out.model_copy(update={"schedule": out.schedule.model_copy(update={"name": "constant"})})
    return out


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
    cands = candidates(rec, k)
    runs = [[run_trial(c, workload, steps, device, seed, size=size) for seed in seeds] for c in cands]
    return race_entries(cands, runs)


def race_entries(cands: Sequence[Recommendation], results: Sequence[Sequence[TrialResult]]) -> list[RaceEntry]:
    """Rank candidates by their runs (one list of results per candidate, a run per seed): best mean held-out
    loss first, a candidate whose every run diverged last. ``race`` ranks with it, as do runs made elsewhere
    (on a Ray cluster: bench/ray.py)."""
    entries: list[tuple[float, RaceEntry]] = []
    for cand, seeded in zip(cands, results, strict=True):
        runs = list(seeded)
        finals = [r.final_loss for r in runs if r.final_loss is not None and not r.diverged]
        mean = sum(finals) / len(finals) if finals else None
        diverged = sum(r.diverged for r in runs)
        entry = RaceEntry(
            rank=0,
            optimizer=cand.optimizer.name,
            hyperparameters=dict(cand.optimizer.hyperparameters),
            mean_final_loss=mean,
            diverged_runs=diverged,
            results=runs,
        )
        entries.append((math.inf if mean is None else mean + (math.inf if diverged == len(runs) else 0.0), entry))
    entries.sort(key=lambda pair: pair[0])
    return [entry.model_copy(update={"rank": i + 1}) for i, (_, entry) in enumerate(entries)]
