"""HTTP request metrics: ``usm_http_*`` per method, route template and status, kept cheap.

The series are those of litestar's Prometheus middleware (same names, labels and buckets; the
dashboards and alert rules query them), recorded by a plain ASGI middleware instead. Litestar's
builds a ``Request``, two label dicts and four ``labels()`` look-ups per request; in
multiprocess mode (``usm serve``) that was the largest single cost of ``POST /v1/priority``
around scoring (bench/http.py, cProfile). Here each label set's children are looked up once and
kept, and a request adds to in-process tallies (:mod:`service.metrics.tally`) that reach the
multiprocess files in bulk, instead of five memory-mapped writes.
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from service.metrics.tally import CounterTally, GaugeTally, HistogramTally

__all__ = ["APP_NAME", "BUCKETS", "PREFIX", "HttpMetricsMiddleware"]

PREFIX = "usm_http"
APP_NAME = "usm"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Request duration buckets, seconds."""
EXCLUDED = frozenset({"/metrics"})
"""Route templates not counted: scrapes are not traffic, and would skew rates on idle services."""

_LABELS = ("method", "path", "status_code", "app_name")

REQUESTS = Counter(f"{PREFIX}_requests_total", "Total requests", _LABELS)
DURATION = Histogram(
    f"{PREFIX}_request_duration_seconds", "Request duration, in seconds", _LABELS, buckets=BUCKETS
)
IN_PROGRESS = Gauge(
    f"{PREFIX}_requests_in_progress",
    "Total requests currently in progress",
    _LABELS,
    multiprocess_mode="livesum",
)
ERRORS = Counter(f"{PREFIX}_requests_error_total", "Total errors in requests", _LABELS)

_Finished = tuple[CounterTally, HistogramTally, CounterTally | None]
_done: dict[tuple[str, str, int], _Finished] = {}
_running: dict[tuple[str, str], GaugeTally] = {}


def _finished(method: str, path: str, status: int) -> _Finished:
    """(requests, duration, errors or None) tallies for one label set, made once."""
    key = (method, path, status)
    children = _done.get(key)
    if children is None:
        values = (method, path, str(status), APP_NAME)
        errors = CounterTally(ERRORS.labels(*values)) if status >= 500 else None
        children = (
            CounterTally(REQUESTS.labels(*values)),
            HistogramTally(DURATION.labels(*values)),
            errors,
        )
        _done[key] = children
    return children


def _in_progress(method: str, path: str) -> GaugeTally:
    key = (method, path)
    child = _running.get(key)
    if child is None:
        # litestar's middleware labels the in-progress gauge with the status it starts with.
        child = _running[key] = GaugeTally(IN_PROGRESS.labels(method, path, "200", APP_NAME))
    return child


class HttpMetricsMiddleware:
    """Counts every HTTP request by method, route template and status; times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path_template") or scope["path"]  # type: ignore[assignment]
        if scope["type"] != ScopeType.HTTP or path in EXCLUDED:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]  # type: ignore[typeddict-item]
        started = time.perf_counter()
        status = 200
        ended = 0.0

        async def send_wrapper(message: Message) -> None:
            nonlocal status, ended
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                ended = time.perf_counter()
            await send(message)

        running = _in_progress(method, path)
        running.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Answered by litestar's exception handling outside this middleware.
            status = int(getattr(exc, "status_code", 500))
            raise
        finally:
            running.dec()
            requests, duration, errors = _finished(method, path, status)
            if errors is not None:
                errors.inc()
            requests.inc()
            duration.observe((ended or time.perf_counter()) - started)
