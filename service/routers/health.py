"""GET /healthz: the process answers and its knowledge base is loaded. GET /readyz: it can take work."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from optirec.rules import default_rulebook

from ..deps import RulebookDep
from ..trials.runner import TrialRunner

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    rulebook_version: str
    rulebook_hash: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz(book: RulebookDep) -> Health:
    return Health(status="ok", rulebook_version=book.version, rulebook_hash=book.hash)


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the rulebook is loaded, the trial store answers and the trial dispatcher runs",
    responses={503: {"model": Readiness, "description": "Not ready; ``checks`` says what is missing"}},
)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        checks["rulebook"] = f"ok ({default_rulebook().version})"
    except Exception as exc:  # a broken rulebook makes the service unready, not a 500
        checks["rulebook"] = f"failed: {type(exc).__name__}"
    runner = getattr(request.app.state, "trials", None)
    if isinstance(runner, TrialRunner):
        checks["trial_store"] = "ok" if runner.store.ping() else "failed: the store does not answer"
        full_since = runner.store.full_since
        if checks["trial_store"] == "ok" and full_since is not None and not runner.store.writable():
            checks["trial_store"] = (
                f"failed: the disk holding the store is full (since {full_since}); trials cannot be queued "
                "until space is freed (they resume by themselves)"
            )
        checks["trial_dispatcher"] = "ok" if runner.alive() else "failed: the dispatcher is not running"
        if runner.backend.name != "process":  # with trial_backend=ray: whether its cluster answers
            checks["trial_backend"] = runner.backend.check()
    else:
        checks["trial_store"] = "failed: not opened (the app's lifespan has not run)"
        checks["trial_dispatcher"] = "failed: not started"
    ready = all(value.startswith("ok") for value in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
