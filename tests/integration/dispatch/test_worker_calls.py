"""What a worker costs Redis per item: one script call from one item to the next (the finish
of the item in hand, the fold of a completed one and the hand-out of the next), and what that
call leaves behind (the ended item folded, RQ's worker state, strict priority)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import redis

from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.config import DispatchConfig
from service.dispatch.items import Item, ItemState
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue
from tests.support.processes import wait_for
from worker.handlers import Delivery
from worker.runner import Worker

# Long lease, heartbeat and reaper: their own calls stay out of the counts below.
QUIET = DispatchConfig(lease_seconds=600, reaper_seconds=600)


def _calls(conn: redis.Redis) -> dict[str, int]:
    stats = conn.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def test_a_worker_goes_from_item_to_item_in_one_script_call_and_folds_each_on_the_way(
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    calls_by_priority: dict[str, Call],
    redis_client: redis.Redis,
) -> None:
    # Mixed levels, lowest first: the hand-out order must still be strictly by priority.
    seen: list[str] = []

    def worker() -> Worker:
        handlers = {"service_desk": lambda d: seen.append(d.id)}
        return Worker(redis_client, base_set.tables, ["service_desk"], QUIET, handlers=handlers)

    enqueue(calls_by_priority["P3"])
    assert worker().run(burst=True) == 1  # the scripts loaded (a first EVALSHA fails NOSCRIPT)
    items = [enqueue(calls_by_priority[p]) for p in ("P5", "P3", "P5", "P1", "P4", "P2") * 4]
    seen.clear()
    redis_client.config_resetstat()
    assert worker().run(burst=True) == len(items)
    calls = _calls(redis_client)
    by_level = sorted(items, key=lambda i: (i.priority, i.id))
    assert seen == [i.id for i in by_level]
    # The first hand-out, one call per item (finish + next hand-out; the last finds none), and
    # the reaper's one run at start. Before: hand-out, finish, fold read and fold call per item.
    assert calls["evalsha"] <= len(items) + 2, calls
    assert "hgetall" not in calls  # no read-back to fold a completed item
    for item in items:
        assert redis_client.hexists(keys.job_key(item.id), "usm_record")
        assert not redis_client.exists(keys.history_key(item.id))
        assert store.get(item.id).state is ItemState.COMPLETED


def test_an_item_folded_by_its_worker_reads_back_as_it_was_plus_its_completion(
    base_set: LoadedSet, store: ItemStore, enqueue: Enqueue, redis_client: redis.Redis
) -> None:
    first = enqueue(Call(type="incident", impact="user", urgency="low"))
    second = enqueue(Call(type="incident", impact="user", urgency="low"))
    during: dict[str, Item] = {}
    worker = Worker(
        redis_client,
        base_set.tables,
        ["service_desk"],
        QUIET,
        name="folder",
        handlers={"service_desk": lambda d: during.setdefault(d.id, store.get(d.id))},
    )
    assert worker.run(burst=True) == 2
    for item in (first, second):
        held, done = during[item.id], store.get(item.id)
        assert held.state is ItemState.STARTED and done.state is ItemState.COMPLETED
        assert done.lease is None
        assert done.history[:-1] == held.history
        last = done.history[-1]
        assert (last.event, last.state, last.holder) == ("completed", "completed", "folder")
        for field in ("call", "decision", "payload", "source", "external_id", "deliveries"):
            assert getattr(done, field) == getattr(held, field), field
        assert (done.team, done.priority, done.queue) == (held.team, held.priority, held.queue)


def test_an_item_rescored_while_in_hand_is_folded_with_its_new_decision(
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    calls_by_priority: dict[str, Call],
    scorer: object,
    redis_client: redis.Redis,
) -> None:
    item = enqueue(calls_by_priority["P5"])
    urgent = calls_by_priority["P2"]

    def rescore_in_hand(d: Delivery) -> None:
        now = datetime.now(UTC)
        store.rescore(d.id, base_set.scorer().score(urgent, now), now, urgent, "escalated")

    worker = Worker(
        redis_client,
        base_set.tables,
        ["service_desk"],
        QUIET,
        handlers={"service_desk": rescore_in_hand},
    )
    assert worker.run(burst=True) == 1
    done = store.get(item.id)
    assert done.state is ItemState.COMPLETED
    assert [e.event for e in done.history] == ["enqueued", "started", "rescored", "completed"]
    assert done.call == urgent and done.priority == "P2" and done.decision.priority.name == "P2"
    assert redis_client.hexists(keys.job_key(item.id), "usm_record")
    assert not redis_client.exists(keys.history_key(item.id))


def test_rq_sees_the_worker_busy_while_it_handles_and_idle_once_the_queues_are_empty(
    base_set: LoadedSet, enqueue: Enqueue, redis_client: redis.Redis
) -> None:
    release = threading.Event()
    worker = Worker(
        redis_client,
        base_set.tables,
        ["service_desk"],
        QUIET,
        handlers={"service_desk": lambda d: release.wait(60)},
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:

        def state() -> tuple[str, str]:
            got = redis_client.hmget(worker.rq_key, "state", "current_job")
            return tuple(v.decode() if v else "" for v in got)  # type: ignore[return-value]

        first = enqueue(Call(type="incident", impact="user", urgency="low"))
        second = enqueue(Call(type="incident", impact="user", urgency="low"))
        wait_for("the worker busy with the first item", lambda: state() == ("busy", first.id))
        release.set()
        wait_for("the worker idle after both", lambda: state() == ("idle", ""))
        counted = redis_client.hget(worker.rq_key, "successful_job_count")
        assert counted == b"2"
        assert second.id != first.id
    finally:
        release.set()
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
