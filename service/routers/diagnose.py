"""POST /diagnose: loss curves and/or named symptoms -> findings and a revised Recommendation (pure Python)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from optirec.rules import default_rulebook
from optirec.rules.diagnose import Diagnosis, diagnose
from optirec.rules.errors import FieldIssue, ProfileError

from ..deps import JSON_BODY
from ..handlers import error_responses
from ..trials.models import hyperparameter_issues

router = APIRouter(prefix="/diagnose", tags=["diagnose"])

#: The longest curve accepted (principles.toml [diagnosis] max_points), read once when the service starts.
_SETTINGS = default_rulebook().diagnosis
MAX_POINTS = _SETTINGS.max_points if _SETTINGS is not None else 100_000
Loss = Annotated[float, Field(strict=True)] | None


class DiagnoseRequest(BaseModel):
    """What a training job saw. Give a curve, named symptoms, or both."""

    model_config = ConfigDict(extra="forbid")

    train_loss: list[Loss] | None = Field(
        default=None,
        max_length=MAX_POINTS,
        description="Training loss per step; null where it was NaN/inf (NaN literals are not JSON).",
        examples=[[2.3, 1.9, 1.7, 1.6, None]],
    )
    val_loss: list[Loss] | None = Field(
        default=None,
        max_length=MAX_POINTS,
        description="Validation loss, evaluated evenly over the training steps (any number of points).",
    )
    symptoms: list[str] | None = Field(
        default=None, max_length=32, description="Symptom names (004 §6.4.1 rows), e.g. ['overfitting']."
    )
    recommendation: dict[str, Any] | None = Field(
        default=None, description="The recommendation the job trained with (POST /recommend's answer)."
    )
    profile: dict[str, Any] | None = Field(
        default=None, description="The job's Profile, used when no recommendation is given."
    )


def _finite_or_null(name: str, values: list[float | None] | None) -> None:
    for i, v in enumerate(values or []):
        if v is not None and not math.isfinite(v):
            raise ProfileError(
                [
                    FieldIssue(
                        field=f"{name}[{i}]",
                        message="NaN and Infinity are not valid JSON numbers; send null for a non-finite loss",
                    )
                ]
            )


def _check_hyperparameters(rec: dict[str, Any] | None) -> None:
    """A negative lr and the like are refused here (422), as POST /trials refuses them, not revised."""
    if rec is None:
        return
    issues: list[FieldIssue] = []
    optimizer = rec.get("optimizer")
    if isinstance(optimizer, dict):
        issues += hyperparameter_issues(optimizer.get("hyperparameters"), "recommendation.optimizer.hyperparameters")
    groups = rec.get("param_groups")
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        if isinstance(group, dict):
            field = f"recommendation.param_groups[{i}].hyperparameters"
            issues += hyperparameter_issues(group.get("hyperparameters"), field)
    if issues:
        raise ProfileError(issues)


@router.post(
    "",
    response_model=Diagnosis,
    dependencies=JSON_BODY,
    summary="Diagnose a training run and revise its recommendation",
    responses=error_responses(413, 415, 422),
)
def post_diagnose(body: DiagnoseRequest) -> Diagnosis:
    """A 422 names the field (train_loss, val_loss, symptoms, recommendation.*, profile.*) and the valid values."""
    _finite_or_null("train_loss", body.train_loss)
    _finite_or_null("val_loss", body.val_loss)
    _check_hyperparameters(body.recommendation)
    return diagnose(
        train_loss=body.train_loss,
        val_loss=body.val_loss,
        symptoms=body.symptoms,
        recommendation=body.recommendation,
        profile=body.profile,
    )
