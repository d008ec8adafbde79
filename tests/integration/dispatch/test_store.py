"""Items in a real Redis: idempotent enqueue, reads, re-score moves, cancel, RQ compatibility."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import redis
from rq.job import Job
from rq.queue import Queue

from service.core.calls import Call
from service.core.scoring import Scorer
from service.dispatch import keys
from service.dispatch.items import ItemState, id_time_ms, new_item_id, now_ms
from service.dispatch.store import ItemStore
from service.errors import InvalidCall, ItemConflict, NotFound
from tests.integration.dispatch.conftest import Enqueue


def test_concurrent_retries_of_one_enqueue_create_exactly_one_item(
    store: ItemStore, scorer: Scorer, redis_client: redis.Redis
) -> None:
    call = Call(type="incident", impact="department", urgency="high")
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(16)

    def retry() -> None:
        barrier.wait()
        now = datetime.now(UTC)
        item, created = store.enqueue(call, scorer.score(call, now), "snow", "INC42", None, now)
        results.append((item.id, created))

    threads = [threading.Thread(target=retry) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({item_id for item_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    item = store.get(results[0][0])
    assert redis_client.llen(keys.queue_key(item.queue)) == 1
    assert [h.event for h in item.history] == ["enqueued"]


def test_enqueue_retry_returns_the_same_item_with_created_false(
    store: ItemStore, scorer: Scorer
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    now = datetime.now(UTC)
    first, created = store.enqueue(call, scorer.score(call, now), "jira", "J-1", {"a": 1}, now)
    again, created_again = store.enqueue(call, scorer.score(call, now), "jira", "J-1", None, now)
    assert created and not created_again
    assert again.id == first.id and again.payload == {"a": 1}


def test_same_external_id_from_another_source_is_another_item(
    store: ItemStore, scorer: Scorer
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    now = datetime.now(UTC)
    a, _ = store.enqueue(call, scorer.score(call, now), "jira", "X-1", None, now)
    b, _ = store.enqueue(call, scorer.score(call, now), "glpi", "X-1", None, now)
    assert a.id != b.id


def test_payload_larger_than_the_limit_is_refused_naming_the_field(
    store: ItemStore, scorer: Scorer
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    now = datetime.now(UTC)
    big = {"text": "x" * (store.config.max_payload_bytes + 1)}
    with pytest.raises(InvalidCall) as err:
        store.enqueue(call, scorer.score(call, now), "s", "big", big, now)
    assert str(err.value) == (
        f"payload is {store.config.max_payload_bytes + 12} bytes encoded; "
        f"at most {store.config.max_payload_bytes} allowed - at `$.payload`"
    )


def test_an_item_is_an_rq_job_in_an_rq_queue(store: ItemStore, enqueue: Enqueue) -> None:
    item = enqueue(Call(type="incident", impact="organisation", urgency="immediate"))
    job = Job.fetch(item.id, connection=store.conn)
    assert job.origin == "usm.service_desk.P1"
    assert job.get_status() == "queued"
    assert job.func_name == "worker.tasks.handle_item"
    assert Queue("usm.service_desk.P1", connection=store.conn).job_ids == [item.id]
    assert "usm.service_desk.P1" in [q.name for q in Queue.all(connection=store.conn)]


def test_unknown_item_is_not_found_naming_it(store: ItemStore) -> None:
    with pytest.raises(NotFound, match="unknown item '0123456789abcdef0123456789abcdef'"):
        store.get("0123456789abcdef0123456789abcdef")
    with pytest.raises(NotFound, match="unknown item 'not-an-id'"):
        store.get("not-an-id")


def test_rescore_moves_a_waiting_item_to_its_new_queue_and_keeps_history(
    store: ItemStore, scorer: Scorer, enqueue: Enqueue, redis_client: redis.Redis
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    item = enqueue(call)
    now = datetime.now(UTC)
    raised = Call(type="incident", impact="organisation", urgency="immediate")
    moved, did_move = store.rescore(item.id, scorer.score(raised, now), now, call=raised)
    assert did_move
    assert (item.priority, moved.priority) == ("P5", "P1")
    assert moved.queue == "usm.service_desk.P1" and moved.call == raised
    assert redis_client.lrange(keys.queue_key("usm.service_desk.P5"), 0, -1) == []
    assert redis_client.lrange(keys.queue_key("usm.service_desk.P1"), 0, -1) == [item.id.encode()]
    assert [h.event for h in moved.history] == ["enqueued", "rescored"]
    assert [h.decision.priority.name for h in moved.history if h.decision] == ["P5", "P1"]


def test_a_moved_item_takes_its_place_by_original_enqueue_time(
    store: ItemStore, scorer: Scorer, enqueue: Enqueue, redis_client: redis.Redis
) -> None:
    low = Call(type="incident", impact="user", urgency="low")
    top = Call(type="incident", impact="organisation", urgency="immediate")
    before = enqueue(top)
    mover = enqueue(low)
    after = enqueue(top)
    now = datetime.now(UTC)
    store.rescore(mover.id, scorer.score(top, now), now, call=top)
    order = [i.decode() for i in redis_client.lrange(keys.queue_key("usm.service_desk.P1"), 0, -1)]
    assert order == [before.id, mover.id, after.id]


def test_cancel_removes_the_item_from_its_queue(
    store: ItemStore, enqueue: Enqueue, redis_client: redis.Redis
) -> None:
    item = enqueue(Call(type="incident", impact="group", urgency="normal"))
    cancelled = store.cancel(item.id, datetime.now(UTC), reason="duplicate")
    assert cancelled.state is ItemState.CANCELLED
    assert cancelled.history[-1].detail == "duplicate"
    assert redis_client.llen(keys.queue_key(item.queue)) == 0
    assert redis_client.zcard(keys.due_key(item.queue)) == 0
    with pytest.raises(ItemConflict, match=f"item '{item.id}' is already cancelled"):
        store.cancel(item.id, datetime.now(UTC))


def test_a_cancelled_item_cannot_be_rescored(
    store: ItemStore, scorer: Scorer, enqueue: Enqueue
) -> None:
    call = Call(type="incident", impact="group", urgency="normal")
    item = enqueue(call)
    store.cancel(item.id, datetime.now(UTC))
    now = datetime.now(UTC)
    with pytest.raises(ItemConflict, match="is cancelled; it cannot change"):
        store.rescore(item.id, scorer.score(call, now), now)


def test_rescoring_an_item_in_hand_keeps_it_with_its_holder_and_records_its_state(
    store: ItemStore, scorer: Scorer, enqueue: Enqueue, redis_client: redis.Redis
) -> None:
    from service.dispatch.items import now_ms
    from service.dispatch.leases import Outcome, finish, pop

    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    assert pop(redis_client, [item.queue], [], "w1", now_ms(), 60_000) is not None
    now = datetime.now(UTC)
    raised = Call(type="incident", impact="organisation", urgency="immediate")
    after, moved = store.rescore(item.id, scorer.score(raised, now), now, call=raised)
    assert not moved
    assert after.state is ItemState.STARTED and after.lease and after.lease.holder == "w1"
    assert (after.priority, after.decision.priority.name) == ("P1", "P1")
    assert (after.history[-1].event, after.history[-1].state) == ("rescored", ItemState.STARTED)
    # Given back, it goes to the queue of its new priority.
    assert finish(redis_client, item.id, "w1", Outcome.RELEASED, now_ms(), 60)
    assert store.waiting_ids(["usm.service_desk.P1"], 10) == [item.id]
    assert store.waiting_ids([item.queue], 10) == []


def test_ids_made_in_the_same_millisecond_still_sort_by_creation() -> None:
    before = now_ms()
    ids = [new_item_id() for _ in range(2000)]
    after = now_ms()
    assert ids == sorted(ids)
    assert len(set(ids)) == 2000
    assert len({id_time_ms(i) for i in ids}) < 2000  # several ids shared a millisecond
    assert all(before <= id_time_ms(i) <= after + 1 for i in ids)
