"""An httpx client for a running optirec service, sync and async, with typed results and errors.

    from optirec.service.client import OptirecClient
    rec = OptirecClient("http://127.0.0.1:8000").recommend({"architecture": "resnet"})
    hf = OptirecClient(url).recommend({"architecture": "bert"}, format="hf")  # an Export: .export, .notes

    with OptirecClient(url, api_key=key) as client:
        trial = client.submit_trial(profile={"architecture": "resnet"}, workload="cnn", steps=100)
        done = client.wait_trial(trial.id, timeout=600, on_progress=lambda t: print(t.progress))
        done.status, done.result.final_loss  # a TrialResult (RaceOutcome / ValidationOutcome for races, searches)

A 422 raises ProfileError and a 404 for a name UnknownNameError, with the service's field issues; a 404
for an id NotFound, 401 Unauthorized, 409 Conflict, 429 QueueFull (with ``retry_after``); an
unreachable service raises ServiceUnavailable (see service/errors.py for the tree).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import httpx

from optirec.optimizers.exporters.formats import FORMATS
from optirec.rules import Profile, Recommendation
from optirec.rules.errors import FieldIssue, ProfileError, UnknownNameError

from .answers import Export
from .errors import Conflict, NotFound, QueueFull, ServiceError, ServiceUnavailable, TrialTimeout, Unauthorized
from .trials.models import TrialRequest, TrialStatus, WorkloadInfo

__all__ = ["AsyncOptirecClient", "OptirecClient", "trial_body"]

DEFAULT_TIMEOUT = 10.0
_Framework = Literal["hf", "lightning", "timm", "torch", "optuna"]


def _recommend_request(format: str, profile: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The POST /recommend arguments; an unknown format is refused here, before any request."""
    if format not in FORMATS:
        raise ProfileError(
            [FieldIssue(field="format", message=f"unknown format {format!r}; valid values: {', '.join(FORMATS)}")]
        )
    return {"json": {**(profile or {}), **fields}, "params": {} if format == "json" else {"format": format}}


def _recommend_result(format: str, data: Any) -> Recommendation | Export:
    return Recommendation.model_validate(data) if format == "json" else Export.model_validate(data)


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    message = str(error.get("message") or response.reason_phrase)
    issues = [
        FieldIssue(
            field=str(i.get("field", "")),
            message=str(i.get("message", "")),
            value=i.get("value"),
            valid=i.get("valid"),
            suggestion=i.get("suggestion"),
        )
        for i in error.get("issues", [])
        if isinstance(i, dict)
    ]
    if response.status_code == 422 and issues:
        raise ProfileError(issues)
    if response.status_code == 404 and issues:
        issue = issues[0]
        raise UnknownNameError(issue.field, str(issue.value), list(issue.valid or []))
    if response.status_code == 401:
        raise Unauthorized(401, message)
    if response.status_code == 404:
        raise NotFound(404, message)
    if response.status_code == 409:
        raise Conflict(409, message)
    if response.status_code == 429:
        retry = response.headers.get("retry-after", "")
        raise QueueFull(429, message, float(retry) if retry.replace(".", "", 1).isdigit() else None)
    raise ServiceError(response.status_code, message)


#: Longest single long-poll of wait_trial (the service caps ``?wait=`` at 30 s).
LONG_POLL = 30.0
ProgressCallback = Callable[[TrialStatus], None]


