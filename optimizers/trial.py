"""``run_trial``: prove a recommendation on a short real training run of a proxy workload.

CUDA when available (mixed precision when the profile asks for it), CPU otherwise; seeded and
reproducible on CPU. Budgets bound steps, wall-clock time and model size; a cancel flag and a
progress callback let a service drive it. Divergence (NaN/inf, or the loss exploding past
``DIVERGENCE_FACTOR`` x its starting value) stops the run and is reported with its step. Held-out
evaluations run in :func:`~optirec.optimizers.training.evaluation_mode`: a Schedule-Free optimizer is
scored at its averaged weights, the point it is meant to be evaluated at.
"""

from __future__ import annotations

import math
import resource
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from optirec.rules import Recommendation, diagnose
from optirec.rules.errors import OptirecError

from .builder import BuildResult, as_recommendation, build
from .errors import BuildError
from .results import HeldoutPoint, Status, TrialResult
from .training import evaluation_mode, train_step
from .workloads import make_workload, workload_for, workload_kwargs_for
from .workloads.base import Evaluation, Workload

__all__ = [
    "DIVERGENCE_FACTOR",
    "HeldoutPoint",
    "TrialBudget",
    "TrialResult",
    "built_model",
    "resolve_device",
    "run_trial",
    "trial_workload",
]

#: A loss above this multiple of the first loss counts as an explosion.
DIVERGENCE_FACTOR = 10.0


def exploded(value: float, first: float | None) -> bool:
    """The loss has grown past DIVERGENCE_FACTOR x the first finite loss of the run."""
    return first is not None and abs(value) > DIVERGENCE_FACTOR * max(abs(first), 1e-8)


ProgressFn = Callable[[int, int, float], None]


@dataclass(frozen=True)
class TrialBudget:
    """Server-side limits that hold whatever the caller asks."""

    max_steps: int = 5_000
    max_seconds: float = 600.0
    max_parameters: int = 50_000_000


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else must be a device torch knows."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise BuildError("device", f"unknown device {device!r}; valid values: auto, cpu, cuda, cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BuildError("device", "CUDA was asked for but is not available on this machine; use 'auto' or 'cpu'")
    return resolved


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # process peak RSS on CPU


def trial_workload(
    rec: Recommendation, workload: str, size: int, seed: int, device: torch.device, traits: list[str] | None = None
) -> Workload:
    """The proxy workload ``workload`` names ('auto': the one matching the recommendation's profile), with the
    profile's data traits (or ``traits``) and, for the matching workload, its cell; a bad trait is a BuildError."""
    matching = workload_for(rec)
    name = matching if workload == "auto" else workload
    kwargs = workload_kwargs_for(rec)  # the profile's data traits (and a GRU cell) when they apply
    if name != matching:
        kwargs.pop("cell", None)
    if traits is not None:
        kwargs["traits"] = tuple(traits)
    try:
        return make_workload(name, size=size, seed=seed, device=device, **kwargs)
    except ValueError as exc:
        raise BuildError("traits", str(exc)) from None


def built_model(work: Workload, budget: TrialBudget) -> nn.Module:
    """The workload's model, refused (BuildError "size") when it has more parameters than the budget allows."""
    model = work.build_model()
    n_params = sum(p.numel() for p in model.parameters())
    if n_params > budget.max_parameters:
        raise BuildError(
            "size",
            f"the {work.name} workload at size {work.size} has {n_params:,} parameters; the limit is "
            f"{budget.max_parameters:,}",
        )
    return model


