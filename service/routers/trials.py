"""Trial runs: POST /trials, GET /trials, GET /trials/{id} (long-poll), GET /trials/{id}/events (SSE),
DELETE /trials/{id}, and GET /workloads.

Trials run in worker processes (service/trials/runner.py); nothing here imports torch. When
``OPTIREC_API_KEY`` is set, every /trials endpoint requires it; /workloads stays open.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

from optirec.optimizers.results import TrialOutput
from optirec.rules import Recommendation, Rulebook, recommend
from optirec.rules.catalog_check import catalog_issues
from optirec.rules.errors import FieldIssue, ProfileError, UnknownNameError

from ..deps import JSON_BODY, RulebookDep, RunnerDep, SettingsDep, app_settings, require_api_key
from ..handlers import MAX_ISSUES, error_response, error_responses, issues_message
from ..settings import Settings
from ..trials.devices import trial_devices
from ..trials.envelope import MemoryEstimate, estimate_trial_memory, resolve_workload
from ..trials.models import (
    FINISHED,
    VALIDATE_RUNS,
    WORKLOAD_CATALOG,
    TrialProgress,
    TrialRequest,
    TrialState,
    TrialStatus,
    WorkloadInfo,
    request_issues,
)
from ..trials.runner import QueueFullError, TrialFinishedError, TrialRunner
from ..trials.store import TrialRecord

__all__ = ["TrialRoute", "router", "to_status"]

#: Seconds between keep-alive comments on an idle event stream.
KEEPALIVE = 15.0
#: The longest ``?wait=`` of a long-poll.
MAX_WAIT = 30.0


class TrialRoute(APIRoute):
    """Request validation errors of trial routes name nested fields in full (``profile.architecture``), and a
    route that requires the API key checks it first, before its body is read: without the key a client learns
    nothing, not even that its JSON is malformed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guarded = any(d.dependency is require_api_key for d in self.dependencies)

        async def route(request: Request) -> Response:
            if guarded:
                await require_api_key(request, await app_settings(request))
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = exc.errors()
                issues = request_issues(errors[:MAX_ISSUES])
                return error_response(422, "invalid_input", issues_message(issues, len(errors)), issues)

        return route


router = APIRouter(tags=["trials"], route_class=TrialRoute)
_AUTH = [Depends(require_api_key)]
_UNAVAILABLE = "The trial dispatcher is not running"
#: Every /trials endpoint: a missing/wrong key, a stopped dispatcher.
_ALWAYS = error_responses(401, 503, e503=_UNAVAILABLE)
#: Endpoints of one trial, by id.
_ERRORS = {**_ALWAYS, **error_responses(404, e404="No trial with this id")}
#: Endpoints that write to the trial store.
_FULL = error_responses(
    507,
    e507="Insufficient Storage: the disk holding the trial store is full; nothing was queued or changed (retry after "
    "the Retry-After header's seconds; queued and running trials are kept and resume by themselves)",
)


#: validates a stored result once per read (the type adapter is built once)
_OUTPUT: TypeAdapter[Any] = TypeAdapter(TrialOutput)


def _typed_result(record: TrialRecord) -> tuple[Any, str | None]:
    """The stored result as this version's TrialOutput, or (None, why) for a row whose result does not fit it
    (written by another optirec version): the row itself is kept unchanged in the store."""
    if record.result is None:
        return None, record.error
    try:
        return _OUTPUT.validate_python(record.result), record.error
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        why = (
            f"the stored result does not fit this optirec's contract ({where}: {first['msg']}); it is kept in the store"
        )
        return None, f"{record.error}; {why}" if record.error else why


def to_status(record: TrialRecord) -> TrialStatus:
    """A store row as the API's TrialStatus."""
    result, error = _typed_result(record)
    return TrialStatus(
        id=record.id,
        status=record.status,
        progress=TrialProgress(steps_done=record.steps_done, steps_total=record.steps_total, loss=record.loss),
        request=record.request,
        result=result,
        error=error,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        worker_pid=record.worker_pid if record.status == "running" else None,
    )


def _get(runner: TrialRunner, trial_id: str) -> TrialRecord:
    record = runner.store.get(trial_id)
    if record is None:
        raise HTTPException(404, f"no trial with id {trial_id[:64]!r}")
    return record


