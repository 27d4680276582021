"""The result models of trials, races and validate() searches, free of torch.

They live here, apart from the code that produces them (trial.py, racing.py, lr_finder.py, validation.py all
import torch), so the service's contract (``TrialStatus.result``) and the HTTP client can be typed without
importing torch. The producing modules re-export them under their old names.

A trial's stored result is one of three shapes, told apart by their keys (:func:`result_kind`): a
``TrialResult`` (a single run), ``{"ranked": [RaceEntry, ...]}`` (a race, :class:`RaceOutcome`) and
``{"validation": ValidationReport}`` (a validate() search, :class:`ValidationOutcome`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from optirec.rules import Recommendation
from optirec.rules.recommendation import AdaptedValue

__all__ = [
    "Candidate",
    "HeldoutPoint",
    "LRRangeTest",
    "RaceEntry",
    "RaceOutcome",
    "Rung",
    "SearchCost",
    "Status",
    "TrialOutput",
    "TrialResult",
    "ValidationOutcome",
    "ValidationReport",
    "Verdict",
    "result_kind",
]

Status = Literal["succeeded", "diverged", "cancelled", "budget_exhausted"]
Verdict = Literal["ok", "too_high", "too_low", "inconclusive"]
Kind = Literal["recommendation", "alternative", "lr_free"]


class HeldoutPoint(BaseModel):
    step: int
    loss: float | None
    metric: float | None


class TrialResult(BaseModel):
    """What a trial run measured."""

    status: Status
    optimizer: str
    workload: dict[str, Any]
    device: str
    mixed_precision: bool
    seed: int
    steps_requested: int
    steps_done: int
    train_loss: list[float | None] = Field(description="Training loss per step (null where not finite).")
    heldout: list[HeldoutPoint] = Field(description="Held-out loss and metric at evaluation points.")
    final_loss: float | None
    final_metric: float | None
    metric_name: str
    higher_is_better: bool
    diverged: bool
    diverged_at: int | None
    divergence_reason: str | None
    steps_per_second: float
    wall_seconds: float
    peak_memory_bytes: int
    parameters: int
    warnings: list[str]
    diagnosis: dict[str, Any] | None = Field(
        default=None,
        description="When the run diverged: optirec.diagnose on its train_loss with the trial's recommendation "
        "(the Diagnosis JSON: findings, causes and the revised recommendation).",
    )


class RaceEntry(BaseModel):
    rank: int
    optimizer: str
    hyperparameters: dict[str, Any]
    mean_final_loss: float | None
    diverged_runs: int
    results: list[TrialResult]


class LRRangeTest(BaseModel):
    lrs: list[float]
    losses: list[float]  # smoothed
    suggested_lr: float | None
    method: Literal["steepest", "min_over_10", "none"]
    recommended_lr: float
    verdict: Verdict
    factor: float | None  # recommended / suggested
    stopped_early: bool
    steps: int


class Candidate(BaseModel):
    """One configuration the search tried, and how far it got."""

    index: int
    label: str
    kind: Kind
    optimizer: str
    hyperparameters: dict[str, Any]
    schedule: str
    lr_factor: float | None  # lr / the candidate's starting lr (the recommendation's or the alternative's)
    rung_scores: list[float | None]  # held-out loss at the end of each rung it trained in (None: diverged)
    steps: int  # optimizer steps it trained in all
    diverged: bool
    eliminated_at: int | None  # the rung after which it stopped (None: it reached the last rung)


class Rung(BaseModel):
    index: int
    steps: int  # each candidate of the rung has trained this many steps in all at its end
    candidates: int


class SearchCost(BaseModel):
    budget_steps: int
    spent_steps: int  # optimizer steps taken, range test included
    range_test_steps: int
    full_runs: float  # spent_steps / steps
    budget_runs: float


class ValidationReport(BaseModel):
    optimizer: str  # the recommended optimizer
    recommended_lr: float
    steps: int  # the full run length the last rung reaches
    lr_test: LRRangeTest | None  # the LR range test, a diagnostic (None with range_steps=0)
    scored_on: Literal["heldout", "heldout_slice"]
    rungs: list[Rung]
    candidates: list[Candidate]
    skipped: list[str]  # candidates the budget left out or that could not be built here, with why
    winner: str
    validated_lr: float
    at_edge: bool  # the winner's lr is at the end of its grid: the best lr may lie further out
    cost: SearchCost
    changes: list[AdaptedValue]
    recommendation: Recommendation  # the recommendation revised to the winner (the same one when it held)
    verdict: Literal["ok", "too_low", "too_high", "switched", "diverged"]
    advice: str


class RaceOutcome(BaseModel):
    """A race's result: its entries, best first, and what the race noticed on the way."""

    ranked: list[RaceEntry]
    warnings: list[str] = Field(default_factory=list)


class ValidationOutcome(BaseModel):
    """A validate() search on a proxy workload: the report (None when it was cancelled or ran out of time,
    the warnings say which), the workload it ran on, and warnings."""

    validation: ValidationReport | None
    workload: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def result_kind(value: Any) -> str:
    """'race', 'validation' or 'trial': which of the three result shapes ``value`` (JSON or a model) is."""
    if isinstance(value, BaseModel):
        value = dict(value)
    if isinstance(value, dict):
        if "ranked" in value:
            return "race"
        if "validation" in value:
            return "validation"
    return "trial"


#: ``TrialStatus.result``: one of the three shapes, chosen by its keys (so a validation error names the right one).
TrialOutput = Annotated[
    Annotated[TrialResult, Tag("trial")]
    | Annotated[RaceOutcome, Tag("race")]
    | Annotated[ValidationOutcome, Tag("validation")],
    Discriminator(result_kind),
]
