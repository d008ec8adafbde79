"""The write-back outbox and sender on a real Redis, delivering to a real local HTTP receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
import redis

from service.core.calls import Call
from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.tables import TableSet
from service.files.loader import LoadedSet
from service.sources import keys
from service.sources.outbox import Outbox, Sender
from service.sources.writeback.rt import ADAPTER


class Receiver:
    """A local HTTP server that records every request and answers with a chosen status."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def outbox(redis_client: redis.Redis) -> Outbox:
    for key in redis_client.scan_iter(f"{keys.ENTRY_PREFIX}*"):
        redis_client.delete(key)
    return Outbox(redis_client)


def _tables(base: LoadedSet, url: str, retries: int = 2) -> TableSet:
    rt = base.tables.sources.source[0]
    assert rt.writeback is not None
    wb = msgspec.structs.replace(rt.writeback, base_url=url, retries=retries, backoff=0.0)
    sources = msgspec.structs.replace(
        base.tables.sources, source=[msgspec.structs.replace(rt, writeback=wb)]
    )
    return msgspec.structs.replace(base.tables, sources=sources)


def _decision(base: LoadedSet, impact: str) -> Decision:
    call = Call(type="incident", impact=impact, urgency="high")
    return base.scorer().score(call, datetime(2026, 3, 2, 9, tzinfo=UTC))


def test_a_decision_is_written_as_rt_rest2_put(
    outbox: Outbox, receiver: Receiver, default_set: LoadedSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USM_SOURCE_RT_TOKEN", "usm-svc:svc-secret-1")
    tables = _tables(default_set, receiver.url)
    outbox.submit("rt", "7", _decision(default_set, "group"), datetime.now(UTC))
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
    tables = _tables(default_set, receiver.url, retries=2)
    outbox.submit("rt", "8", _decision(default_set, "group"), datetime.now(UTC))
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


def test_an_older_decision_never_overwrites_a_newer_one(
    outbox: Outbox, default_set: LoadedSet
) -> None:
    now = datetime.now(UTC)
    newer, older = _decision(default_set, "organisation"), _decision(default_set, "user")
    assert outbox.submit("rt", "9", newer, now) == 1
    assert outbox.submit("rt", "9", older, now - timedelta(seconds=5)) == 0
    (claimed,) = outbox.claim(datetime.now(UTC).timestamp(), 60)
    assert claimed.decision == newer


def test_a_newer_decision_during_a_send_is_sent_after_it(
    outbox: Outbox, receiver: Receiver, default_set: LoadedSet
) -> None:
    tables = _tables(default_set, receiver.url)
    first, second = _decision(default_set, "user"), _decision(default_set, "organisation")
    outbox.submit("rt", "10", first, datetime.now(UTC))
    (claimed,) = outbox.claim(datetime.now(UTC).timestamp(), 60)
    # While the first is on its way, a newer decision arrives: it must wait for the claim.
    outbox.submit("rt", "10", second, datetime.now(UTC))
    assert outbox.claim(datetime.now(UTC).timestamp(), 60) == []
    assert not outbox.done(claimed, datetime.now(UTC).timestamp())
    assert Sender(outbox, lambda: tables).run_once() == 1
    body = msgspec.json.decode(receiver.requests[-1][3])
    assert body["CustomFields"] == {"USM Priority": second.priority.name}


def test_a_sender_that_died_leaves_a_claim_that_falls_due_again(
    outbox: Outbox, default_set: LoadedSet
) -> None:
    outbox.submit("rt", "11", _decision(default_set, "user"), datetime.now(UTC))
    now = datetime.now(UTC).timestamp()
    assert len(outbox.claim(now, 0.2)) == 1
    assert outbox.claim(now + 0.1, 0.2) == []
    assert len(outbox.claim(now + 0.3, 0.2)) == 1


def test_settings_without_a_priority_map_write_no_numeric_priority(
    default_set: LoadedSet,
) -> None:
    settings = WriteBackSettings(adapter="rt", base_url="http://127.0.0.1:1")
    fields = ADAPTER.answer(_decision(default_set, "user"), settings)
    assert "Priority" not in fields
