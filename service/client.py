"""An httpx client for a running optirec service, sync and async, with typed results and errors.

    from optirec.service.client import OptirecClient
    rec = OptirecClient("http://127.0.0.1:8000").recommend({"architecture": "resnet"})

A 422 raises ProfileError and a 404 UnknownNameError, with the service's field issues; an
unreachable service raises ServiceUnavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from optirec.rules import Recommendation
from optirec.rules.errors import FieldIssue, ProfileError, UnknownNameError

from .errors import ServiceError, ServiceUnavailable

__all__ = ["AsyncOptirecClient", "OptirecClient"]

DEFAULT_TIMEOUT = 10.0


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
    raise ServiceError(response.status_code, message)


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

    def recommend(self, profile: Mapping[str, Any] | None = None, **fields: Any) -> Recommendation:
        return Recommendation.model_validate(self._request("POST", "/recommend", json={**(profile or {}), **fields}))

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result

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

    async def recommend(self, profile: Mapping[str, Any] | None = None, **fields: Any) -> Recommendation:
        data = await self._request("POST", "/recommend", json={**(profile or {}), **fields})
        return Recommendation.model_validate(data)

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/healthz")
        return result

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncOptirecClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
