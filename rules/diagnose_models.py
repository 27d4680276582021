"""The output models of ``optirec.diagnose`` (rules/diagnose.py): findings with their evidence, the changes made
to the recommendation, and the Diagnosis that carries them. Pure Python (pydantic)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .diagnose_stats import Severity
from .recommendation import Recommendation, RulebookInfo

__all__ = ["Cause", "Change", "CurveSummary", "Diagnosis", "Evidence", "Finding"]


# ---------------------------------------------------------------------------------------- output models
class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Evidence(_Out):
    curve: Literal["train", "val", "named"] = Field(description="Which curve shows it ('named': given by the caller).")
    start_step: int | None = Field(
        description="First step of the symptom: the caller's step (steps / val_steps), else the index of the point."
    )
    end_step: int | None = Field(description="Last step of the symptom (same numbering).")
    summary: str = Field(description="The figures in words, e.g. 'val loss rose 18% from step 410 to 600 ...'.")
    figures: dict[str, float] = Field(default_factory=dict, description="The numbers behind the summary.")


class Finding(_Out):
    symptom: str = Field(description="Symptom name (symptoms.toml).")
    label: str
    cause: str = Field(description="The seed's likely cause; when cause_applies is false, why no seed cause is given.")
    fix: str = Field(description="The seed's fix; when cause_applies is false, what to check.")
    cause_applies: bool = Field(
        default=True,
        description="False when no seed names a cause for this run (e.g. a loss that never falls, or a late plateau "
        "under a schedule that already decays the learning rate): then nothing is changed for this finding.",
    )
    rule: str = Field(description="Rule id of the symptom row, e.g. symptom.divergence.")
    source: str = Field(description="Seed citation, e.g. '004 §6.4.1 loss diverges (NaN)'.")
    severity: Severity
    confidence: float = Field(ge=0, le=1)
    detected_from: Literal["curve", "named"]
    evidence: Evidence
    actions: list[str] = Field(description="The changes this finding asks for (action names of symptoms.toml).")


class Cause(_Out):
    cause: str
    symptom: str
    rule: str
    source: str


class Change(_Out):
    """One change made to the recommendation: field, old and new value, and why."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    field: str = Field(description="Dotted path in the Recommendation, e.g. optimizer.hyperparameters.lr.")
    from_: Any = Field(alias="from", description="Value before.")
    to: Any = Field(description="Value after.")
    why: str
    rule: str
    source: str
    symptom: str


class CurveSummary(_Out):
    train_points: int
    val_points: int
    train_non_finite: int
    val_non_finite: int
    first_step: int | None = Field(
        default=None, description="Step of the first point of the training curve (else the validation curve)."
    )
    last_step: int | None = Field(default=None, description="Step of its last point.")


class Diagnosis(_Out):
    """What the curves show, why, and the recommendation with the fixes applied."""

    healthy: bool = Field(description="True when no symptom was found or named.")
    message: str
    findings: list[Finding]
    causes: list[Cause] = Field(description="The seed's cause of each finding whose cause applies to this run.")
    changes: list[Change]
    notes: list[str]
    recommendation: Recommendation = Field(description="The revised recommendation (unchanged when healthy).")
    based_on: Literal["recommendation", "profile", "default"] = Field(
        description="What was revised: the caller's recommendation, recommend(profile), or the default one."
    )
    curves: CurveSummary
    rulebook: RulebookInfo
