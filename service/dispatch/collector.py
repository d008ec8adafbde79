"""Queue and worker state, read from Redis when Prometheus scrapes.

Nothing here is counted in process memory: every API replica reads the same Redis and reports
the same truth, and a restarted API loses nothing. The read is two pipelined round trips whose
cost depends on the number of teams and priorities, never on the number of queued items (see
:mod:`service.dispatch.stats` and ``bench/metrics.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service.connection import connect
from service.dispatch.stats import read_queue_stats, read_worker_stats
from service.files.store import TableStore
from service.metrics.tables import queues

__all__ = ["QueueCollector"]

log = logging.getLogger("usm.metrics")

# A scrape must answer even when Redis hangs: Prometheus' own timeout is 10 s by default, and a
# missing scrape would hide usm_redis_up = 0, the one series that says what is wrong.
CONNECT_TIMEOUT = 0.5
READ_TIMEOUT = 2.0


class QueueCollector(Collector):
    """Depth, oldest age and overdue items per team and priority; workers per team.

    Teams and priorities are those of every loaded table set (:func:`queues`).
    """

    def __init__(
        self,
        conn: redis.Redis,
        store: TableStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._conn = conn
        self._store = store
        self._clock = clock
        self._was_up = True

    @classmethod
    def from_url(cls, url: str, store: TableStore) -> QueueCollector:
        """A collector with its own small connection pool and short timeouts."""
        conn = connect(url, timeout=READ_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
        return cls(conn, store)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        teams, priorities = queues(self._store)
        now = self._clock()
        try:
            stats = read_queue_stats(self._conn, teams, priorities, now)
            workers = read_worker_stats(self._conn, teams, now)
        except redis.RedisError as exc:
            if self._was_up:
                log.warning("queue metrics: Redis unreachable (%s); reporting usm_redis_up 0", exc)
            self._was_up = False
            yield _single("usm_redis_up", "Whether the API reached Redis at this scrape.", 0)
            return
        if not self._was_up:
            log.info("queue metrics: Redis reachable again")
        self._was_up = True
        yield _single("usm_redis_up", "Whether the API reached Redis at this scrape.", 1)

        qlabels = ["team", "priority"]
        depth = GaugeMetricFamily("usm_queue_depth", "Items waiting.", labels=qlabels)
        oldest = GaugeMetricFamily(
            "usm_queue_oldest_age_seconds",
            "Age of the oldest waiting item since enqueue (0 when the queue is empty).",
            labels=qlabels,
        )
        overdue = GaugeMetricFamily(
            "usm_queue_overdue_items",
            "Waiting items past their response target.",
            labels=qlabels,
        )
        for q in stats:
            key = [q.team, q.priority]
            depth.add_metric(key, q.depth)
            oldest.add_metric(key, q.oldest_age_seconds)
            overdue.add_metric(key, q.overdue)
        yield from (depth, oldest, overdue)

        up = GaugeMetricFamily(
            "usm_workers_up", "Workers with a current heartbeat.", labels=["team"]
        )
        busy = GaugeMetricFamily(
            "usm_workers_busy", "Items being handled by a worker now.", labels=["team"]
        )
        longest = GaugeMetricFamily(
            "usm_worker_longest_running_seconds",
            "How long the longest-running item has been handled (0 when idle).",
            labels=["team"],
        )
        for w in workers:
            up.add_metric([w.team], w.up)
            busy.add_metric([w.team], w.busy)
            longest.add_metric([w.team], w.longest_running_seconds)
        yield from (up, busy, longest)
        yield _single(
            "usm_queue_collect_seconds",
            "Time this scrape spent reading queue and worker state from Redis.",
            time.perf_counter() - started,
        )


def _single(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
