"""``GET /metrics``; the HTTP request metrics are :mod:`service.api.http_metrics`.

The endpoint is ours rather than litestar's ``PrometheusController`` because a scrape must also
run the scrape-time collectors (table set in force, queue state read from Redis), which that
controller's registry choice leaves out in multiprocess mode.
"""

from __future__ import annotations

from litestar import Request, get
from litestar.datastructures import State
from litestar.response import Response
from prometheus_client.registry import Collector

from service.files.store import TableStore
from service.metrics.instruments import initialise
from service.metrics.registry import ScrapeRegistry
from service.metrics.sources import initialise_sources
from service.metrics.tables import TableCollector, queues
from service.settings import Settings

__all__ = ["metrics", "prime_metrics", "scrape_collectors"]


def prime_metrics(store: TableStore) -> None:
    """Create the item counters of every team and priority at 0 when the API starts.

    Under ``usm serve`` the workers' counts merge into these series, so even a queue's first
    event is an increase Prometheus sees (see :func:`service.metrics.instruments.initialise`).
    """
    initialise(*queues(store))
    initialise_sources({s.name for ls in store.versions.sets for s in ls.tables.sources.source})


def _prime_after_reload(state: State) -> None:
    # A reload may bring new teams or priorities; their counters start at 0 too.
    store: TableStore = state.tables
    if state.get("metrics_primed") != store.generation:
        prime_metrics(store)
        state.metrics_primed = store.generation


def scrape_collectors(store: TableStore, settings: Settings) -> list[Collector]:
    """The collectors that read state at scrape time for this app."""
    collectors: list[Collector] = [TableCollector(store)]
    if settings.redis_url:
        from service.dispatch.collector import QueueCollector
        from service.metrics.replication import ReplicationCollector

        collectors.append(QueueCollector.from_url(settings.redis_url, store))
        collectors.append(
            ReplicationCollector.from_url(settings.redis_url, settings.redis_wait_replicas)
        )
        from service.sources.collector import WriteBackCollector

        collectors.append(WriteBackCollector.from_url(settings.redis_url, store))
    return collectors


def _registry(state: State) -> ScrapeRegistry:
    # Built on first scrape, not in create_app: nothing connects to Redis before it is needed.
    registry: ScrapeRegistry | None = state.get("metrics_registry")
    if registry is None:
        registry = ScrapeRegistry(scrape_collectors(state.tables, state.settings))
        state.metrics_registry = registry
    return registry


@get(
    "/metrics",
    sync_to_thread=True,
    tags=["metrics"],
    summary="Prometheus metrics",
    media_type="text/plain; version=0.0.4; charset=utf-8",
)
def metrics(request: Request[object, object, State], state: State) -> Response[bytes]:
    """Event metrics of every process plus queue and table state read now (text or OpenMetrics)."""
    _prime_after_reload(state)
    body, content_type = _registry(state).render(request.headers.get("accept"))
    # As a header, not media_type: litestar would append a second charset to text/plain.
    return Response(body, headers={"Content-Type": content_type})
