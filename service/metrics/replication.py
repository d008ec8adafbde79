"""Where the queue store's primary is and whether replicas confirm its writes.

Read at scrape time from the primary this process writes to (``INFO replication``), like the
queue state: its role and address, connected replicas and their lag, and the confirmations the
API requires. A change of primary (new replication id or address) between two scrapes counts as
a failover seen. ``WAIT`` timeouts are counted where they happen
(:mod:`service.dispatch.replicas`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.connection import connect, is_sentinel

__all__ = ["FAILOVERS", "WAIT_TIMEOUTS", "ReplicationCollector"]

log = logging.getLogger("usm.metrics")

WAIT_TIMEOUTS = Counter(
    "usm_redis_wait_timeouts",
    "Item writes answered 503 because too few replicas confirmed them in time.",
)
FAILOVERS = Counter(
    "usm_redis_failovers",
    "Times a scrape found a different Redis primary (new replication id or address).",
)
_SLAVE = re.compile(r"^slave\d+$")


class ReplicationCollector(Collector):
    """``usm_redis_primary_info``, replicas, replica lag and required confirmations."""

    def __init__(self, conn: redis.Redis, wait_replicas: str, sentinel: bool) -> None:
        self._conn = conn
        self._wait = wait_replicas
        self._sentinel = sentinel
        self._last: tuple[str, str] | None = None

    @classmethod
    def from_url(cls, url: str, wait_replicas: str) -> ReplicationCollector:
        return cls(connect(url, timeout=2.0, connect_timeout=0.5), wait_replicas, is_sentinel(url))

    def _required(self, replicas: int) -> int:
        if self._wait != "auto":
            return int(self._wait)
        return 1 if self._sentinel or replicas > 0 else 0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            info: dict[str, Any] = self._conn.info("replication")
        except redis.RedisError as exc:
            log.debug("replication metrics skipped: %s", exc)
            return
        conn = self._conn.connection_pool.get_connection()
        try:
            address = f"{conn.host}:{conn.port}"  # type: ignore[attr-defined]
        finally:
            self._conn.connection_pool.release(conn)
        role = str(info.get("role", "unknown"))
        seen = (str(info.get("master_replid", "")), address)
        if self._last is not None and seen != self._last and role == "master":
            FAILOVERS.inc()
            log.warning("redis primary changed: now %s", address)
        if role == "master":
            self._last = seen
        replicas = [v for k, v in info.items() if _SLAVE.match(k) and isinstance(v, dict)]
        primary = GaugeMetricFamily(
            "usm_redis_primary_info",
            "The Redis server item writes go to: its address and role (master when healthy).",
            labels=["address", "role"],
        )
        primary.add_metric([address, role], 1)
        yield primary
        yield _gauge(
            "usm_redis_connected_replicas",
            "Replicas connected to the primary.",
            int(info.get("connected_slaves", 0)),
        )
        lags = [float(r.get("lag", 0)) for r in replicas if r.get("state") == "online"]
        yield _gauge(
            "usm_redis_replica_lag_seconds",
            "Seconds since the most lagging online replica acknowledged (0 without replicas).",
            max(lags, default=0.0),
        )
        yield _gauge(
            "usm_redis_replicas_required",
            "Replicas that must confirm an item write before the API answers (WAIT).",
            self._required(int(info.get("connected_slaves", 0))),
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g
