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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
import redis

from service.core.calls import Call
from service.core.decision import Decision
from service.core.tables import TableSet
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from service.sources import keys
from service.sources.outbox import Outbox, Revision, Sender, send
from service.sources.writeback.base import HttpRequest
from tests.support.processes import wait_for


def _item(conn: redis.Redis, base: LoadedSet, ticket_id: str) -> str:
    """A real item for the rt ticket: the outbox orders a ticket's decisions by its item."""
    call = Call(type="incident", impact="user", urgency="high")
    item, _ = ItemStore(conn).enqueue(
        call, _decision(base, "user"), "rt", ticket_id, None, datetime.now(UTC)
    )
    return item.id


class GatedTool:
    """A local HTTP server that holds the first request until released, and records the
    priority of each write-back in the order the tool *applied* them (after the hold)."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.applied: list[str] = []
        tool = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not tool.arrived.is_set():
                    tool.arrived.set()
                    tool.release.wait(30)
                tool.applied.append(msgspec.json.decode(body)["CustomFields"]["USM Priority"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def tool() -> Iterator[GatedTool]:
    t = GatedTool()
    yield t
    t.release.set()
    t.server.shutdown()


@pytest.fixture
def outbox(redis_client: redis.Redis) -> Outbox:
    for key in redis_client.scan_iter(f"{keys.ENTRY_PREFIX}*"):
        redis_client.delete(key)
    return Outbox(redis_client)


def _tables(base: LoadedSet, url: str, timeout: float) -> TableSet:
    rt = base.tables.sources.source[0]
    assert rt.writeback is not None
    wb = msgspec.structs.replace(rt.writeback, base_url=url, timeout=timeout, backoff=0.0)
    sources = msgspec.structs.replace(
        base.tables.sources, source=[msgspec.structs.replace(rt, writeback=wb)]
    )
    return msgspec.structs.replace(base.tables, sources=sources)


def _decision(base: LoadedSet, impact: str) -> Decision:
    call = Call(type="incident", impact=impact, urgency="high")
    return base.scorer().score(call, datetime(2026, 3, 2, 9, tzinfo=UTC))


def _in_background(sender: Sender) -> threading.Thread:
    thread = threading.Thread(target=sender.run_once, daemon=True)
    thread.start()
    return thread


def test_a_request_slower_than_the_claims_lease_keeps_the_ticket_until_it_returns(
    outbox: Outbox, tool: GatedTool, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    """Issue 10: the sender's lease (here 50 ms) was shorter than the request's timeout (10 s):
    once it ran out, another sender sent N+1 while N was still on its way, and the tool applied
    N last."""
    tables = _tables(default_set, tool.url, timeout=10.0)
    older, newer = _decision(default_set, "user"), _decision(default_set, "organisation")
    assert older.priority != newer.priority
    item = _item(redis_client, default_set, "31")
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
    assert tool.applied == [older.priority.name, newer.priority.name]
    assert outbox.pending() == (0, None)


def test_a_request_that_outlasts_its_timeout_still_keeps_the_ticket(
    outbox: Outbox, tool: GatedTool, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    """A stalled sender (its transport ignores the 0.2 s timeout) is renewed while it waits."""
    tables = _tables(default_set, tool.url, timeout=0.2)
    older, newer = _decision(default_set, "user"), _decision(default_set, "organisation")
    item = _item(redis_client, default_set, "32")
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
    assert tool.applied == [older.priority.name, newer.priority.name]


def test_a_sender_that_lost_its_claim_reports_neither_done_nor_failed(
    outbox: Outbox, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    decision = _decision(default_set, "user")
    item = _item(redis_client, default_set, "33")
    outbox.submit("rt", "33", decision, datetime.now(UTC), Revision(item, 1))
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
