"""HTTP error responses: the only place domain exceptions become status codes.

Every error body has one shape::

    {"error": {"status": 422, "code": "invalid_input", "message": "...", "issues": [...]}}

``issues`` name the field, the bad value, the valid values and a close match when there is one.
No stack trace ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from optirec.rules.errors import FieldIssue, ProfileError, UnknownNameError
from optirec.rules.profile import issues_from_errors

__all__ = ["error_response", "install_error_handlers"]

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
}


def error_response(
    status: int, code: str, message: str, issues: list[FieldIssue] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if issues:
        body["issues"] = [i.as_dict() for i in issues]
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _request_issues(exc: RequestValidationError) -> list[FieldIssue]:
    errors = []
    issues: list[FieldIssue] = []
    for err in exc.errors():
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = _request_issues(exc)
        return error_response(422, "invalid_input", "; ".join(i.sentence() for i in issues), issues)

    @app.exception_handler(ProfileError)
    async def _profile(request: Request, exc: ProfileError) -> JSONResponse:
        return error_response(422, "invalid_input", str(exc), exc.issues)

    @app.exception_handler(UnknownNameError)
    async def _unknown(request: Request, exc: UnknownNameError) -> JSONResponse:
        return error_response(404, "not_found", exc.issue.sentence(), [exc.issue])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; the server logged the details")
