"""The write-back outbox and sender on a real Redis, delivering to a real local HTTP receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import redis

from service.core.calls import Call
from service.core.sources import WriteBackSettings
from service.core.tables import TableSet
from service.dispatch import keys as item_keys
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from service.sources.outbox import Outbox, Revision, Sender
from service.sources.writeback.rt import ADAPTER
from tests.integration.sources.outbox_support import Receiver, decision, rt_item, rt_tables
from tests.support.processes import wait_for


def test_a_decision_is_written_as_rt_rest2_put(
    outbox: Outbox, receiver: Receiver, default_set: LoadedSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USM_SOURCE_RT_TOKEN", "usm-svc:svc-secret-1")
    tables = rt_tables(default_set, receiver.url)
    outbox.submit("rt", "7", decision(default_set, "group"), datetime.now(UTC), None)
    assert Sender(outbox, lambda: tables).run_once() == 1
    ((method, path, headers, body),) = receiver.requests
    assert (method, path) == ("PUT", "/REST/2.0/ticket/7")
    assert headers["Authorization"] == "Basic dXNtLXN2YzpzdmMtc2VjcmV0LTE="
    assert msgspec.json.decode(body) == {
        "Due": "2026-03-04 09:00:00",
        "Priority": 50,
        "CustomFields": {"USM Priority": "P3"},
    }
    assert outbox.pending() == (0, None)


def test_a_failing_tool_is_retried_then_dead_lettered(
    outbox: Outbox, receiver: Receiver, default_set: LoadedSet
) -> None:
    receiver.status = 503
    tables = rt_tables(default_set, receiver.url, retries=2)
    outbox.submit("rt", "8", decision(default_set, "group"), datetime.now(UTC), None)
    sender = Sender(outbox, lambda: tables)
    for _ in range(3):
        assert sender.run_once() == 1  # backoff 0: due again at once
    assert sender.run_once() == 0
    assert len(receiver.requests) == 3
    assert outbox.dead() == ["rt:8"]
    receiver.status = 200
    assert outbox.requeue_dead("rt:8", datetime.now(UTC).timestamp())
    assert sender.run_once() == 1
    assert outbox.dead() == []


def test_an_older_decision_of_a_ticket_without_item_never_overwrites_a_newer_one(
    outbox: Outbox, default_set: LoadedSet
) -> None:
    now = datetime.now(UTC)
    newer, older = decision(default_set, "organisation"), decision(default_set, "user")
    assert outbox.submit("rt", "9", newer, now, None) == 1
    assert outbox.submit("rt", "9", older, now - timedelta(seconds=5), None) == 0
    (claimed,) = outbox.claim(datetime.now(UTC).timestamp(), 60)
    assert claimed.decision == newer


def test_a_newer_decision_during_a_send_is_sent_after_it(
    outbox: Outbox, receiver: Receiver, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    tables = rt_tables(default_set, receiver.url)
    item = rt_item(redis_client, default_set, "10").id
    first, second = decision(default_set, "user"), decision(default_set, "organisation")
    outbox.submit("rt", "10", first, datetime.now(UTC), Revision(item, 1))
    (claimed,) = outbox.claim(datetime.now(UTC).timestamp(), 60)
    # While the first is on its way, a newer decision arrives: it must wait for the claim.
    outbox.submit("rt", "10", second, datetime.now(UTC), Revision(item, 2))
    assert outbox.claim(datetime.now(UTC).timestamp(), 60) == []
    assert not outbox.done(claimed, datetime.now(UTC).timestamp())
    assert Sender(outbox, lambda: tables).run_once() == 1
    body = msgspec.json.decode(receiver.requests[-1][3])
    assert body["CustomFields"] == {"USM Priority": second.priority.name}


def test_a_delayed_write_back_of_an_older_revision_never_overwrites_a_newer_one(
    outbox: Outbox, receiver: Receiver, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    """Issue 10: ordered by the item's revision, not by when the write-back was submitted."""
    tables = rt_tables(default_set, receiver.url)
    store = ItemStore(redis_client)
    now = datetime.now(UTC)
    call = Call(type="incident", impact="user", urgency="high")
    item, _ = store.enqueue(call, decision(default_set, "user"), "rt", "21", None, now)
    older, newer = decision(default_set, "group"), decision(default_set, "organisation")
    assert older.priority != newer.priority
    _, _, rev_n = store.rescore_revised(item.id, older, now, reason="re-score N")
    _, _, rev_n1 = store.rescore_revised(item.id, newer, now, reason="re-score N+1")
    assert (rev_n, rev_n1) == (1, 2)
    assert redis_client.hget(item_keys.job_key(item.id), "usm_rev") == b"2"
    # Revision N+1's write-back arrives first; N's is delayed (a slow request, a retried
    # submit) and arrives later, so by submit time it would look newer.
    first = outbox.submit("rt", "21", newer, datetime.now(UTC), Revision(item.id, rev_n1))
    later = datetime.now(UTC) + timedelta(seconds=5)
    delayed = outbox.submit("rt", "21", older, later, Revision(item.id, rev_n))
    sender = Sender(outbox, lambda: tables)
    wait_for("the outbox to drain", lambda: sender.run_once() == 0)
    # Once N+1 is sent, N arriving even later is still dropped: the tool keeps N+1.
    later += timedelta(seconds=5)
    after_sent = outbox.submit("rt", "21", older, later, Revision(item.id, rev_n))
    wait_for("the outbox to drain", lambda: sender.run_once() == 0)
    assert receiver.priorities() == [newer.priority.name]
    assert (first > 0, delayed, after_sent) == (True, 0, 0)
    # A re-opened ticket's new item (a later id) starts at revision 0 and is newer still.
    store.cancel(item.id, now, reason="closed in rt")
    reopened, created = store.enqueue(call, older, "rt", "21", None, now, replaces=item.id)
    assert created and reopened.id > item.id
    assert outbox.submit("rt", "21", older, later, Revision(reopened.id, 0)) > 0
    assert sender.run_once() == 1
    assert receiver.priorities() == [newer.priority.name, older.priority.name]