def _limit_issues(body: TrialRequest, settings: Settings) -> list[FieldIssue]:
    issues = []
    if body.steps > settings.trial_max_steps:
        issues.append(
            FieldIssue("steps", f"must be at most {settings.trial_max_steps} (the server's limit), got {body.steps}")
        )
    if body.size > settings.trial_max_size:
        issues.append(
            FieldIssue("size", f"must be at most {settings.trial_max_size} (the server's limit), got {body.size}")
        )
    return issues


async def _device_issues(body: TrialRequest, runner: TrialRunner) -> list[FieldIssue]:
    """``cuda`` where the trials cannot get a CUDA device (this server's workers, or the Ray cluster), refused now
    rather than failed (or left waiting) later."""
    if body.device != "cuda":
        return []
    cuda, where = await runner.backend.cuda_devices()
    if cuda != 0:
        return []
    return [FieldIssue("device", where, value=body.device, valid=trial_devices(cuda))]


def _state_multiplier(book: Rulebook, rec: Recommendation, race: int, search: bool) -> float:
    """The most optimizer-state values per parameter any candidate of the trial keeps (the rulebook's)."""
    names = [rec.optimizer.name] + [g.optimizer for g in rec.param_groups if g.optimizer]
    if race > 1 or search:
        names += [alt.name for alt in (rec.alternatives if search else rec.alternatives[: race - 1])]
    values = []
    for name in names:
        try:
            values.append(book.state_multiplier(book.optimizer(name).name))
        except (UnknownNameError, KeyError):
            continue  # an unknown name is reported by _catalog_issues
    return max(values, default=2.0)


def _memory_estimate(body: TrialRequest, rec: Recommendation, book: Rulebook, size: int) -> MemoryEstimate:
    workload = resolve_workload(body.workload, rec.profile)
    traits = [t for t in rec.profile.get("data") or () if isinstance(t, str)]
    return estimate_trial_memory(
        workload,
        size,
        traits=traits,
        state_multiplier=_state_multiplier(book, rec, body.race, body.search),
        validate=body.search,
        steps=body.steps,
    )


def _memory_issues(
    body: TrialRequest, rec: Recommendation, book: Rulebook, limit_mb: int, max_size: int
) -> list[FieldIssue]:
    """A trial whose estimated peak memory is over the per-worker limit, refused before it starts."""
    if not limit_mb:
        return []
    estimate = _memory_estimate(body, rec, book, body.size)
    if estimate.total_mb <= limit_mb:
        return []
    smaller = range(1, min(body.size, max_size + 1))
    fits = [s for s in smaller if _memory_estimate(body, rec, book, s).total_mb <= limit_mb]
    hint = f"size {fits[-1]} fits" if fits else "no size of this workload fits"
    return [
        FieldIssue(
            "size",
            f"the trial would need {estimate.describe()}; that is over the server's limit of {limit_mb:,} MiB per "
            f"trial worker (trial_max_memory_mb): {hint}",
            value=body.size,
        )
    ]


def _request_json(body: TrialRequest) -> dict[str, Any]:
    out = body.model_dump(mode="json", exclude={"profile", "recommendation"})
    if body.profile is not None:
        return {"profile": body.profile.model_dump(mode="json", exclude_defaults=True), **out}
    assert body.recommendation is not None
    return {"recommendation": body.recommendation.model_dump(mode="json"), **out}


