"""Queue and worker stats read from a real Redis, and re-scoring under a new table set."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from service.core.calls import Call
from service.core.scoring import Scorer
from service.dispatch import keys
from service.dispatch.items import ItemState, ms_to_datetime, now_ms
from service.dispatch.leases import Leased, pop
from service.dispatch.rescore import rescore_all
from service.dispatch.stats import QueueStat, read_queue_stats, read_worker_stats
from service.dispatch.store import ItemStore, hand_out_order
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue


def test_queue_stats_give_depth_oldest_age_and_overdue_per_team_and_priority(
    store: ItemStore, scorer: Scorer, redis_client: redis.Redis
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    long_ago = datetime.now(UTC) - timedelta(days=30)
    late = Call(type="incident", impact="user", urgency="low", reported_at=long_ago)
    # Ages come from the moment the caller names, never from the wall clock: a day off it, the
    # oldest age is exact however slowly a loaded machine ran this test.
    now = datetime.now(UTC) - timedelta(days=1)
    store.enqueue(late, scorer.score(late, now), "t", "late", None, now - timedelta(seconds=90))
    store.enqueue(call, scorer.score(call, now), "t", "fresh", None, now)
    stats = read_queue_stats(redis_client, ["service_desk", "security"], ["P1", "P5"], now)
    by_key = {(s.team, s.priority): s for s in stats}
    p5 = by_key["service_desk", "P5"]
    assert (p5.depth, p5.overdue) == (2, 1)
    assert p5.oldest_age_seconds == pytest.approx(90, abs=0.002)
    assert by_key["security", "P1"] == QueueStat(
        team="security", priority="P1", depth=0, oldest_age_seconds=0.0, overdue=0
    )


def test_queue_stats_cost_one_round_trip_whatever_the_queue_length(
    store: ItemStore, scorer: Scorer, redis_client: redis.Redis
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    now = datetime.now(UTC)
    for n in range(300):
        store.enqueue(call, scorer.score(call, now), "t", f"n{n}", None, now)
    before = redis_client.info("stats")["total_commands_processed"]
    read_queue_stats(redis_client, ["service_desk"], ["P1", "P2", "P3", "P4", "P5"], now)
    after = redis_client.info("stats")["total_commands_processed"]
    # 3 commands per queue plus the INFO call itself, never one per item.
    assert after - before == 3 * 5 + 1


def test_worker_stats_count_busy_workers_and_longest_running_item(
    redis_client: redis.Redis, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    enqueue(Call(type="incident", impact="user", urgency="low"))
    now = now_ms() - 86_400_000  # a day off the wall clock: only the named moment counts
    redis_client.zadd(keys.workers_key("service_desk"), {"w1": now + 60_000, "old": 1})
    order = hand_out_order(base_set.tables, ["service_desk"])
    got = pop(redis_client, order, [], "w1", now - 2000, 60_000, ItemState.STARTED)
    assert isinstance(got, Leased)
    # Measured at the moment the test names: exact, whatever the machine's load.
    [stat] = read_worker_stats(redis_client, ["service_desk"], ms_to_datetime(now))
    assert (stat.team, stat.up, stat.busy) == ("service_desk", 1, 1)
    assert stat.longest_running_seconds == pytest.approx(2.0, abs=0.001)


def test_rescore_all_moves_items_whose_priority_changed_under_the_new_set(
    store: ItemStore,
    enqueue: Enqueue,
    table_sets: dict[str, LoadedSet],
    redis_client: redis.Redis,
) -> None:
    changes = Call(type="incident", impact="group", urgency="high")  # P3 in 2026.1, P2 in 2027.1
    stays = Call(type="incident", impact="organisation", urgency="immediate")
    moving, staying = enqueue(changes), enqueue(stays)
    assert moving.priority == "P3"
    time.sleep(0.002)
    moved = rescore_all(redis_client, table_sets["2027.1"].scorer())
    assert moved == 1
    after = store.get(moving.id)
    assert (after.priority, after.queue, after.state) == ("P2", "usm.service_desk.P2", "queued")
    assert after.decision.table_version == "2027.1"
    assert after.decision.reported_at == moving.decision.reported_at
    assert after.history[-1].event == "rescored"
    assert "table set 2027.1 came into force: P3/service_desk -> P2/service_desk" in (
        after.history[-1].detail
    )
    assert store.get(staying.id).history[-1].event == "enqueued"
    assert redis_client.lrange(keys.queue_key("usm.service_desk.P3"), 0, -1) == []