def test_a_sender_whose_claim_was_superseded_sends_nothing(
    outbox: Outbox, receiver: Receiver, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    """A slow sender whose lease ran out while another sent revision N+1 must not then send N."""
    tables = rt_tables(default_set, receiver.url)
    item = rt_item(redis_client, default_set, "22").id
    older, newer = decision(default_set, "user"), decision(default_set, "organisation")
    outbox.submit("rt", "22", older, datetime.now(UTC), Revision(item, 5))
    fast = Sender(outbox, lambda: tables)
    interleaved: list[bool] = []

    def tables_of_the_slow_sender() -> TableSet:
        # Called after the slow sender claimed N and before it sends: meanwhile its lease runs
        # out, N+1 is submitted, and the other sender claims and sends N+1.
        if not interleaved:
            interleaved.append(True)
            outbox.submit("rt", "22", newer, datetime.now(UTC), Revision(item, 6))
            wait_for("the other sender to send N+1", lambda: fast.run_once() == 1)
        return tables

    slow = Sender(outbox, tables_of_the_slow_sender, lease=0.001)
    assert slow.run_once() == 1
    assert interleaved
    assert receiver.priorities() == [newer.priority.name]
    assert outbox.pending() == (0, None)


def test_a_sender_that_died_leaves_a_claim_that_falls_due_again(
    outbox: Outbox, default_set: LoadedSet
) -> None:
    outbox.submit("rt", "11", decision(default_set, "user"), datetime.now(UTC), None)
    now = datetime.now(UTC).timestamp()
    assert len(outbox.claim(now, 0.2)) == 1
    assert outbox.claim(now + 0.1, 0.2) == []
    assert len(outbox.claim(now + 0.3, 0.2)) == 1


def test_settings_without_a_priority_map_write_no_numeric_priority(
    default_set: LoadedSet,
) -> None:
    settings = WriteBackSettings(adapter="rt", base_url="http://127.0.0.1:1")
    fields = ADAPTER.answer(decision(default_set, "user"), settings)
    assert "Priority" not in fields
