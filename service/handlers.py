"""HTTP error responses: the only place domain exceptions become status codes.

Every error body has one shape::

    {"error": {"status": 422, "code": "invalid_input", "message": "...", "issues": [...]}}

``issues`` name the field, the bad value, the valid values and a close match when there is one.
No stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from optirec.rules.errors import FieldIssue, ProfileError, UnknownNameError
from optirec.rules.profile import issues_from_errors

from .deps import MAX_JSON_DEPTH

__all__ = [
    "MAX_ISSUES",
    "ErrorBody",
    "ErrorDetail",
    "ErrorIssue",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "issues_message",
]

log = logging.getLogger("optirec.service")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media",
    429: "too_many_requests",
    503: "unavailable",
    507: "insufficient_storage",
}


#: What each documented error status means (the ``description`` of ``error_responses``).
_DESCRIPTIONS = {
    401: "OPTIREC_API_KEY is set and the request lacks the key or has a wrong one",
    404: "Not found",
    409: "Conflict with the resource's state",
    413: "The request body is larger than OPTIREC_MAX_BODY_BYTES",
    415: "The request body is not JSON (send Content-Type: application/json)",
    422: "Invalid input: ``issues`` name each field, the bad value and the valid values",
    429: "Too many requests; retry after the Retry-After header's seconds",
    503: "Unavailable",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer challenge", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}},
    507: {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}},
}


class ErrorIssue(BaseModel):
    """One problem with one field of the request."""

    field: str = Field(description="Dotted path of the field (``body`` for the body as a whole).")
    message: str
    value: Any = Field(default=None, description="The offending value (short scalars only).")
    valid: list[Any] | None = Field(default=None, description="The valid values or field names.")
    suggestion: str | None = Field(default=None, description="The closest valid value.")


class ErrorDetail(BaseModel):
    status: int = Field(description="The HTTP status code again.")
    code: str = Field(description="A stable, machine-readable code: invalid_input, not_found, unauthorized, ...")
    message: str = Field(description="One human-readable sentence; never a stack trace.")
    issues: list[ErrorIssue] | None = Field(default=None, description="Per-field problems (422).")


class ErrorBody(BaseModel):
    """Every error the service answers with, whatever the status."""

    error: ErrorDetail


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting ``statuses`` with the error body (``descriptions`` by ``e404=``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": descriptions.get(f"e{status}", _DESCRIPTIONS.get(status, "Error")),
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


#: The longest string an error body echoes back (a field's bad value, a field path).
MAX_ECHO = 200
#: The most issues one error body lists: 60 000 unknown keys must not become a 15 MB answer.
MAX_ISSUES = 20


#: The most issues the message spells out as sentences (``issues`` has up to MAX_ISSUES).
_MESSAGE_ISSUES = 5


def issues_message(issues: list[FieldIssue], total: int | None = None) -> str:
    """The error message: the first issues as sentences, and how many more there were."""
    total = len(issues) if total is None else total
    text = "; ".join(i.sentence() for i in issues[:_MESSAGE_ISSUES])
    if total > _MESSAGE_ISSUES:
        text += f"; and {total - _MESSAGE_ISSUES} more problem(s)"
    return text


def _text(text: str, limit: int) -> str:
    """At most ``limit`` characters of valid Unicode (a lone surrogate would make the body unencodable)."""
    text = text if len(text) <= limit else text[:limit] + "…"
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _echo(value: Any) -> Any:
    """What an error body may echo: short strings, finite numbers, booleans; nothing else (no NaN, no documents)."""
    if isinstance(value, str):
        return _text(value, MAX_ECHO)
    if isinstance(value, bool | int):
        return value if isinstance(value, bool) or abs(value) < 10**30 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _issue(issue: FieldIssue) -> dict[str, Any]:
    out = issue.as_dict()
    out["field"] = _text(str(out["field"]), MAX_ECHO)
    out["message"] = _text(str(out["message"]), 4 * MAX_ECHO)
    if "suggestion" in out:
        out["suggestion"] = _text(str(out["suggestion"]), MAX_ECHO)
    if "value" in out:
        out["value"] = _echo(out["value"])
        if out["value"] is None:
            del out["value"]
    if "valid" in out:
        out["valid"] = [v for v in (_echo(v) for v in out["valid"]) if v is not None]
    return out


def error_response(
    status: int, code: str, message: str, issues: list[FieldIssue] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error shape. Echoed values are bounded and JSON-safe, so building the body itself cannot fail."""
    message = _text(message, 20 * MAX_ECHO)
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if issues:
        body["issues"] = [_issue(i) for i in issues[:MAX_ISSUES]]
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _request_issues(raw: Sequence[Any]) -> list[FieldIssue]:
    errors = []
    issues: list[FieldIssue] = []
    for err in raw:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "malformed JSON")
            issues.append(FieldIssue(field="body", message=f"not valid JSON ({reason})"))
            continue
        if err.get("type") == "missing" and not loc:
            issues.append(FieldIssue(field="body", message="a JSON object is required"))
            continue
        errors.append({**err, "loc": tuple(loc)})
    return issues + issues_from_errors(errors)


def _parse_failure(cause: BaseException | None) -> FieldIssue:
    """Why a body that claimed to be JSON could not be read (FastAPI only says "error parsing the body")."""
    if isinstance(cause, UnicodeDecodeError):
        reason = f"not UTF-8 text: byte {cause.object[cause.start : cause.start + 1]!r} at position {cause.start}"
    elif isinstance(cause, RecursionError):
        reason = f"nested too deeply: at most {MAX_JSON_DEPTH} levels of arrays/objects"
    elif isinstance(cause, ValueError) and "digits" in str(cause):
        reason = "a number has too many digits"
    else:
        reason = "the body could not be decoded"
    return FieldIssue(field="body", message=f"not valid JSON ({reason})")


def _routes(app: FastAPI) -> Iterable[Any]:
    """The app's routes, those of included routers too."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - FastAPI before included routers were kept as such: a flat list
        return list(app.router.routes)
    return iter_route_contexts(app.router.routes)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette's 405 names only the first route's)."""
    methods: set[str] = set()
    for route in _routes(request.app):
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= set(route_methods)
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        issues = _request_issues(errors[:MAX_ISSUES])
        return error_response(422, "invalid_input", issues_message(issues, len(errors)), issues)

    @app.exception_handler(ProfileError)
    async def _profile(request: Request, exc: ProfileError) -> JSONResponse:
        return error_response(422, "invalid_input", issues_message(exc.issues), exc.issues)

    @app.exception_handler(UnknownNameError)
    async def _unknown(request: Request, exc: UnknownNameError) -> JSONResponse:
        return error_response(404, "not_found", exc.issue.sentence(), [exc.issue])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "There was an error parsing the body": invalid UTF-8, JSON nested deeper than the parser goes
            issue = _parse_failure(exc.__cause__)
            return error_response(422, "invalid_input", issue.sentence(), [issue])
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        code = _CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; the server logged the details")
