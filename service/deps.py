"""FastAPI dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from optirec.rules import Rulebook, default_rulebook

from .settings import Settings, get_settings
from .trials.runner import TrialRunner

__all__ = ["ApiKeyDep", "RulebookDep", "RunnerDep", "SettingsDep", "require_api_key"]


async def app_settings(request: Request) -> Settings:
    """The Settings the app was created with (``create_app(settings)``), else the environment's."""
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def rulebook() -> Rulebook:
    """The loaded knowledge base (cached after the first load)."""
    return default_rulebook()


# every dependency is ``async def``: FastAPI would run a plain ``def`` in a worker thread on each request
RulebookDep = Annotated[Rulebook, Depends(rulebook)]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="optirec", charset="UTF-8"'}


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """When ``OPTIREC_API_KEY`` is set, demand it in ``X-API-Key`` or ``Authorization: Bearer`` (401 otherwise).

    The comparison is constant-time (``hmac.compare_digest``) and the key never appears in a response.
    """
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    if given is None:
        raise HTTPException(401, "an API key is required: send it in the X-API-Key header", headers=_CHALLENGE)
    if not hmac.compare_digest(given.encode(), expected):
        raise HTTPException(401, "the API key is not valid", headers=_CHALLENGE)


async def trial_runner(request: Request) -> TrialRunner:
    """The app's trial dispatcher; 503 while the service is not started (its lifespan has not run)."""
    runner = getattr(request.app.state, "trials", None)
    if not isinstance(runner, TrialRunner) or not runner.alive():
        raise HTTPException(503, "trials are not available: the trial dispatcher is not running")
    return runner


ApiKeyDep = Annotated[None, Depends(require_api_key)]
RunnerDep = Annotated[TrialRunner, Depends(trial_runner)]
