"""Prometheus metrics of one app: a private CollectorRegistry (so tests can build many apps) and a pure-ASGI
middleware that counts requests and times them per route template (``/trials/{id}``, never the raw path).

    optirec_http_requests_total{method,route,status}
    optirec_http_request_duration_seconds{method,route}      histogram
    optirec_trials_queued, optirec_trials_running           gauges, read from the store at scrape time
    optirec_trials_finished_total{status}                   trials this process saw finish, by final status
    optirec_recommend_cache_hits_total, _misses_total       the /recommend answer cache (service/answers.py)
    optirec_recommend_cache_entries                         answers it holds now
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE", "Metrics", "MetricsMiddleware"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The route label of requests no route matched (keeps the label set bounded).
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The app's collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "optirec_http_requests",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "optirec_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ("method", "route"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.trials_queued = Gauge("optirec_trials_queued", "Trials waiting in the queue.", registry=self.registry)
        self.trials_running = Gauge("optirec_trials_running", "Trials running now.", registry=self.registry)
        self.trials_finished = Counter(
            "optirec_trials_finished",
            "Trials that finished in this process, by final status.",
            ("status",),
            registry=self.registry,
        )
        self._counts: Callable[[], tuple[int, int]] | None = None
        self._answers: Callable[[], tuple[int, int, int, int]] | None = None
        self.registry.register(_AnswerCacheCollector(self))

    def watch_answers(self, stats: Callable[[], tuple[int, int, int, int]] | None) -> None:
        """Read the answer cache's (hits, misses, size, capacity) from ``stats`` at each scrape."""
        self._answers = stats

    def watch_trials(self, counts: Callable[[], tuple[int, int]] | None) -> None:
        """Read (queued, running) from ``counts`` at each scrape (None: report zeros)."""
        self._counts = counts

    def trial_finished(self, status: str) -> None:
        self.trials_finished.labels(status=status).inc()

    def render(self) -> bytes:
        """The exposition text."""
        queued, running = self._counts() if self._counts is not None else (0, 0)
        self.trials_queued.set(queued)
        self.trials_running.set(running)
        return generate_latest(self.registry)


class _AnswerCacheCollector(Collector):
    """The /recommend answer cache's counters, read when scraped (the cache keeps plain ints)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.metrics._answers() if self.metrics._answers is not None else (0, 0, 0, 0)
        hits, misses, size, _ = stats
        yield CounterMetricFamily("optirec_recommend_cache_hits", "/recommend answers served from the cache.", hits)
        yield CounterMetricFamily("optirec_recommend_cache_misses", "/recommend answers the rules computed.", misses)
        yield GaugeMetricFamily("optirec_recommend_cache_entries", "Answers the /recommend cache holds.", size)


class MetricsMiddleware:
    """Counts and times every HTTP request; pure ASGI, a few microseconds per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
