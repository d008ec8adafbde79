"""Mass re-score on a real Redis: items in hand too, seniority kept, crash- and traffic-safe.

2026.1 -> 2027.1 moves incident group/high from P3 to P2 and user/normal from P4 to P5; P2
items (department/high) keep their queue but get new targets.
"""

from __future__ import annotations

import pytest
import redis

from service.core.calls import Call
from service.core.scoring import Scorer
from service.dispatch import keys
from service.dispatch.items import ItemState, now_ms
from service.dispatch.leases import Leased, Outcome, finish, pop, reap
from service.dispatch.rescore import rescore_all
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue

MOVES_UP = Call(type="incident", impact="group", urgency="high")  # P3 -> P2
STAYS_P2 = Call(type="incident", impact="department", urgency="high")  # P2, new targets
MOVES_DOWN = Call(type="incident", impact="user", urgency="normal")  # P4 -> P5
P2, P3, P4, P5 = (f"usm.service_desk.P{n}" for n in (2, 3, 4, 5))


@pytest.fixture
def new_scorer(table_sets: dict[str, LoadedSet]) -> Scorer:
    return table_sets["2027.1"].scorer()


def _queue(conn: redis.Redis, name: str) -> list[str]:
    return [i.decode() for i in conn.lrange(keys.queue_key(name), 0, -1)]  # type: ignore[union-attr]


def _rebuild_keys(conn: redis.Redis) -> list[bytes]:
    return sorted(conn.scan_iter(match=f"{keys.PREFIX}:rebuild:*"))


def _drain(conn: redis.Redis, names: list[str]) -> list[tuple[str, str]]:
    """Hand out everything waiting in ``names``: ``(id, priority)`` in hand-out order."""
    out = []
    while isinstance(got := pop(conn, names, [], "w", now_ms(), 60_000), Leased):
        out.append((got.id, got.priority))
        assert finish(conn, got.id, "w", Outcome.COMPLETED, now_ms(), 60)
    return out


def test_items_in_hand_get_the_new_decision_keep_their_lease_and_return_to_the_new_queue(
    store: ItemStore, enqueue: Enqueue, new_scorer: Scorer, redis_client: redis.Redis
) -> None:
    released, expired = enqueue(MOVES_UP), enqueue(MOVES_UP)
    worker = pop(redis_client, [P3], [], "w1", now_ms(), 60_000, ItemState.STARTED)
    person = pop(redis_client, [P3], [], "ann#1", now_ms(), 500, ItemState.CLAIMED)
    assert isinstance(worker, Leased) and isinstance(person, Leased)
    assert (worker.id, person.id) == (released.id, expired.id)

    assert rescore_all(redis_client, new_scorer) == 0  # nothing waiting moved

    for item_id, holder, state in (
        (released.id, "w1", "started"),
        (expired.id, "ann#1", "claimed"),
    ):
        held = store.get(item_id)
        assert (held.state.value, held.lease and held.lease.holder) == (state, holder)
        assert (held.priority, held.queue, held.decision.table_version) == ("P2", P2, "2027.1")
        assert held.history[-1].event == "rescored"
        assert "P3/service_desk -> P2/service_desk" in held.history[-1].detail
    assert redis_client.zscore(keys.started_key("service_desk"), released.id) is not None
    assert finish(redis_client, released.id, "w1", Outcome.RELEASED, now_ms(), 60)
    assert [r.id for r in reap(redis_client, now_ms() + 1000, 10, 60)] == [expired.id]
    assert sorted(_queue(redis_client, P2)) == sorted([released.id, expired.id])
    assert _queue(redis_client, P3) == []
    assert [p for _, p in _drain(redis_client, [P2, P3])] == ["P2", "P2"]


def test_moved_items_keep_their_seniority_and_old_queues_keep_no_trace(
    store: ItemStore, enqueue: Enqueue, new_scorer: Scorer, redis_client: redis.Redis
) -> None:
    items = [enqueue(MOVES_UP if n % 2 else STAYS_P2) for n in range(40)]
    down = [enqueue(MOVES_DOWN) for _ in range(5)]
    late_p5 = enqueue(Call(type="incident", impact="user", urgency="low"))
    moved = rescore_all(redis_client, new_scorer)
    assert moved == 20 + 5
    assert _queue(redis_client, P2) == [i.id for i in items]  # interleaved by enqueue time
    assert _queue(redis_client, P5) == [*(i.id for i in down), late_p5.id]
    assert _queue(redis_client, P3) == _queue(redis_client, P4) == []
    assert redis_client.zcard(keys.due_key(P2)) == 40
    assert redis_client.zcard(keys.due_key(P3)) == 0
    assert _rebuild_keys(redis_client) == []
    assert store.get(items[0].id).decision.table_version == "2027.1"  # new P2 targets
    assert rescore_all(redis_client, new_scorer) == 0  # a second run changes nothing
    assert [h.event for h in store.get(items[1].id).history] == ["enqueued", "rescored"]


