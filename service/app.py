"""The FastAPI application: ``create_app()`` wires settings, routers and error handlers."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import optirec
from optirec.rules import default_rulebook

from .answers import AnswerCache, AnswerCacheMiddleware
from .handlers import error_response, install_error_handlers
from .metrics import Metrics, MetricsMiddleware
from .middleware import HeadAsGet, RelativeRedirects
from .routers import catalog, health, recommend, web
from .routers import diagnose as diagnose_routes
from .routers import metrics as metrics_routes
from .routers import trials as trial_routes
from .settings import Settings, get_settings
from .trials.runner import TrialRunner
from .trials.store import StoreFullError, TrialStore

__all__ = ["BodyLimit", "SecurityHeaders", "create_app"]

log = logging.getLogger("optirec.service")


class SecurityHeaders:
    """Add ``headers`` to every HTTP response that does not set them itself: the web form's policy
    (service/routers/web.py SECURITY_HEADERS) then also covers JSON answers, error pages and 413s.
    ``skip`` are path prefixes left alone (the /docs page starts Swagger UI with an inline script).
    """

    def __init__(self, app: ASGIApp, headers: dict[str, str], skip: tuple[str, ...] = ()) -> None:
        self.app = app
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or any(path == p or path.startswith(p + "/") for p in self.skip):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "status": 413,
                    "code": "body_too_large",
                    "message": f"request body is larger than {self.max_bytes} bytes",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised while the body streams in. An HTTPException, so that FastAPI's body parsing passes it on to the
    error handlers (a 413) instead of turning it into "There was an error parsing the body"."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


def _lifespan(settings: Settings, metrics: Metrics) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open the trial store and start the dispatcher; a bad store path fails start-up with StoreError."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = TrialStore(settings.trial_store)
        runner = TrialRunner(store, settings, on_finish=metrics.trial_finished)
        try:
            await runner.start()
            app.state.trials = runner
            metrics.watch_trials(lambda: (store.count("queued"), store.count("running")))
            yield
        finally:
            metrics.watch_trials(None)
            app.state.trials = None
            await runner.stop()
            store.close()

    return lifespan


#: Retry-After seconds of a 507 (the dispatcher itself retries its writes every second).
STORE_FULL_RETRY_AFTER = 30
#: The API documentation page (fastapi-offline's default: Swagger UI, with /docs/oauth2-redirect under it)
DOCS_PAGES = ("/docs",)


async def _store_full(request: Request, exc: Exception) -> Response:
    """A write the trial store refused for a full disk: 507 Insufficient Storage (RFC 4918 §11.5), nothing changed.

    The store's path goes to the log, not to the client.
    """
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(
        507,
        "insufficient_storage",
        "the disk holding the trial store is full, so nothing was queued or changed; retry once space is freed "
        "(trials already queued or running are kept and resume by themselves)",
        headers={"Retry-After": str(STORE_FULL_RETRY_AFTER)},
    )


def _state_server_limits(app: FastAPI, settings: Settings) -> None:
    """The schema states this server's trial limits (steps, size), so a client generated from it sends what
    this server accepts; FastAPI builds the schema once and keeps it (app.openapi_schema)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            props = schema["components"]["schemas"]["TrialRequest"]["properties"]
            props["steps"]["maximum"] = settings.trial_max_steps
            props["size"]["maximum"] = settings.trial_max_size
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service. Loads (and so validates) the knowledge base before serving anything."""
    settings = settings or get_settings()
    book = default_rulebook()  # a malformed rule file fails here, at start-up
    metrics = Metrics()
    # FastAPI's own /docs and /redoc load Swagger UI and ReDoc from a CDN (fastapi/openapi/docs.py), a blank page
    # offline; fastapi-offline serves the same /docs with the assets from its package (/static-offline-docs).
    # ReDoc is off: its bundle still fetches a logo from cdn.redoc.ly (fastapi_offline/static/redoc.standalone.js)
    app = FastAPIOffline(
        redoc_url=None,
        title="optirec",
        version=optirec.__version__,
        description="Optimizer recommendations for deep-learning training jobs, each reason citing its seed row.",
        lifespan=_lifespan(settings, metrics),
    )
    app.state.settings = settings
    _state_server_limits(app, settings)
    app.state.metrics = metrics
    app.state.answers = AnswerCache(settings.recommend_cache_size, book, settings.recommend_cache_bytes)
    metrics.watch_answers(app.state.answers.stats)
    app.state.trials = None
    install_error_handlers(app)
    app.add_exception_handler(StoreFullError, _store_full)
    app.include_router(recommend.router)
    app.include_router(diagnose_routes.router)
    app.include_router(catalog.router)
    app.include_router(health.router)
    app.include_router(trial_routes.router)
    app.include_router(metrics_routes.router)
    web.install(app)  # GET / (the web form), /static, GET /profile/fields
    app.add_middleware(HeadAsGet)  # innermost: HEAD is routed as GET; the metrics and logs still say HEAD
    app.add_middleware(RelativeRedirects)  # the slash redirects' Location: a path, never the client's Host
    # a repeated POST /recommend is answered after the body limit, CORS and metrics
    app.add_middleware(AnswerCacheMiddleware, cache=app.state.answers)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # counts every answer, 413s included
    # the docs pages start Swagger UI / ReDoc with an inline script, which the form's CSP forbids
    app.add_middleware(SecurityHeaders, headers=web.SECURITY_HEADERS, skip=DOCS_PAGES)  # outermost
    return app
