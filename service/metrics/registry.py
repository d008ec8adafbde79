"""What one scrape returns: the event metrics of this process (or of all processes in
multiprocess mode) plus scrape-time collectors such as queue state read from Redis."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from service.metrics.multiprocess import enabled

__all__ = ["ScrapeRegistry", "render"]


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
        if enabled():
            merged = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            self._events = merged
        else:
            self._events = REGISTRY

    def collect(self) -> Iterator[Metric]:
        yield from self._events.collect()
        for collector in self._extra:
            yield from collector.collect()


def render(registry: Collector, accept: str | None) -> tuple[bytes, str]:
    """Encode ``registry`` in the format the scraper asked for (OpenMetrics or text 0.0.4).

    Returns:
        The body and its content type.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
