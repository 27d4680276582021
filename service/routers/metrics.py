"""GET /metrics: Prometheus exposition text of this app's own registry (see service/metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics: requests and latency per route, trials queued/running/finished",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    collectors = getattr(request.app.state, "metrics", None)
    if not isinstance(collectors, Metrics):  # an app built without create_app's wiring
        collectors = Metrics()
    return Response(collectors.render(), media_type=CONTENT_TYPE)
