"""The worker loop in-process against a real Redis and real HTTP receivers.

Worker *processes* (ordering, kill -9, SIGTERM) are tested in tests/e2e/dispatch.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
import redis

from service.core.calls import Call
from service.core.tables import PythonHandler, TableSet, WebhookHandler
from service.dispatch import keys
from service.dispatch.config import DispatchConfig
from service.dispatch.items import ItemState
from service.dispatch.stats import read_worker_stats
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue
from tests.support.processes import wait_for
from worker.handlers import SIGNATURE_HEADER, TIMESTAMP_HEADER, Delivery, HandlerError
from worker.runner import Worker

SECRET = "webhook-test-secret"


def with_handler(tables: TableSet, team: str, handler: Any) -> TableSet:
    teams = [
        msgspec.structs.replace(t, handler=handler) if t.name == team else t
        for t in tables.teams.team
    ]
    return msgspec.structs.replace(tables, teams=msgspec.structs.replace(tables.teams, team=teams))


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records webhook requests and verifies them."""

    statuses: list[int]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def verify(self, headers: Any, body: bytes) -> bool:
        ts = headers[TIMESTAMP_HEADER]
        mac = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""), f"sha256={mac}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(statuses=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.requests.append(
                {
                    "headers": dict(self.headers),
                    "body": body,
                    "valid": rec.verify(self.headers, body),
                }
            )
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def _webhook_tables(base: LoadedSet, url: str) -> TableSet:
    spec = WebhookHandler(url=url, secret_env="USM_TEST_WEBHOOK_SECRET", retries=2, backoff=0.05)
    return with_handler(base.tables, "service_desk", spec)


def test_webhook_is_signed_retried_with_backoff_and_carries_the_idempotency_key(
    monkeypatch: pytest.MonkeyPatch,
    receiver: Receiver,
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
    redis_client: redis.Redis,
) -> None:
    monkeypatch.setenv("USM_TEST_WEBHOOK_SECRET", SECRET)
    receiver.statuses = [503]
    item = enqueue(Call(type="incident", impact="user", urgency="low"), external_id="INC-7")
    worker = Worker(redis_client, _webhook_tables(base_set, receiver.url), ["service_desk"], config)
    assert worker.run(burst=True) == 1
    assert len(receiver.requests) == 2
    assert all(r["valid"] for r in receiver.requests)
    first, second = receiver.requests
    assert first["body"] == second["body"]
    assert second["headers"]["Idempotency-Key"] == item.id
    delivery = msgspec.json.decode(second["body"], type=Delivery)
    assert (delivery.id, delivery.external_id, delivery.priority) == (item.id, "INC-7", "P5")
    assert store.get(item.id).state is ItemState.COMPLETED


def test_a_webhook_refused_with_4xx_is_dead_lettered_without_retry(
    monkeypatch: pytest.MonkeyPatch,
    receiver: Receiver,
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
    redis_client: redis.Redis,
) -> None:
    monkeypatch.setenv("USM_TEST_WEBHOOK_SECRET", SECRET)
    receiver.statuses = [400]
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    Worker(redis_client, _webhook_tables(base_set, receiver.url), ["service_desk"], config).run(
        burst=True
    )
    assert len(receiver.requests) == 1
    dead = store.get(item.id)
    assert dead.state is ItemState.DEAD
    assert dead.error == f"HandlerError: HTTP 400 from {receiver.url}: not retried"
    assert store.dead_letter_ids([dead.queue], 10) == [item.id]


def test_a_webhook_without_its_secret_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, base_set: LoadedSet, redis_client: redis.Redis
) -> None:
    monkeypatch.delenv("USM_TEST_WEBHOOK_SECRET", raising=False)
    with pytest.raises(HandlerError, match="USM_TEST_WEBHOOK_SECRET is not set"):
        Worker(redis_client, _webhook_tables(base_set, "http://127.0.0.1:9/x"), ["service_desk"])