def run_trial(
    recommendation: Recommendation | Mapping[str, Any],
    workload: str | Workload = "auto",
    steps: int = 200,
    device: str = "auto",
    seed: int = 0,
    *,
    size: int = 1,
    traits: list[str] | None = None,
    eval_every: int | None = None,
    budget: TrialBudget | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    mixed_precision: bool | None = None,
) -> TrialResult:
    """Train ``workload`` for ``steps`` optimizer steps with the recommendation and report the curves.

    ``workload="auto"`` picks the proxy for the profile's architecture/domain; ``traits`` default to
    the profile's data characteristics. ``cancel`` (an Event or a callable) is checked every step.
    """
    rec = as_recommendation(recommendation)
    budget = budget or TrialBudget()
    if not 1 <= steps <= budget.max_steps:
        raise BuildError("steps", f"must be between 1 and {budget.max_steps}, got {steps}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    work = workload if isinstance(workload, Workload) else trial_workload(rec, workload, size, seed, dev, traits)
    model = built_model(work, budget)
    n_params = sum(p.numel() for p in model.parameters())
    use_amp = bool(rec.profile.get("mixed_precision")) if mixed_precision is None else mixed_precision
    use_amp = use_amp and dev.type == "cuda"
    warnings: list[str] = []
    if work.ignored_traits:
        warnings.append(f"the {work.name} workload cannot show {', '.join(sorted(work.ignored_traits))}; ignored")
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    builts: dict[str, BuildResult] = {}
    for player in work.players:
        module = work.player_module(model, player)
        builts[player] = build(module, rec, total_steps=steps)
    scaler = torch.amp.GradScaler("cuda") if use_amp and not any(b.needs_closure for b in builts.values()) else None
    optimizers = [b.optimizer for b in builts.values()]

    every = eval_every or max(1, steps // 10)
    is_cancelled = cancel.is_set if isinstance(cancel, threading.Event) else cancel
    train_loss: list[float | None] = []
    heldout: list[HeldoutPoint] = []
    status: Status = "succeeded"
    diverged_at: int | None = None
    reason: str | None = None
    first: float | None = None
    start = time.perf_counter()
    done = 0
    for step in range(steps):
        if is_cancelled is not None and is_cancelled():
            status = "cancelled"
            break
        if time.perf_counter() - start > budget.max_seconds:
            status = "budget_exhausted"
            warnings.append(f"stopped after {budget.max_seconds:g} s of wall-clock time")
            break
        batch = work.train_batch(step)
        losses = []
        for player, built in builts.items():
            module = work.player_module(model, player)

            def objective(player: str = player, batch: Any = batch) -> torch.Tensor:
                return work.player_loss(model, batch, player)

            losses.append(
                train_step(
                    module,
                    None,
                    batch,
                    built,
                    scaler=scaler,
                    autocast_dtype=torch.float16 if scaler is not None else None,
                    objective=objective,
                )
            )
        value = float(sum(losses))
        done = step + 1
        train_loss.append(_finite(value))
        if first is None and math.isfinite(value):
            first = value
        if not math.isfinite(value):
            status, diverged_at, reason = "diverged", step, "loss is NaN or infinite"
        elif step > 0 and exploded(value, first):
            status, diverged_at = "diverged", step
            reason = f"loss {value:.4g} exploded past {DIVERGENCE_FACTOR:g}x its first value {first:.4g}"
        if progress is not None:
            progress(done, steps, value)
        if status == "diverged":
            break
        if done % every == 0 or done == steps:
            with evaluation_mode(*optimizers):
                ev = work.evaluate(model)
            heldout.append(HeldoutPoint(step=done, loss=_finite(ev.loss), metric=_finite(ev.metric)))
    wall = time.perf_counter() - start
    diagnosis = _diagnose_divergence(train_loss, rec, warnings) if status == "diverged" else None
    final: Evaluation | None = None
    if status != "diverged":
        with evaluation_mode(*optimizers):
            final = work.evaluate(model)
    if final is not None and (not heldout or heldout[-1].step != done) and done > 0:
        heldout.append(HeldoutPoint(step=done, loss=_finite(final.loss), metric=_finite(final.metric)))
    return TrialResult(
        status=status,
        optimizer=rec.optimizer.name,
        workload=work.describe(),
        device=str(dev),
        mixed_precision=scaler is not None,
        seed=seed,
        steps_requested=steps,
        steps_done=done,
        train_loss=train_loss,
        heldout=heldout,
        final_loss=_finite(final.loss) if final else None,
        final_metric=_finite(final.metric) if final else None,
        metric_name=work.metric_name,
        higher_is_better=work.higher_is_better,
        diverged=status == "diverged",
        diverged_at=diverged_at,
        divergence_reason=reason,
        steps_per_second=done / wall if wall > 0 else 0.0,
        wall_seconds=wall,
        peak_memory_bytes=_peak_memory(dev),
        parameters=n_params,
        warnings=warnings,
        diagnosis=diagnosis,
    )


def _diagnose_divergence(
    train_loss: list[float | None], rec: Recommendation, warnings: list[str]
) -> dict[str, Any] | None:
    """The Diagnosis JSON of a diverged run (None, with a warning, if the curve cannot be diagnosed)."""
    try:
        return diagnose(train_loss=train_loss, recommendation=rec).model_dump(mode="json")
    except OptirecError as exc:  # pragma: no cover - a trial's own curve and recommendation are valid input
        warnings.append(f"the divergence could not be diagnosed: {exc}")
        return None
