"""FastAPI dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
import math
import re
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from optirec.rules import Rulebook, default_rulebook
from optirec.rules.errors import FieldIssue, ProfileError
from optirec.rules.numbers import BEYOND_FLOAT, beyond_float

from .answers import AnswerCache
from .settings import Settings, get_settings
from .trials.runner import TrialRunner

__all__ = [
    "JSON_BODY",
    "MAX_JSON_DEPTH",
    "AnswersDep",
    "ApiKeyDep",
    "RulebookDep",
    "RunnerDep",
    "SettingsDep",
    "json_issue",
    "require_api_key",
    "require_json",
]

#: The deepest nesting of arrays and objects a request body may have (a Recommendation needs about 6).
MAX_JSON_DEPTH = 32
#: Bytes that may parse to a non-finite float: the NaN/Infinity literals, or a number too big for a float
#: (Python's json turns ``1e400`` into inf, and 309 digits or more into an int beyond float range). A cheap
#: scan; a match only means the parsed body is walked.
_MAYBE_NOT_FINITE = re.compile(rb"NaN|Infinity|[eE]\+?\d{3}|\d{300}")
#: A ``\uD800``-``\uDFFF`` escape: maybe a lone UTF-16 surrogate, which is no Unicode text at all.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


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


async def answers(request: Request) -> AnswerCache:
    """The app's /recommend answer cache (a fresh, disabled one for an app built without create_app)."""
    cache = getattr(request.app.state, "answers", None)
    return cache if isinstance(cache, AnswerCache) else AnswerCache(0)


AnswersDep = Annotated[AnswerCache, Depends(answers)]

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


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_issue(document: Any, max_depth: int = MAX_JSON_DEPTH, *, strings: bool = True) -> FieldIssue | None:
    """The first NaN/Infinity number, integer beyond float range (rules/numbers.py), too-deep nesting or
    (``strings``) text with a lone UTF-16 surrogate in a parsed JSON document, naming where it is.

    Python's json module accepts the non-standard literals ``NaN``, ``Infinity`` and ``-Infinity`` and escapes
    such as ``"\ud800"`` that decode to no Unicode text; the service does not. Iterative, so a hostile document
    cannot exhaust the stack here.
    """
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if strings and isinstance(value, str) and not _unicode(value):
            return FieldIssue(where or "body", "not Unicode text: it contains a lone UTF-16 surrogate escape")
        if strings and isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and not _unicode(key):
                    return FieldIssue(where or "body", "a key is not Unicode text (a lone UTF-16 surrogate escape)")
        if isinstance(value, float) and not math.isfinite(value):
            if math.isnan(value):
                what = "NaN is not a valid JSON number"
            else:
                what = f"{'' if value > 0 else '-'}Infinity (or a number beyond ±1.8e308) is not a valid JSON number"
            return FieldIssue(where or "body", f"{what}; send null where a value is not finite")
        if isinstance(value, int) and beyond_float(value):
            return FieldIssue(where or "body", BEYOND_FLOAT)
        if isinstance(value, dict | list):
            if depth >= max_depth:
                return FieldIssue(where or "body", f"nested too deeply: at most {max_depth} levels of arrays/objects")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, _path(where, key), depth + 1) for key, item in reversed(list(items)))
    return None


async def require_json(request: Request) -> None:
    """A request body must be JSON (any other Content-Type, or none, is a 415, never a guess), nested at most
    MAX_JSON_DEPTH levels, without NaN/Infinity literals and lone surrogates (422 naming the field).

    FastAPI has parsed (and cached) the body before dependencies run, so a body that is not JSON at all was
    already refused; the walk only runs when a cheap scan of the bytes says it may find something.
    """
    body = await request.body()
    if not body:
        return  # no body at all: the route's own validation says what it needs
    if not _is_json(request.headers.get("content-type", "")):
        raise HTTPException(415, "the request body must be JSON: send it with Content-Type: application/json")
    may_be_deep = body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH
    surrogates = _MAYBE_SURROGATE.search(body) is not None
    if may_be_deep or surrogates or _MAYBE_NOT_FINITE.search(body):
        issue = json_issue(await request.json(), strings=surrogates)
        if issue is not None:
            raise ProfileError([issue])


async def trial_runner(request: Request) -> TrialRunner:
    """The app's trial dispatcher; 503 while the service is not started (its lifespan has not run)."""
    runner = getattr(request.app.state, "trials", None)
    if not isinstance(runner, TrialRunner) or not runner.alive():
        raise HTTPException(503, "trials are not available: the trial dispatcher is not running")
    return runner


ApiKeyDep = Annotated[None, Depends(require_api_key)]
#: ``dependencies=JSON_BODY`` on every route that reads a JSON body.
JSON_BODY = [Depends(require_json)]
RunnerDep = Annotated[TrialRunner, Depends(trial_runner)]
