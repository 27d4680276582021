"""What a worker does with one job: a single ``run_trial``, a race of candidates, or ``validate()``'s search on
the proxy workload, under a server budget.

A job is plain JSON (built by the API process or the CLI)::

    {"recommendation": {...}, "workload": "auto", "steps": 200, "device": "auto", "seed": 0, "size": 1,
     "race": 0, "validate": false, "budget": {"max_steps": 2000, "max_seconds": 300, "max_parameters": 50000000}}

This module imports torch: only the worker process and ``optirec trial`` (run locally) import it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from optirec.optimizers.builder import as_recommendation
from optirec.optimizers.errors import BuildError
from optirec.optimizers.racing import RaceEntry, candidates
from optirec.optimizers.trial import TrialBudget, TrialResult, built_model, resolve_device, run_trial, trial_workload

__all__ = ["ProgressFn", "RungsFactory", "execute", "job_budget", "race_jobs", "race_outcome", "search_replica"]

#: progress(steps_done, steps_total, loss)
ProgressFn = Callable[[int, int, float | None], None]


def job_budget(job: Mapping[str, Any]) -> TrialBudget:
    """The server's limits carried by the job."""
    budget = job.get("budget") or {}
    defaults = TrialBudget()
    return TrialBudget(
        max_steps=int(budget.get("max_steps", defaults.max_steps)),
        max_seconds=float(budget.get("max_seconds", defaults.max_seconds)),
        max_parameters=int(budget.get("max_parameters", defaults.max_parameters)),
    )


def execute(
    job: Mapping[str, Any], progress: ProgressFn, cancel: Callable[[], bool], rungs: RungsFactory | None = None
) -> tuple[dict[str, Any], bool]:
    """Run the job; returns (result as JSON, whether it was cancelled). Raises BuildError on bad input.

    ``rungs(job, stop)`` makes a validate job's rung trainer: its candidates then train elsewhere, side by side
    (the Ray backend's actors, each a ``search_replica(job)``)."""
    rec = as_recommendation(job["recommendation"])
    budget = job_budget(job)
    steps = min(int(job["steps"]), budget.max_steps)
    workload = str(job.get("workload", "auto"))
    device = str(job.get("device", "auto"))
    seed = int(job.get("seed", 0))
    size = int(job.get("size", 1))
    race = int(job.get("race", 0))

    if job.get("validate"):
        factory = None if rungs is None else (lambda stop: rungs(job, stop))
        return _validate(rec, workload, steps, device, seed, size, budget, progress, cancel, factory)
    if race <= 0:
        result = run_trial(
            rec,
            workload,
            steps,
            device,
            seed,
            size=size,
            budget=budget,
            progress=lambda done, total, loss: progress(done, total, _finite(loss)),
            cancel=cancel,
        )
        return result.model_dump(mode="json"), result.status == "cancelled"

    cands = candidates(rec, race)
    total = steps * len(cands)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    warnings: list[str] = []
    cancelled = False
    for index, cand in enumerate(cands):
        remaining = budget.max_seconds - (time.perf_counter() - start)
        if remaining <= 0:
            skipped = ", ".join(c.optimizer.name for c in cands[index:])
            warnings.append(f"the race's {budget.max_seconds:g} s budget ran out before: {skipped}")
            break
        offset = index * steps

        def report(done: int, _total: int, loss: float, offset: int = offset) -> None:
            progress(offset + done, total, _finite(loss))

        result = run_trial(
            cand,
            workload,
            steps,
            device,
            seed,
            size=size,
            budget=TrialBudget(budget.max_steps, remaining, budget.max_parameters),
            progress=report,
            cancel=cancel,
        )
        results.append(result.model_dump(mode="json"))
        if result.status == "cancelled":
            cancelled = True
            break
    return race_outcome(job, results, warnings), cancelled


