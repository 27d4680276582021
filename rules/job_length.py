"""A job's batch in samples and its length in optimizer steps, from whatever the job states.

Profiles and recipe jobs share these field names, so one derivation serves both (recipe matching compares
the two, which only works when both are read alike).  ``step_routes`` lists every way the fields give the
length, in the order ``job_steps`` prefers them; when two disagree, rules/contradictions.py says so.
"""

from __future__ import annotations

import math
from typing import Any, Literal

__all__ = ["Route", "job_batch", "job_epochs", "job_steps", "step_routes"]

#: how a step count was reached: stated; epochs x steps_per_epoch; total tokens over tokens per step;
#: epochs x the data set over the batch
Route = Literal["total_steps", "steps_per_epoch", "total_tokens", "dataset_size"]


def job_batch(job: Any) -> int | None:
    """The batch in samples: stated, or batch tokens over the sequence length."""
    if job.batch_size is not None:
        return int(job.batch_size)
    if job.batch_tokens is not None and job.sequence_length:
        return max(1, int(job.batch_tokens / job.sequence_length + 0.5))
    return None


def job_steps(job: Any, batch: int | None) -> int | None:
    """Optimizer steps: stated; or epochs x steps per epoch; or total tokens over tokens per step; or epochs x
    the data set over the batch (the first of ``step_routes``)."""
    if job.total_steps is not None:  # the usual case, without building the list
        return int(job.total_steps)
    routes = step_routes(job, batch)
    return routes[0][1] if routes else None


def job_epochs(job: Any, steps: int | None, batch: int | None) -> float | None:
    """The job's length in epochs: stated, else its steps x batch over the data set (None when unknown)."""
    if job.epochs:
        return float(job.epochs)
    if steps and batch and job.dataset_size:
        return float(steps * batch / job.dataset_size)
    return None


def step_routes(job: Any, batch: int | None) -> list[tuple[Route, int]]:
    """Every step count the job's fields give, in order of preference (the first is the one used)."""
    routes: list[tuple[Route, int]] = []
    if job.total_steps is not None:
        routes.append(("total_steps", int(job.total_steps)))
    if job.epochs is not None and job.steps_per_epoch is not None:
        routes.append(("steps_per_epoch", int(job.epochs * job.steps_per_epoch)))
    batch_tokens = job.batch_tokens or (batch * job.sequence_length if batch and job.sequence_length else None)
    if job.total_tokens is not None and batch_tokens:
        routes.append(("total_tokens", max(1, int(job.total_tokens / batch_tokens + 0.5))))
    if job.epochs is not None and job.dataset_size is not None and batch:
        routes.append(("dataset_size", int(job.epochs * math.ceil(job.dataset_size / batch))))
    return routes
