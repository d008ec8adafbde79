"""Hand-out under a lease in a real Redis: strict priority, reaper, dead letters, suspension."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
import redis
from rq.suspension import resume, suspend

from service.core.calls import Call
from service.core.tables import TableSet
from service.dispatch import keys
from service.dispatch.config import DispatchConfig
from service.dispatch.items import ItemState, now_ms
from service.dispatch.leases import SUSPENDED, Leased, Outcome, extend, finish, pop, reap
from service.dispatch.store import ItemStore, hand_out_order
from service.errors import ItemConflict
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue

TEAM = "service_desk"


def _pop(
    conn: redis.Redis,
    tables: TableSet,
    holder: str = "w1",
    lease_ms: int = 60_000,
    at: int | None = None,
) -> Leased:
    """Lease the next item at ``at`` (ms; now by default)."""
    at = now_ms() if at is None else at
    got = pop(conn, hand_out_order(tables, [TEAM]), [keys.wake_key(TEAM)], holder, at, lease_ms)
    assert isinstance(got, Leased)
    return got


def test_items_are_handed_out_in_strict_priority_then_fifo(
    redis_client: redis.Redis,
    base_set: LoadedSet,
    calls_by_priority: dict[str, Call],
    enqueue: Enqueue,
) -> None:
    mix = [p for p in calls_by_priority for _ in range(5)]
    random.Random(7).shuffle(mix)
    expected: dict[str, list[str]] = {p: [] for p in calls_by_priority}
    for priority in mix:
        expected[priority].append(enqueue(calls_by_priority[priority]).id)
    handed = []
    while True:
        got = pop(
            redis_client, hand_out_order(base_set.tables, [TEAM]), [keys.wake_key(TEAM)], "w",
            now_ms(), 60_000,
        )  # fmt: skip
        if got is None:
            break
        assert isinstance(got, Leased)
        handed.append(got.id)
    assert handed == [i for p in sorted(expected) for i in expected[p]]


def test_an_empty_hand_out_clears_the_wake_tokens(
    redis_client: redis.Redis, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    enqueue(Call(type="incident", impact="user", urgency="low"))
    assert redis_client.llen(keys.wake_key(TEAM)) == 1
    _pop(redis_client, base_set.tables)
    assert pop(redis_client, hand_out_order(base_set.tables, [TEAM]), [keys.wake_key(TEAM)],
               "w", now_ms(), 1000) is None  # fmt: skip
    assert redis_client.exists(keys.wake_key(TEAM)) == 0


def test_an_expired_lease_puts_the_item_back_at_the_front_of_its_level(
    redis_client: redis.Redis, store: ItemStore, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    first, second = enqueue(call), enqueue(call)
    at = now_ms()
    leased = _pop(redis_client, base_set.tables, lease_ms=50, at=at)
    assert leased.id == first.id
    # The reaper judges by the moment it is given, not by how long this test took to get here.
    assert reap(redis_client, at + 49, 5, 100) == []
    taken = reap(redis_client, at + 51, 5, 100)
    assert [(r.id, r.dead) for r in taken] == [(first.id, False)]
    queue = redis_client.lrange(keys.queue_key(first.queue), 0, -1)
    assert [i.decode() for i in queue] == [first.id, second.id]
    item = store.get(first.id)
    assert item.state is ItemState.QUEUED
    assert [h.event for h in item.history] == ["enqueued", "started", "redelivered"]
    again = _pop(redis_client, base_set.tables, holder="w2")
    assert (again.id, again.deliveries) == (first.id, 2)


def test_the_old_holder_cannot_finish_an_item_handed_out_again(
    redis_client: redis.Redis, store: ItemStore, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    at = now_ms()
    _pop(redis_client, base_set.tables, holder="old", lease_ms=10, at=at)
    assert [r.id for r in reap(redis_client, at + 11, 5, 100)] == [item.id]
    _pop(redis_client, base_set.tables, holder="new")
    assert not finish(redis_client, item.id, "old", Outcome.COMPLETED, now_ms(), 60)
    assert not extend(redis_client, item.id, "old", now_ms(), 1000)
    assert finish(redis_client, item.id, "new", Outcome.COMPLETED, now_ms(), 60)
    assert store.get(item.id).state is ItemState.COMPLETED


def test_an_item_handed_out_too_often_goes_to_the_dead_letters_and_can_be_requeued(
    redis_client: redis.Redis, store: ItemStore, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    for _ in range(2):
        at = now_ms()
        _pop(redis_client, base_set.tables, lease_ms=1, at=at)
        taken = reap(redis_client, at + 2, 2, 100)
    assert [r.dead for r in taken] == [True]
    dead = store.get(item.id)
    assert dead.state is ItemState.DEAD and dead.error == "lease expired 2 times; last holder w1"
    assert store.dead_letter_ids([item.queue], 10) == [item.id]
    back = store.requeue(item.id, datetime.now(UTC))
    assert back.state is ItemState.QUEUED and back.deliveries == 0
    assert store.dead_letter_ids([item.queue], 10) == []
    assert _pop(redis_client, base_set.tables).id == item.id
    with pytest.raises(ItemConflict, match="only dead items can be re-queued"):
        store.requeue(item.id, datetime.now(UTC))


def test_a_failed_item_is_dead_lettered_in_rqs_failed_registry(
    redis_client: redis.Redis, store: ItemStore, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    from rq.registry import FailedJobRegistry

    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    _pop(redis_client, base_set.tables)
    assert finish(redis_client, item.id, "w1", Outcome.DEAD, now_ms(), 3600, "HTTP 500")
    registry = FailedJobRegistry(item.queue, connection=redis_client)
    assert registry.get_job_ids() == [item.id]
    assert store.get(item.id).error == "HTTP 500"


def test_rq_suspend_stops_the_hand_out_until_rq_resume(
    redis_client: redis.Redis, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    enqueue(Call(type="incident", impact="user", urgency="low"))
    suspend(redis_client)
    order = hand_out_order(base_set.tables, [TEAM])
    assert pop(redis_client, order, [], "w", now_ms(), 1000) == SUSPENDED
    resume(redis_client)
    assert isinstance(pop(redis_client, order, [], "w", now_ms(), 1000), Leased)


def test_a_released_item_goes_back_to_the_front(
    redis_client: redis.Redis, store: ItemStore, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    first, second = enqueue(call), enqueue(call)
    _pop(redis_client, base_set.tables)
    assert finish(redis_client, first.id, "w1", Outcome.RELEASED, now_ms(), 60, "shift over")
    assert _pop(redis_client, base_set.tables).id == first.id
    assert store.get(second.id).state is ItemState.QUEUED


def test_default_redelivery_bound_is_within_a_minute() -> None:
    config = DispatchConfig()
    assert config.lease_seconds + config.reaper_seconds <= 60
    assert config.heartbeat_seconds < config.lease_seconds


def test_rqs_own_requeue_of_a_dead_letter_is_handed_out_again(
    redis_client: redis.Redis, store: ItemStore, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    from rq.registry import FailedJobRegistry

    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    _pop(redis_client, base_set.tables)
    finish(redis_client, item.id, "w1", Outcome.DEAD, now_ms(), 3600, "boom")
    FailedJobRegistry(item.queue, connection=redis_client).requeue(item.id)  # `rq requeue`
    again = _pop(redis_client, base_set.tables, holder="w2")
    assert (again.id, again.deliveries) == (item.id, 2)
    assert store.dead_letter_ids([item.queue], 10) == []


def test_rqs_registry_maintenance_leaves_items_in_hand_and_dead_letters_alone(
    redis_client: redis.Redis, store: ItemStore, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    from rq.queue import Queue
    from rq.registry import clean_registries

    call = Call(type="incident", impact="user", urgency="low")
    abandoned, dead = enqueue(call), enqueue(call)
    _pop(redis_client, base_set.tables, holder="gone", lease_ms=1)
    _pop(redis_client, base_set.tables, holder="w")
    finish(redis_client, dead.id, "w", Outcome.DEAD, now_ms(), 3600, "boom")
    time.sleep(0.01)
    # What every RQ worker runs every 10 minutes, and `rq info` partly on each call.
    clean_registries(Queue(abandoned.queue, connection=redis_client))
    assert store.get(abandoned.id).state is ItemState.STARTED
    assert store.dead_letter_ids([dead.queue], 10) == [dead.id]
    assert [r.id for r in reap(redis_client, now_ms(), 5, 100)] == [abandoned.id]
    assert _pop(redis_client, base_set.tables).id == abandoned.id


def test_a_worker_for_two_teams_takes_every_p1_before_any_p2(
    redis_client: redis.Redis, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    sec_p2 = enqueue(
        Call(type="incident", impact="department", urgency="high", category="security")
    )
    desk_p1 = enqueue(Call(type="incident", impact="organisation", urgency="immediate"))
    sec_p1 = enqueue(
        Call(type="incident", impact="organisation", urgency="immediate", category="security")
    )
    assert (sec_p2.team, sec_p2.priority) == ("security", "P2")
    order = hand_out_order(base_set.tables, ["service_desk", "security"])
    handed = []
    while isinstance(got := pop(redis_client, order, [], "w", now_ms(), 60_000), Leased):
        handed.append(got.id)
    assert handed == [desk_p1.id, sec_p1.id, sec_p2.id]


def test_expired_registry_entries_are_dropped_and_live_ones_kept(
    redis_client: redis.Redis, base_set: LoadedSet, enqueue: Enqueue
) -> None:
    from service.dispatch.leases import expire_registries

    call = Call(type="incident", impact="user", urgency="low")
    old, fresh = enqueue(call), enqueue(call)
    for item, ttl in ((old, 1), (fresh, 3600)):
        _pop(redis_client, base_set.tables)
        finish(redis_client, item.id, "w1", Outcome.COMPLETED, now_ms(), ttl)
    expire_registries(redis_client, [old.queue], time.time() + 2)
    assert redis_client.zrange(keys.finished_key(old.queue), 0, -1) == [fresh.id.encode()]
