"""Redis killed (SIGKILL, AOF with appendfsync always) during enqueue traffic: every acknowledged
item is there afterwards, and a retry of an acknowledged item never makes a second one."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from tests.reliability.conftest import HEADERS, INCIDENT, wait_for
from tests.security.process import ApiProcess
from tests.support.redis_server import RedisServer

SENDERS = 4


@pytest.mark.slow
def test_every_item_acknowledged_before_redis_crashed_is_there_after_it_restarts(
    api: ApiProcess, redis_server: RedisServer, store: ItemStore
) -> None:
    acknowledged: dict[str, str] = {}
    conflicts: list[str] = []
    unexpected: list[str] = []
    refused = 0
    stop = threading.Event()
    lock = threading.Lock()

    def send(sender: int) -> None:
        nonlocal refused
        n = 0
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=5) as client:
            while not stop.is_set():
                ext = f"s{sender}-{n}"
                body = {**INCIDENT, "external_id": ext}
                try:
                    r = client.post("/v1/items", json=body)
                except httpx.HTTPError as exc:
                    unexpected.append(f"{type(exc).__name__}: {exc}")
                    continue
                if r.status_code == 503:
                    if not r.headers.get("retry-after", "").isdigit():
                        unexpected.append(f"503 without a Retry-After: {r.headers}")
                    with lock:
                        refused += 1
                    time.sleep(0.05)
                    continue  # retry the same external id, as a ticketing tool does
                if r.status_code not in (200, 201):
                    unexpected.append(f"{r.status_code} {r.text[:200]}")
                    continue
                item_id = r.json()["id"]
                with lock:
                    if acknowledged.setdefault(ext, item_id) != item_id:
                        conflicts.append(ext)
                # Every fifth item is sent again at once: the retry must return the same item.
                if n % 5 == 0:
                    again = client.post("/v1/items", json=body)
                    if again.status_code == 200 and again.json()["id"] != item_id:
                        conflicts.append(ext)
                n += 1

    threads = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            before = len(acknowledged)
            wait_for("traffic", lambda b=before: len(acknowledged) >= b + 100, timeout=30)  # type: ignore[misc]
            seen = refused
            redis_server.kill()  # a crash: no shutdown, no final AOF rewrite
            # Down until a request met the crash, however slowly a loaded machine sends them.
            wait_for("a write refused while Redis is down", lambda s=seen: refused > s)  # type: ignore[misc]
            redis_server.start()
        after = len(acknowledged)
        wait_for("traffic after the last restart", lambda: len(acknowledged) >= after + 100)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert unexpected == []
    assert conflicts == []
    assert refused > 0, "the crashes were never noticed by a request"
    items = store.get_many(list(acknowledged.values()))
    assert len(items) == len(acknowledged)
    assert {i.state for i in items} == {ItemState.QUEUED}
    by_ext = {i.external_id: i.id for i in items}
    assert by_ext == acknowledged
    with httpx.Client(base_url=api.url, headers=HEADERS) as client:
        sample = list(acknowledged.items())[:: max(len(acknowledged) // 50, 1)]
        for ext, item_id in sample:
            r = client.post("/v1/items", json={**INCIDENT, "external_id": ext})
            assert (r.status_code, r.json()["id"]) == (200, item_id)
