"""What one scrape returns: the event metrics of this process (or of all processes in
multiprocess mode) plus scrape-time collectors such as queue state read from Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.metrics.fastmerge import FileMerger, gauge_metrics
from service.metrics.multiprocess import ENV, enabled
from service.metrics.tally import flush

__all__ = ["ScrapeRegistry", "render"]


class _Gauges(Collector):
    """Multiprocess gauges followed by the scrape-time collectors (the slow path's small part)."""

    def __init__(self, directory: str, extra: Sequence[Collector]) -> None:
        self._dir = directory
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from gauge_metrics(self._dir)
        for collector in self._extra:
            yield from collector.collect()


class ScrapeRegistry(Collector):
    """Event metrics (in-process or merged from every process's files) followed by ``extra``.

    The scrape-time collectors are kept out of the global registry on purpose: in multiprocess
    mode the global registry is not what is exported, and two API replicas must each read the
    queue state from Redis themselves rather than sum each other's copies.
    """

    def __init__(self, extra: Sequence[Collector] = ()) -> None:
        # ``*_created`` series double the series count in the text format Prometheus stores and
        # no dashboard uses them; counter resets are detected without them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._extra = tuple(extra)
        self._events: Collector
        self._merger: FileMerger | None = None
        self._gauges: _Gauges | None = None
        if enabled():
            directory = os.environ[ENV]
            merged = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
            self._events = merged
            self._merger = FileMerger(directory)
            self._gauges = _Gauges(directory, self._extra)
        else:
            self._events = REGISTRY

    def collect(self) -> Iterator[Metric]:
        """Everything through prometheus-client (used by the worker exporter and tests)."""
        flush()  # this process's tallies first: a scrape is exact for the process answering it
        yield from self._events.collect()
        for collector in self._extra:
            yield from collector.collect()

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape body and its content type.

        In multiprocess mode counters and histograms take the fast path (:mod:`fastmerge`) and
        the answer is always text 0.0.4 (the library keeps no exemplars there anyway); otherwise
        the format the scraper asked for (OpenMetrics or text).
        """
        if self._merger is None or self._gauges is None:
            return render(self, accept)
        flush()
        body = self._merger.render().encode() + generate_latest(self._gauges)
        return body, CONTENT_TYPE_PLAIN_0_0_4


def render(registry: Collector, accept: str | None) -> tuple[bytes, str]:
    """Encode ``registry`` in the format the scraper asked for (OpenMetrics or text 0.0.4).

    Returns:
        The body and its content type.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