def test_a_python_handler_that_raises_sends_the_item_to_the_dead_letters(
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
    redis_client: redis.Redis,
) -> None:
    spec = PythonHandler(target="tests.integration.dispatch.handlers:explode")
    tables = with_handler(base_set.tables, "service_desk", spec)
    item = enqueue(Call(type="incident", impact="user", urgency="low"), external_id="E-1")
    Worker(redis_client, tables, ["service_desk"], config).run(burst=True)
    dead = store.get(item.id)
    assert (dead.state, dead.error) == (ItemState.DEAD, "RuntimeError: cannot handle E-1")
    assert [h.event for h in dead.history] == ["enqueued", "started", "dead_lettered"]


def test_workers_refuse_pull_mode_and_unknown_teams(
    base_set: LoadedSet, redis_client: redis.Redis
) -> None:
    with pytest.raises(ValueError, match="team 'change_advisory' is in pull mode"):
        Worker(redis_client, base_set.tables, ["change_advisory"])
    with pytest.raises(ValueError, match="unknown team 'nobody'; allowed: service_desk, "):
        Worker(redis_client, base_set.tables, ["nobody"])


def test_an_idle_worker_picks_up_a_new_item_at_once_and_reports_itself(
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An idle worker's BLPOP would time out only after a minute: the item can only be seen
    # within the test's deadline because the enqueue's wake token ended the wait.
    monkeypatch.setattr("worker.runner._IDLE_BLOCK", 60.0)
    seen: list[str] = []
    worker = Worker(
        redis_client,
        base_set.tables,
        ["service_desk"],
        config,
        handlers={"service_desk": lambda d: seen.append(d.id)},
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(
            "the worker registered and blocked on its wake list",
            lambda: (
                read_worker_stats(redis_client, ["service_desk"], datetime.now(UTC))[0].up == 1
                and _blocked_on(redis_client, keys.wake_key("service_desk"))
            ),
        )
        item = enqueue(Call(type="incident", impact="user", urgency="low"))
        assert wait_for("the item handled", lambda: seen, timeout=20) == [item.id]
    finally:
        worker.stop()
        redis_client.rpush(keys.wake_key("service_desk"), "stop")  # end the long BLPOP
        thread.join(timeout=10)
    assert not thread.is_alive()
    [stat] = read_worker_stats(redis_client, ["service_desk"], datetime.now(UTC))
    assert stat.up == 0
    assert store.get(item.id).state is ItemState.COMPLETED


def _blocked_on(conn: redis.Redis, key: str) -> bool:
    """A client waits in ``BLPOP`` (flag ``b``: blocked) while ``key`` holds no token."""
    blocked = any(c["cmd"] == "blpop" and "b" in c["flags"] for c in conn.client_list())
    return blocked and not conn.exists(key)


def test_a_running_worker_follows_a_new_table_set_without_a_restart(
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
    redis_client: redis.Redis,
) -> None:
    """The handler of a team changes in the tables; the worker uses it from then on."""
    explode = PythonHandler(target="tests.integration.dispatch.handlers:explode")
    in_force = [base_set.tables]
    worker = Worker(
        redis_client,
        base_set.tables,
        ["service_desk"],
        config,
        tables_source=lambda: in_force[0],
        refresh_seconds=0.0,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        first = enqueue(Call(type="incident", impact="user", urgency="low"), external_id="F-1")
        assert _wait_for_state(store, first.id, ItemState.COMPLETED)
        in_force[0] = with_handler(base_set.tables, "service_desk", explode)
        second = enqueue(Call(type="incident", impact="user", urgency="low"), external_id="F-2")
        assert _wait_for_state(store, second.id, ItemState.DEAD)
        assert store.get(second.id).error == "RuntimeError: cannot handle F-2"
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def _wait_for_state(store: ItemStore, item_id: str, state: ItemState, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.get(item_id).state is state:
            return True
        time.sleep(0.02)
    return False
