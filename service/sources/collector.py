"""Write-back state, read from Redis when Prometheus scrapes: pending, dead, oldest wait.

Like the queue collector, nothing is held in process memory, so every API replica reports the
same numbers. The read is two bounded range reads of the outbox's sorted sets.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.connection import connect
from service.files.store import TableStore
from service.sources import keys

__all__ = ["WriteBackCollector"]

log = logging.getLogger("usm.metrics")

LIMIT = 10_000
"""Entries read per scrape at most: past this the counts are a lower bound."""


class WriteBackCollector(Collector):
    """``usm_source_writebacks_pending``/``_dead`` and ``usm_source_writeback_oldest_seconds``."""

    def __init__(self, conn: redis.Redis, store: TableStore) -> None:
        self._conn = conn
        self._store = store

    @classmethod
    def from_url(cls, url: str, store: TableStore) -> WriteBackCollector:
        return cls(connect(url, timeout=2.0, connect_timeout=0.5), store)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "usm_source_writebacks_pending",
            "Decisions waiting to be written back into their ticketing tool, by source.",
            labels=["source"],
        )
        dead = GaugeMetricFamily(
            "usm_source_writebacks_dead",
            "Write-backs dead-lettered after their retries (usm sources dead), by source.",
            labels=["source"],
        )
        oldest = GaugeMetricFamily(
            "usm_source_writeback_oldest_seconds",
            "How long the longest-waiting write-back has been due, by source (0: none due).",
            labels=["source"],
        )
        names = sorted(
            {s.name for ls in self._store.versions.sets for s in ls.tables.sources.source}
        )
        now = time.time()
        try:
            with self._conn.pipeline(transaction=False) as pipe:
                pipe.zrange(keys.DUE, 0, LIMIT - 1, withscores=True)
                pipe.zrange(keys.DEAD, 0, LIMIT - 1)
                due_rows, dead_rows = pipe.execute()
        except redis.RedisError as exc:
            log.debug("write-back state not read: %s", exc)
            return
        waiting: Counter[str] = Counter()
        late: dict[str, float] = {}
        for member, score in due_rows:
            source = keys.split_ref(member.decode())[0]
            waiting[source] += 1
            late[source] = max(late.get(source, 0.0), now - score / 1000)
        failed = Counter(keys.split_ref(m.decode())[0] for m in dead_rows)
        for name in sorted({*names, *waiting, *failed}):
            pending.add_metric([name], waiting[name])
            dead.add_metric([name], failed[name])
            oldest.add_metric([name], max(0.0, late.get(name, 0.0)))
        yield pending
        yield dead
        yield oldest
