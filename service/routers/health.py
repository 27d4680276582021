"""GET /healthz: the process answers and its knowledge base is loaded."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ..deps import RulebookDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    rulebook_version: str
    rulebook_hash: str


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz(book: RulebookDep) -> Health:
    return Health(status="ok", rulebook_version=book.version, rulebook_hash=book.hash)