def race_jobs(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A race job's candidates as single-trial jobs (plain JSON, same workload, steps, seed and budget), in the
    order ``execute`` runs them: what the Ray backend runs in parallel (ray_tasks.py)."""
    rec = as_recommendation(job["recommendation"])
    out = []
    for cand in candidates(rec, int(job.get("race", 0))):
        out.append({**job, "recommendation": cand.model_dump(mode="json"), "race": 0, "validate": False})
    return out


def race_outcome(job: Mapping[str, Any], results: list[dict[str, Any]], warnings: list[str]) -> dict[str, Any]:
    """The race's result from its candidates' trial results (JSON, in ``race_jobs`` order; fewer when the
    budget ran out or it was cancelled): ranked by final loss, diverged runs last."""
    cands = candidates(as_recommendation(job["recommendation"]), int(job.get("race", 0)))
    scored: list[tuple[float, RaceEntry]] = []
    for cand, data in zip(cands, results, strict=False):
        result = TrialResult.model_validate(data)
        scored.append((_score(result), _entry(cand.optimizer.name, dict(cand.optimizer.hyperparameters), result)))
    scored.sort(key=lambda pair: pair[0])
    ranked = [entry.model_copy(update={"rank": i + 1}) for i, (_, entry) in enumerate(scored)]
    return {"ranked": [e.model_dump(mode="json") for e in ranked], "warnings": list(warnings)}


#: a validate job's rung trainer, made from the job and its cancel (the Ray backend's actors; None: this process)
RungsFactory = Callable[[Mapping[str, Any], Callable[[], bool]], Any]


def _validation_inputs(
    rec: Any, workload: str, steps: int, device: str, seed: int, size: int, budget: TrialBudget
) -> tuple[Any, Any, list[Any]]:
    """The proxy workload, its model and its batches, the same in every process that builds them for a seed."""
    import torch

    dev = resolve_device(device)
    torch.manual_seed(seed)
    work = trial_workload(rec, workload, size, seed, dev)
    if len(work.players) > 1:
        raise BuildError(
            "validate", f"the {work.name} workload trains {len(work.players)} players; validate searches one"
        )
    model = built_model(work, budget)
    return work, model, [work.train_batch(i) for i in range(steps)]


def search_replica(job: Mapping[str, Any]) -> Any:
    """A SearchReplica of a validate job's search (a Ray actor holds one): the same candidates, model and batches."""
    from optirec.optimizers.validation import SearchReplica

    rec = as_recommendation(job["recommendation"])
    budget = job_budget(job)
    steps = min(int(job["steps"]), budget.max_steps)
    seed = int(job.get("seed", 0))
    work, model, batches = _validation_inputs(
        rec,
        str(job.get("workload", "auto")),
        steps,
        str(job.get("device", "auto")),
        seed,
        int(job.get("size", 1)),
        budget,
    )
    return SearchReplica(
        model, None, batches, rec, steps=steps, heldout=work.heldout_batches(), seed=seed, objective=work.loss
    )


def _validate(
    rec: Any,
    workload: str,
    steps: int,
    device: str,
    seed: int,
    size: int,
    budget: TrialBudget,
    progress: ProgressFn,
    cancel: Callable[[], bool],
    rung_trainer: Any = None,
) -> tuple[dict[str, Any], bool]:
    """optirec.validate on the proxy workload's model, batches and held-out set (within the server's limits)."""
    from optirec.optimizers.validation import validate

    work, model, batches = _validation_inputs(rec, workload, steps, device, seed, size, budget)
    start = time.perf_counter()

    def stop() -> bool:
        return cancel() or time.perf_counter() - start > budget.max_seconds

    try:
        report = validate(
            model,
            None,
            batches,
            rec,
            steps=steps,
            heldout=work.heldout_batches(),
            seed=seed,
            objective=work.loss,
            progress=lambda done, total, loss: progress(done, total, _finite(loss)),
            cancel=stop,
            rung_trainer=rung_trainer(stop) if rung_trainer is not None else None,
        )
    except BuildError as exc:
        if exc.field == "cancel":
            cancelled = cancel()
            why = (
                "the search was cancelled"
                if cancelled
                else f"the search ran past the server's {budget.max_seconds:g} s"
            )
            return {"validation": None, "workload": work.describe(), "warnings": [why]}, cancelled
        raise
    return {"validation": report.model_dump(mode="json"), "workload": work.describe(), "warnings": []}, False


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _score(result: TrialResult) -> float:
    if result.diverged or result.final_loss is None:
        return math.inf
    return result.final_loss


def _entry(name: str, hyperparameters: dict[str, Any], result: TrialResult) -> RaceEntry:
    final = None if result.diverged else result.final_loss
    return RaceEntry(
        rank=0,
        optimizer=name,
        hyperparameters=hyperparameters,
        mean_final_loss=final,
        diverged_runs=int(result.diverged),
        results=[result],
    )
