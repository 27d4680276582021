"""POST /recommend: Profile -> Recommendation (pure Python, no torch, no blocking work)."""

from __future__ import annotations

from fastapi import APIRouter

from optirec.rules import Profile, Recommendation, recommend

from ..deps import RulebookDep

router = APIRouter(prefix="/recommend", tags=["recommend"])


@router.post("", response_model=Recommendation, summary="Recommend an optimizer for a training job")
async def post_recommend(profile: Profile, book: RulebookDep) -> Recommendation:
    """Every Profile field is optional; an unknown value is a 422 listing the valid ones."""
    return recommend(profile, rulebook=book)