@router.post(
    "/trials",
    status_code=202,
    response_model=TrialStatus,
    dependencies=[*_AUTH, *JSON_BODY],
    summary="Queue a trial run of a recommendation on a proxy workload",
    responses={
        **_ALWAYS,
        **error_responses(413, 415, 422, 429, e429="The queue is full; retry after the Retry-After header's seconds"),
        **_FULL,
    },
)
async def submit_trial(
    body: TrialRequest, response: Response, runner: RunnerDep, settings: SettingsDep, book: RulebookDep
) -> TrialStatus:
    """Give a ``profile`` (the service recommends) or a ``recommendation``; 202 with the trial and its Location."""
    issues = _limit_issues(body, settings) + await _device_issues(body, runner)
    rec = body.recommendation if body.recommendation is not None else recommend(body.profile, rulebook=book)
    issues += catalog_issues(book, rec)
    if not issues:
        issues = _memory_issues(body, rec, book, runner.memory_limit_mb, settings.trial_max_size)
    if issues:
        raise ProfileError(issues)
    candidates = 1 + min(max(0, body.race - 1), len(rec.alternatives)) if body.race > 0 else 1
    if body.search:
        candidates = VALIDATE_RUNS  # the search's budget, in runs of `steps`
    job = {
        "recommendation": rec.model_dump(mode="json"),
        "workload": body.workload,
        "steps": body.steps,
        "device": body.device,
        "seed": body.seed,
        "size": body.size,
        "race": body.race,
        "validate": body.search,
        "budget": {
            "max_steps": settings.trial_max_steps,
            "max_seconds": settings.trial_max_seconds,
            "max_parameters": settings.trial_max_parameters,
        },
    }
    try:
        record = runner.submit(_request_json(body), job, body.steps * candidates)
    except QueueFullError as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    response.headers["Location"] = f"/trials/{record.id}"
    return to_status(record)


@router.get(
    "/trials",
    response_model=list[TrialStatus],
    dependencies=_AUTH,
    summary="Recent trials, newest first",
    responses={**_ALWAYS, **error_responses(422)},
)
async def list_trials(
    runner: RunnerDep,
    limit: Annotated[int, Query(ge=1, le=500, description="How many trials at most.")] = 50,
    status: Annotated[TrialState | None, Query(description="Only trials in this status.")] = None,
) -> list[TrialStatus]:
    return [to_status(r) for r in runner.store.list(limit, status)]


@router.get(
    "/trials/{trial_id}",
    response_model=TrialStatus,
    dependencies=_AUTH,
    summary="A trial's status, progress and result (long-poll with ?wait=)",
    responses={**_ERRORS, **error_responses(422)},
)
async def get_trial(
    trial_id: str,
    runner: RunnerDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for a change of status or progress (long-poll).")
    ] = 0,
) -> TrialStatus:
    record = _get(runner, trial_id)
    if wait > 0 and record.status not in FINISHED:
        await runner.wait_change(trial_id, wait)
        record = _get(runner, trial_id)
    return to_status(record)


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


@router.get(
    "/trials/{trial_id}/events",
    dependencies=_AUTH,
    summary="Server-sent events: 'progress' per update, then 'done' with the final TrialStatus",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        **_ERRORS,
        **error_responses(422),
    },
)
async def trial_events(trial_id: str, runner: RunnerDep) -> StreamingResponse:
    _get(runner, trial_id)

    async def stream() -> AsyncIterator[str]:
        last: tuple[str, int] | None = None
        while True:
            future = runner.watch(trial_id)
            record = runner.store.get(trial_id)
            if record is None:
                return
            if record.status in FINISHED:
                yield _event("done", to_status(record).model_dump_json())
                return
            if (record.status, record.steps_done) != last:
                last = (record.status, record.steps_done)
                progress = {
                    "id": record.id,
                    "status": record.status,
                    "steps_done": record.steps_done,
                    "steps_total": record.steps_total,
                    "loss": record.loss,
                }
                yield _event("progress", json.dumps(progress))
            if not await runner.wait(trial_id, future, KEEPALIVE):
                yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.delete(
    "/trials/{trial_id}",
    response_model=TrialStatus,
    dependencies=_AUTH,
    summary="Cancel a queued or running trial",
    responses={**_ERRORS, **error_responses(409, 422, e409="The trial has already finished"), **_FULL},
)
async def cancel_trial(trial_id: str, runner: RunnerDep) -> TrialStatus:
    try:
        record = runner.cancel(trial_id)
    except TrialFinishedError as exc:
        raise HTTPException(409, str(exc)) from None
    if record is None:
        raise HTTPException(404, f"no trial with id {trial_id[:64]!r}")
    return to_status(record)


@router.get("/workloads", response_model=list[WorkloadInfo], summary="The proxy workloads a trial can run on")
async def list_workloads() -> list[WorkloadInfo]:
    return [WorkloadInfo(name=name, description=text) for name, text in sorted(WORKLOAD_CATALOG.items())]
