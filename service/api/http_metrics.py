"""HTTP request metrics: ``usm_http_*`` per method, route template and status, kept cheap.

Recorded by :class:`service.api.guard.RequestGuard` for every routed request.

The series are those of litestar's Prometheus middleware (same names, labels and buckets; the
dashboards and alert rules query them), recorded by our own request layer instead. Litestar's
builds a ``Request``, two label dicts and four ``labels()`` look-ups per request; in
multiprocess mode (``usm serve``) that was the largest single cost of ``POST /v1/priority``
around scoring (bench/http.py, cProfile). Here each label set's children are looked up once and
kept, and a request adds to in-process tallies (:mod:`service.metrics.tally`) that reach the
multiprocess files in bulk, instead of five memory-mapped writes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service.metrics.tally import CounterTally, GaugeTally, HistogramTally

__all__ = ["APP_NAME", "BUCKETS", "EXCLUDED", "PREFIX", "RouteMetrics", "route_metrics"]

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


class RouteMetrics:
    """The series of one method and route template: in progress, and per status the count, the
    duration and the 5xx count. Recorded from the event loop only (one writer, see
    :mod:`service.metrics.tally`)."""

    __slots__ = ("_by_status", "method", "path", "running")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        # litestar's middleware labels the in-progress gauge with the status it starts with.
        self.running = GaugeTally(IN_PROGRESS.labels(method, path, "200", APP_NAME))
        """Requests of this route in progress: the caller adds 1 when one starts."""
        self._by_status: dict[int, _Finished] = {}

    def finished(self, status: int, seconds: float) -> None:
        """One request answered ``status`` after ``seconds``; no longer in progress."""
        children = self._by_status.get(status)
        if children is None:
            children = self._by_status[status] = self._children(status)
        requests, duration, errors = children
        requests.total += 1
        duration.observe(seconds)
        if errors is not None:
            errors.total += 1
        self.running.value -= 1

    def _children(self, status: int) -> _Finished:
        values = (self.method, self.path, str(status), APP_NAME)
        errors = CounterTally(ERRORS.labels(*values)) if status >= 500 else None
        return (
            CounterTally(REQUESTS.labels(*values)),
            HistogramTally(DURATION.labels(*values)),
            errors,
        )


_routes: dict[tuple[str, str], RouteMetrics] = {}


def route_metrics(method: str, path: str) -> RouteMetrics:
    """The metrics of ``method path`` (a route template), made on first use."""
    metrics = _routes.get((method, path))
    if metrics is None:
        metrics = _routes[(method, path)] = RouteMetrics(method, path)
    return metrics