def test_a_rebuild_keeps_what_workers_and_callers_do_meanwhile(
    store: ItemStore, enqueue: Enqueue, new_scorer: Scorer, redis_client: redis.Redis
) -> None:
    """Adds at both ends and hand-outs between the rebuild's steps all land where they should."""
    items = [enqueue(MOVES_UP if n % 2 else STAYS_P2) for n in range(10)]
    held = pop(redis_client, [P2], [], "w2", now_ms(), 60_000)
    assert isinstance(held, Leased) and held.id == items[0].id
    during: dict[str, str] = {}
    calls = 0

    def meanwhile() -> None:
        # Fence calls before the rebuild's writes: act between them, as live traffic would.
        nonlocal calls
        calls += 1
        if redis_client.exists(keys.rebuild_lock_key(P2)) and "new" not in during:
            during["new"] = enqueue(STAYS_P2).id
            taken = pop(redis_client, [P2], [], "w3", now_ms(), 60_000)
            assert isinstance(taken, Leased)
            during["taken"] = taken.id
            assert finish(redis_client, held.id, "w2", Outcome.RELEASED, now_ms(), 60)

    rescore_all(redis_client, new_scorer, fence=meanwhile)
    assert calls > 0 and set(during) == {"new", "taken"}
    assert during["taken"] == items[2].id  # the head (items[1] moves in later by seniority)
    # The released item first (front), then seniority, the new item last; each id once.
    expected = [held.id, *(i.id for i in items[1:] if i.id != during["taken"]), during["new"]]
    assert _queue(redis_client, P2) == expected
    assert [i for i, _ in _drain(redis_client, [P2, P3])] == expected
    assert _rebuild_keys(redis_client) == []


def test_a_rescore_that_dies_mid_way_loses_nothing_and_the_next_one_finishes_the_order(
    store: ItemStore, enqueue: Enqueue, new_scorer: Scorer, redis_client: redis.Redis
) -> None:
    items = [enqueue(MOVES_UP if n % 2 else STAYS_P2) for n in range(12)]

    def die_at_rebuild() -> None:
        if redis_client.exists(keys.rebuild_lock_key(P2)) or redis_client.exists(
            keys.rebuild_lock_key(P3)
        ):
            raise RuntimeError("replica killed")

    with pytest.raises(RuntimeError, match="replica killed"):
        rescore_all(redis_client, new_scorer, fence=die_at_rebuild)
    # Every item is still handed out once, as a P2; the stale P3 entries are skipped.
    assert len(_queue(redis_client, P3)) == 6
    assert redis_client.smembers(keys.REBUILD_PENDING) == {P2.encode(), P3.encode()}
    for lock in (keys.rebuild_lock_key(P2), keys.rebuild_lock_key(P3)):
        redis_client.delete(lock)  # what its expiry does
    assert rescore_all(redis_client, new_scorer) == 0
    assert _queue(redis_client, P2) == [i.id for i in items]
    assert _queue(redis_client, P3) == []
    assert _drain(redis_client, [P2, P3]) == [(i.id, "P2") for i in items]
    assert _rebuild_keys(redis_client) == []


def test_after_a_rescore_died_every_item_is_still_handed_out_once_at_its_new_priority(
    enqueue: Enqueue, new_scorer: Scorer, redis_client: redis.Redis
) -> None:
    items = [enqueue(MOVES_UP if n % 2 else STAYS_P2) for n in range(12)]

    def die_at_rebuild() -> None:
        if redis_client.scard(keys.REBUILD_PENDING):
            raise RuntimeError("replica killed")

    with pytest.raises(RuntimeError, match="replica killed"):
        rescore_all(redis_client, new_scorer, fence=die_at_rebuild)
    got = _drain(redis_client, [P2, P3])
    assert sorted(i for i, _ in got) == sorted(i.id for i in items)
    assert {p for _, p in got} == {"P2"}
