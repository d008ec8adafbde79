"""A write-back on its way holds its ticket: a newer revision is never sent before it arrives.

The claim's lease (60 s) is shorter than a source's longest request timeout (120 s), and a
request can outlast its timeout (the timeout bounds each wait on the socket; a process stalls).
These tests hold an older revision's request at a real local HTTP receiver, or in a stalled
transport, past the claim's lease and check that another sender cannot claim the ticket and
send the newer revision meanwhile; and that a sender that lost its claim reports nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from service.files.loader import LoadedSet
from service.sources import keys
from service.sources.outbox import Outbox, Revision, Sender, send
from service.sources.writeback.base import HttpRequest
from tests.integration.sources.outbox_support import Receiver, decision, rt_item, rt_tables
from tests.support.processes import wait_for


@pytest.fixture
def tool() -> Iterator[Receiver]:
    """A tool that holds the first write-back until released."""
    t = Receiver(hold_first=True)
    yield t
    t.stop()


def _in_background(sender: Sender) -> threading.Thread:
    thread = threading.Thread(target=sender.run_once, daemon=True)
    thread.start()
    return thread


def test_a_request_slower_than_the_claims_lease_keeps_the_ticket_until_it_returns(
    outbox: Outbox, tool: Receiver, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    """Issue 10: the sender's lease (here 50 ms) was shorter than the request's timeout (10 s):
    once it ran out, another sender sent N+1 while N was still on its way, and the tool applied
    N last."""
    tables = rt_tables(default_set, tool.url, timeout=10.0)
    older, newer = decision(default_set, "user"), decision(default_set, "organisation")
    assert older.priority != newer.priority
    item = rt_item(redis_client, default_set, "31").id
    outbox.submit("rt", "31", older, datetime.now(UTC), Revision(item, 1))
    started = time.time()
    slow = _in_background(Sender(outbox, lambda: tables, lease=0.05))
    assert tool.arrived.wait(30), "the older revision's request never reached the tool"
    wait_for("the claim's own lease to run out", lambda: time.time() > started + 0.1)
    outbox.submit("rt", "31", newer, datetime.now(UTC), Revision(item, 2))
    other = Sender(outbox, lambda: tables)
    assert other.run_once() == 0  # N is still on its way: the ticket is not free
    tool.release.set()
    slow.join(30)
    wait_for("N+1 to be sent", lambda: other.run_once() == 1)
    assert tool.priorities() == [older.priority.name, newer.priority.name]
    assert outbox.pending() == (0, None)


def test_a_request_that_outlasts_its_timeout_still_keeps_the_ticket(
    outbox: Outbox, tool: Receiver, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    """A stalled sender (its transport ignores the 0.2 s timeout) is renewed while it waits."""
    tables = rt_tables(default_set, tool.url, timeout=0.2)
    older, newer = decision(default_set, "user"), decision(default_set, "organisation")
    item = rt_item(redis_client, default_set, "32").id
    outbox.submit("rt", "32", older, datetime.now(UTC), Revision(item, 1))
    stalled = threading.Event()
    resume = threading.Event()

    def stalling(request: HttpRequest, timeout: float) -> tuple[int, bytes]:
        stalled.set()
        resume.wait(30)
        tool.arrived.set()  # not held at the tool: the stall was on this side
        return send(request, timeout)

    started = time.time()
    slow = _in_background(Sender(outbox, lambda: tables, transport=stalling, margin=0.1))
    assert stalled.wait(30)
    # Well past the claim's lease plus the request's timeout and margin (0.3 s).
    wait_for("the request's own lease to run out", lambda: time.time() > started + 1.0)
    outbox.submit("rt", "32", newer, datetime.now(UTC), Revision(item, 2))
    other = Sender(outbox, lambda: tables)
    assert other.run_once() == 0
    resume.set()
    slow.join(30)
    wait_for("N+1 to be sent", lambda: other.run_once() == 1)
    assert tool.priorities() == [older.priority.name, newer.priority.name]


def test_a_sender_that_lost_its_claim_reports_neither_done_nor_failed(
    outbox: Outbox, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    decided = decision(default_set, "user")
    item = rt_item(redis_client, default_set, "33").id
    outbox.submit("rt", "33", decided, datetime.now(UTC), Revision(item, 1))
    now = time.time()
    (lapsed,) = outbox.claim(now, 0.001)
    (holder,) = outbox.claim(now + 1, 60)
    assert lapsed.token != holder.token
    entry = keys.entry_key("rt:33")
    claimed_until = redis_client.hget(entry, "claimed_until")
    assert not outbox.done(lapsed, now + 2)
    assert outbox.fail(lapsed, now + 2, None, "timed out") == "lost"
    assert redis_client.hmget(entry, "state", "claimed_until", "attempts") == [
        b"pending",
        claimed_until,
        b"0",
    ]
    assert not outbox.still_newest(lapsed, now + 2, 10)
    assert outbox.done(holder, now + 2)
    assert redis_client.hget(entry, "state") == b"done"
