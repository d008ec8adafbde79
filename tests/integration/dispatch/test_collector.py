"""The queue collector reads real Redis state written by the dispatch layer's own enqueue."""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.core.calls import Call
from service.dispatch.collector import QueueCollector
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from service.files.store import TableStore
from tests.support.redis_server import RedisServer, free_port


def scrape(collector: QueueCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def q(team: str, priority: str) -> tuple[tuple[str, str], ...]:
    return (("priority", priority), ("team", team))


def test_depth_oldest_age_and_overdue_come_from_the_queues_in_redis(
    redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    now = datetime.now(UTC)
    scorer = default_set.scorer()
    store = ItemStore(redis_client)
    # Reported two hours ago: a P1 is long past its 15-minute response target.
    late = Call(type="incident", impact="organisation", urgency="immediate",
                reported_at=now - timedelta(hours=2))  # fmt: skip
    fresh = Call(type="incident", impact="user", urgency="low")
    late_decision = scorer.score(late, now - timedelta(seconds=40))
    store.enqueue(late, late_decision, "test", "late-1", None, now - timedelta(seconds=40))
    for n in range(3):
        store.enqueue(fresh, scorer.score(fresh, now), "test", f"fresh-{n}", None, now)
    fresh_decision = scorer.score(fresh, now)

    samples = scrape(QueueCollector(redis_client, TableStore([default_set]), clock=lambda: now))

    assert samples[("usm_redis_up", ())] == 1
    p1 = q(late_decision.team, late_decision.priority.name)
    assert samples[("usm_queue_depth", p1)] == 1
    assert 39 <= samples[("usm_queue_oldest_age_seconds", p1)] <= 41
    assert samples[("usm_queue_overdue_items", p1)] == 1
    low = q(fresh_decision.team, fresh_decision.priority.name)
    assert samples[("usm_queue_depth", low)] == 3
    assert samples[("usm_queue_overdue_items", low)] == 0


def test_every_team_and_priority_of_the_table_set_is_reported_even_when_empty(
    redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    samples = scrape(QueueCollector(redis_client, TableStore([default_set])))
    teams = [t.name for t in default_set.tables.teams.team]
    priorities = [p.name for p in default_set.tables.levels.priority]
    depths = {labels for name, labels in samples if name == "usm_queue_depth"}
    assert depths == {q(t, p) for t in teams for p in priorities}
    workers = {labels for name, labels in samples if name == "usm_workers_up"}
    assert workers == {(("team", t),) for t in teams}
    assert all(v == 0 for (name, _), v in samples.items() if name == "usm_queue_depth")


def test_redis_unreachable_reports_redis_down_and_no_queue_state(default_set: LoadedSet) -> None:
    collector = QueueCollector.from_url(
        f"redis://127.0.0.1:{free_port()}/0", TableStore([default_set])
    )
    samples = scrape(collector)
    assert samples == {("usm_redis_up", ()): 0}


PROMETHEUS_SCRAPE_TIMEOUT = 10.0
"""Prometheus' default ``scrape_timeout``: a scrape slower than this is lost, and with it the
``usm_redis_up 0`` that says what is wrong."""


def test_a_hung_redis_costs_the_scrape_one_read_timeout_not_prometheus_timeout(
    default_set: LoadedSet, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=False)
    server.start()
    assert server.proc is not None
    collector = QueueCollector.from_url(server.url, TableStore([default_set]))
    admin = redis.Redis.from_url(server.url)
    got: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []
    try:
        assert scrape(collector)[("usm_redis_up", ())] == 1
        connections = admin.info("stats")["total_connections_received"]
        os.kill(server.proc.pid, signal.SIGSTOP)  # accepts nothing, answers nothing
        try:
            scraping = threading.Thread(target=lambda: got.append(scrape(collector)), daemon=True)
            scraping.start()
            # Measured against the defect (a scrape that waits on Redis until Prometheus gives
            # up), not against READ_TIMEOUT itself: a loaded machine only adds to the timeout.
            scraping.join(PROMETHEUS_SCRAPE_TIMEOUT)
            answered = not scraping.is_alive()
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert answered, "the scrape still waited on the hung Redis at Prometheus' timeout"
        assert got == [{("usm_redis_up", ()): 0}]
        # One read timeout, not two: a re-sent read would have opened a new connection, which
        # the thawed server accepts before it answers this ping (it was waiting before the ping
        # was sent).
        admin.ping()
        assert admin.info("stats")["total_connections_received"] == connections, (
            "the scrape re-sent its reads after the timeout"
        )
    finally:
        admin.close()
        server.stop()
