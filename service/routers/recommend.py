"""POST /recommend: Profile -> Recommendation (pure Python, no torch, no blocking work).

``?format=`` (hf, lightning, timm, torch, optuna) returns the same recommendation rendered for a
framework by the torch-free exporters of ``optimizers/exporters/``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from optirec.optimizers.exporters.formats import ExportFormat
from optirec.rules import Profile, Recommendation

from ..answers import Export
from ..deps import JSON_BODY, AnswersDep
from ..handlers import error_responses

router = APIRouter(prefix="/recommend", tags=["recommend"])


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
    answers: AnswersDep,
    format: Annotated[ExportFormat, Query(description="json, or a framework to render the answer for.")] = "json",
) -> Response:
    """Every Profile field is optional; an unknown value is a 422 listing the valid ones. A profile asked
    before (after aliases are resolved) is answered from the service's cache of rendered answers."""
    # the Response skips FastAPI's re-validation of the returned model; response_model still documents it
    return Response(answers.get(profile, format), media_type="application/json")
