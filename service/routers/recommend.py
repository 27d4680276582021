"""POST /recommend: Profile -> Recommendation (pure Python, no torch, no blocking work).

``?format=`` (hf, lightning, timm, torch, optuna) returns the same recommendation rendered for a
framework by the torch-free exporters of ``optimizers/exporters.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from optirec.rules import Profile, Recommendation, recommend

from ..deps import JSON_BODY, RulebookDep
from ..handlers import error_responses

router = APIRouter(prefix="/recommend", tags=["recommend"])

#: the same values as optirec.optimizers.exporters.FORMATS (a test keeps them equal)
ExportFormat = Literal["json", "hf", "lightning", "timm", "torch", "optuna"]


class Export(BaseModel):
    """A recommendation rendered for a framework (``?format=`` other than json)."""

    format: ExportFormat
    export: dict[str, Any] | str
    notes: list[str]
    recommendation: Recommendation


@router.post(
    "",
    response_model=Recommendation | Export,
    dependencies=JSON_BODY,
    summary="Recommend an optimizer for a training job",
    responses={
        200: {"description": "The Recommendation; with ?format= other than json, an Export object."},
        **error_responses(413, 415, 422),
    },
)
async def post_recommend(
    profile: Profile,
    book: RulebookDep,
    format: Annotated[ExportFormat, Query(description="json, or a framework to render the answer for.")] = "json",
) -> Recommendation | JSONResponse:
    """Every Profile field is optional; an unknown value is a 422 listing the valid ones."""
    rec = recommend(profile, rulebook=book)
    if format == "json":
        return rec
    from optirec.optimizers.errors import ExportError
    from optirec.optimizers.exporters import export

    notes: list[str] = []
    try:
        rendered = export(rec, format, notes)
    except ExportError as exc:
        from optirec.rules.errors import FieldIssue, ProfileError

        raise ProfileError([FieldIssue(field="format", message=str(exc), value=format)]) from None
    body = Export(format=format, export=rendered, notes=notes, recommendation=rec)
    return JSONResponse(body.model_dump(mode="json"))
