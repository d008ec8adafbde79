"""The target watch on a real Redis: a target that passes unmet is written back, once.

The tool is a real local HTTP server (the outbox tests' receiver); items live in the real item
store. Targets are made to pass within seconds by reporting the call just long enough ago.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import redis

from service.core.calls import Call
from service.core.decision import Decision
from service.core.sources import Source
from service.core.tables import TableSet
from service.dispatch import keys as item_keys
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from service.sources import keys
from service.sources.outbox import Outbox, Sender
from service.sources.watch import SHOW_SCRIPT, TargetWatch, watch_targets
from tests.integration.sources.outbox_support import Receiver, rt_tables
from tests.support.processes import wait_for


def _rt(tables: TableSet) -> Source:
    return next(s for s in tables.sources.source if s.name == "rt")


def _due_in(default_set: LoadedSet, seconds: float) -> tuple[Call, Decision]:
    """A P1 call reported so that its response target passes ``seconds`` from now."""
    now = datetime.now(UTC)
    probe = Call(type="incident", impact="organisation", urgency="immediate", reported_at=now)
    window = default_set.scorer().score(probe, now).response_by - now
    call = msgspec.structs.replace(probe, reported_at=now - window + timedelta(seconds=seconds))
    return call, default_set.scorer().score(call, now)


def _parts(
    redis_client: redis.Redis, outbox: Outbox, tables: TableSet
) -> tuple[ItemStore, TargetWatch, Sender]:
    store = ItemStore(redis_client)
    watch = TargetWatch(redis_client, store, lambda: tables)
    return store, watch, Sender(outbox, lambda: tables, items=store)


def test_a_response_target_that_passes_while_the_item_waits_is_written_back_once(
    redis_client: redis.Redis, outbox: Outbox, receiver: Receiver, default_set: LoadedSet
) -> None:
    tables = rt_tables(default_set, receiver.url)
    store, watch, sender = _parts(redis_client, outbox, tables)
    call, decision = _due_in(default_set, 2.0)
    now = datetime.now(UTC)
    item, _ = store.enqueue(call, decision, "rt", "21", None, now)
    assert watch_targets(redis_client, _rt(tables), "21", decision, now)
    assert watch.run_once() == 0  # not due yet: nothing is read

    def tick() -> list[object]:
        watch.run_once()
        sender.run_once()
        return receiver.requests

    wait_for("the missed response target written back", tick)
    ((method, path, _, body),) = receiver.requests
    assert (method, path) == ("PUT", "/REST/2.0/ticket/21")
    assert msgspec.json.decode(body)["CustomFields"] == {
        "USM Priority": "P1",
        "USM Missed": "response",
    }
    # The note moved on to the resolve target; checking again early changes nothing.
    score = redis_client.zscore(keys.TARGETS, "rt:21")
    assert score == int(decision.resolve_by.timestamp() * 1000)
    redis_client.zadd(keys.TARGETS, {"rt:21": 0})
    assert watch.run_once() == 1
    assert sender.run_once() == 0
    assert len(receiver.requests) == 1
    assert store.get(item.id).decision == decision  # the item itself is untouched


def test_an_item_that_ended_drops_its_note_and_nothing_is_sent(
    redis_client: redis.Redis, outbox: Outbox, receiver: Receiver, default_set: LoadedSet
) -> None:
    tables = rt_tables(default_set, receiver.url)
    store, watch, sender = _parts(redis_client, outbox, tables)
    call, decision = _due_in(default_set, 0.5)
    now = datetime.now(UTC)
    item, _ = store.enqueue(call, decision, "rt", "22", None, now)
    watch_targets(redis_client, _rt(tables), "22", decision, now)
    store.cancel(item.id, now, reason="resolved in rt (ticket 22)", completed=True)
    wait_for("the note to fall due and go", lambda: watch.run_once() == 1)
    assert redis_client.zscore(keys.TARGETS, "rt:22") is None
    assert sender.run_once() == 0 and receiver.requests == []


def test_a_target_already_passed_is_the_deliverers_and_not_noted(
    redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    tables = rt_tables(default_set, "http://127.0.0.1:1")
    call, decision = _due_in(default_set, -1.0)
    late = msgspec.structs.replace(call, reported_at=datetime.now(UTC) - timedelta(days=30))
    old = default_set.scorer().score(late, datetime.now(UTC))
    assert not watch_targets(redis_client, _rt(tables), "23", old, datetime.now(UTC))
    assert redis_client.zscore(keys.TARGETS, "rt:23") is None
    # A response target passed but a resolve target ahead: noted for the resolve target.
    assert watch_targets(redis_client, _rt(tables), "23", decision, datetime.now(UTC))
    assert redis_client.zscore(keys.TARGETS, "rt:23") == int(decision.resolve_by.timestamp() * 1000)


def test_the_watch_never_writes_a_decision_older_than_the_items(
    redis_client: redis.Redis, outbox: Outbox, default_set: LoadedSet
) -> None:
    """The watch read the item, then a re-score landed: its older decision is not queued."""
    store = ItemStore(redis_client)
    call, decision = _due_in(default_set, -1.0)
    now = datetime.now(UTC)
    item, _ = store.enqueue(call, decision, "rt", "24", None, now)
    found = store.find_with_revision("rt", "24")
    assert found is not None
    read, revision = found
    newer = default_set.scorer().score(msgspec.structs.replace(call, urgency="low"), now)
    store.rescore(item.id, newer, now, reason="changed in rt")
    show = redis_client.register_script(SHOW_SCRIPT)
    args = [
        "rt:24",
        str(revision),
        msgspec.json.encode(read.decision),
        "response",
        int(now.timestamp() * 1000),
        item.id,
    ]
    entry = [item_keys.job_key(item.id), keys.entry_key("rt:24"), keys.DUE, keys.DEAD]
    assert show(keys=entry, args=args) == b"changed"
    assert outbox.claim(now.timestamp() + 1, 60) == []
    # With the revision read now, the item's current decision is queued.
    current = store.find_with_revision("rt", "24")
    assert current is not None
    args[1:3] = [str(current[1]), msgspec.json.encode(current[0].decision)]
    assert show(keys=entry, args=args) == b"queued"
    (claimed,) = outbox.claim(now.timestamp() + 1, 60)
    assert claimed.decision == newer