def trial_body(
    request: TrialRequest | Mapping[str, Any] | None = None,
    *,
    profile: Profile | Mapping[str, Any] | None = None,
    recommendation: Recommendation | Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The JSON body of POST /trials. Not validated here: the service answers bad input with a 422."""
    if isinstance(request, TrialRequest):
        body: dict[str, Any] = request.model_dump(mode="json", exclude_none=True)
        if request.profile is not None:
            body["profile"] = request.profile.model_dump(mode="json", exclude_defaults=True)
        if request.recommendation is not None:
            body["recommendation"] = request.recommendation.model_dump(mode="json")
    else:
        body = dict(request or {})
    if profile is not None:
        body["profile"] = (
            profile.model_dump(mode="json", exclude_defaults=True) if isinstance(profile, Profile) else dict(profile)
        )
    if recommendation is not None:
        body["recommendation"] = (
            recommendation.model_dump(mode="json")
            if isinstance(recommendation, Recommendation)
            else dict(recommendation)
        )
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def _headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}


class OptirecClient:
    """Synchronous client."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=_headers(api_key))

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(self.base_url, str(exc) or type(exc).__name__) from None
        _raise_for(response)
        return response.json()

    @overload
    def recommend(
        self, profile: Mapping[str, Any] | None = None, *, format: Literal["json"] = "json", **fields: Any
    ) -> Recommendation: ...
    @overload
    def recommend(self, profile: Mapping[str, Any] | None = None, *, format: _Framework, **fields: Any) -> Export: ...
    def recommend(
        self, profile: Mapping[str, Any] | None = None, *, format: str = "json", **fields: Any
    ) -> Recommendation | Export:
        """The Recommendation; with ``format`` one of hf, lightning, timm, torch, optuna, the service's Export of it
        (``.export``, ``.notes``, ``.recommendation``)."""
        data = self._request("POST", "/recommend", **_recommend_request(format, profile, fields))
        return _recommend_result(format, data)

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result

    def submit_trial(
        self,
        request: TrialRequest | Mapping[str, Any] | None = None,
        *,
        profile: Profile | Mapping[str, Any] | None = None,
        recommendation: Recommendation | Mapping[str, Any] | None = None,
        workload: str | None = None,
        steps: int | None = None,
        device: str | None = None,
        seed: int | None = None,
        size: int | None = None,
        race: int | None = None,
        validate: bool | None = None,
    ) -> TrialStatus:
        """Queue a trial (POST /trials); omitted options take the service's defaults."""
        body = trial_body(
            request,
            profile=profile,
            recommendation=recommendation,
            workload=workload,
            steps=steps,
            device=device,
            seed=seed,
            size=size,
            race=race,
            validate=validate,
        )
        return TrialStatus.model_validate(self._request("POST", "/trials", json=body))

    def trial(self, trial_id: str, *, wait: float = 0) -> TrialStatus:
        """GET /trials/{id}; ``wait`` > 0 long-polls up to that many seconds for a change."""
        extra: dict[str, Any] = {}
        if wait > 0:  # the read timeout must outlast the long-poll
            extra = {"params": {"wait": wait}, "timeout": (self._client.timeout.read or 0.0) + wait}
        data = self._request("GET", f"/trials/{trial_id}", **extra)
        return TrialStatus.model_validate(data)

    def trials(self, limit: int = 50) -> list[TrialStatus]:
        """Recent trials, newest first."""
        return [TrialStatus.model_validate(t) for t in self._request("GET", "/trials", params={"limit": limit})]

    def wait_trial(
        self,
        trial_id: str,
        timeout: float | None = None,
        poll: float = LONG_POLL,
        on_progress: ProgressCallback | None = None,
    ) -> TrialStatus:
        """Long-poll until the trial finishes; raises TrialTimeout after ``timeout`` s (None: no limit).

        ``poll`` is the longest single long-poll; ``on_progress`` gets every status seen, the final one included.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        status = self.trial(trial_id)
        while True:
            if on_progress is not None:
                on_progress(status)
            if status.finished:
                return status
            left = LONG_POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TrialTimeout(trial_id, timeout or 0.0, status.status)
            status = self.trial(trial_id, wait=max(0.01, min(poll, left, LONG_POLL)))

    def cancel_trial(self, trial_id: str) -> TrialStatus:
        """DELETE /trials/{id}: cancel a queued or running trial (Conflict when it has finished)."""
        return TrialStatus.model_validate(self._request("DELETE", f"/trials/{trial_id}"))

    def list_workloads(self) -> list[WorkloadInfo]:
        """The proxy workloads (GET /workloads)."""
        return [WorkloadInfo.model_validate(w) for w in self._request("GET", "/workloads")]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OptirecClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOptirecClient:
    """Asynchronous client (same methods, awaited)."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, headers=_headers(api_key))

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(self.base_url, str(exc) or type(exc).__name__) from None
        _raise_for(response)
        return response.json()

    @overload
    async def recommend(
        self, profile: Mapping[str, Any] | None = None, *, format: Literal["json"] = "json", **fields: Any
    ) -> Recommendation: ...
    @overload
    async def recommend(
        self, profile: Mapping[str, Any] | None = None, *, format: _Framework, **fields: Any
    ) -> Export: ...
    async def recommend(
        self, profile: Mapping[str, Any] | None = None, *, format: str = "json", **fields: Any
    ) -> Recommendation | Export:
        """As :meth:`OptirecClient.recommend`."""
        data = await self._request("POST", "/recommend", **_recommend_request(format, profile, fields))
        return _recommend_result(format, data)

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/healthz")
        return result

    async def submit_trial(
        self,
        request: TrialRequest | Mapping[str, Any] | None = None,
        *,
        profile: Profile | Mapping[str, Any] | None = None,
        recommendation: Recommendation | Mapping[str, Any] | None = None,
        workload: str | None = None,
        steps: int | None = None,
        device: str | None = None,
        seed: int | None = None,
        size: int | None = None,
        race: int | None = None,
        validate: bool | None = None,
    ) -> TrialStatus:
        """Queue a trial (POST /trials); omitted options take the service's defaults."""
        body = trial_body(
            request,
            profile=profile,
            recommendation=recommendation,
            workload=workload,
            steps=steps,
            device=device,
            seed=seed,
            size=size,
            race=race,
            validate=validate,
        )
        return TrialStatus.model_validate(await self._request("POST", "/trials", json=body))

    async def trial(self, trial_id: str, *, wait: float = 0) -> TrialStatus:
        """GET /trials/{id}; ``wait`` > 0 long-polls up to that many seconds for a change."""
        extra: dict[str, Any] = {}
        if wait > 0:  # the read timeout must outlast the long-poll
            extra = {"params": {"wait": wait}, "timeout": (self._client.timeout.read or 0.0) + wait}
        data = await self._request("GET", f"/trials/{trial_id}", **extra)
        return TrialStatus.model_validate(data)

    async def trials(self, limit: int = 50) -> list[TrialStatus]:
        """Recent trials, newest first."""
        data = await self._request("GET", "/trials", params={"limit": limit})
        return [TrialStatus.model_validate(t) for t in data]

    async def wait_trial(
        self,
        trial_id: str,
        timeout: float | None = None,
        poll: float = LONG_POLL,
        on_progress: ProgressCallback | None = None,
    ) -> TrialStatus:
        """Long-poll until the trial finishes; raises TrialTimeout after ``timeout`` s (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        status = await self.trial(trial_id)
        while True:
            if on_progress is not None:
                on_progress(status)
            if status.finished:
                return status
            left = LONG_POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TrialTimeout(trial_id, timeout or 0.0, status.status)
            status = await self.trial(trial_id, wait=max(0.01, min(poll, left, LONG_POLL)))

    async def cancel_trial(self, trial_id: str) -> TrialStatus:
        """DELETE /trials/{id}: cancel a queued or running trial (Conflict when it has finished)."""
        return TrialStatus.model_validate(await self._request("DELETE", f"/trials/{trial_id}"))

    async def list_workloads(self) -> list[WorkloadInfo]:
        """The proxy workloads (GET /workloads)."""
        return [WorkloadInfo.model_validate(w) for w in await self._request("GET", "/workloads")]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncOptirecClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
