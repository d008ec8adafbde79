"""Redis stopped for 10 s under mixed traffic: scoring keeps answering, item writes get 503 with
Retry-After, and everything (API, rate limits, workers) recovers by itself when Redis is back."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from tests.reliability.conftest import HEADERS, INCIDENT, Workers, wait_for
from tests.security.process import ApiProcess
from tests.support.redis_server import RedisServer

OUTAGE = 10.0
CALL = {"type": "incident", "impact": "department", "urgency": "high"}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_ten_second_redis_outage_keeps_scoring_up_refuses_writes_cleanly_and_heals(
    api: ApiProcess, workers: Workers, redis_server: RedisServer, store: ItemStore
) -> None:
    workers.start()
    down = threading.Event()
    stop = threading.Event()
    scoring: list[tuple[bool, int, float]] = []  # (during outage, status, seconds)
    writes: list[tuple[bool, int, str | None]] = []  # (during outage, status, Retry-After)
    accepted: list[str] = []
    failures: list[str] = []

    def score() -> None:
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=5) as client:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.post("/v1/priority", json=CALL)
                except httpx.HTTPError as exc:
                    failures.append(f"scoring: {type(exc).__name__}")
                    continue
                scoring.append((down.is_set(), r.status_code, time.monotonic() - t0))

    def write() -> None:
        n = 0
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=5) as client:
            while not stop.is_set():
                try:
                    r = client.post("/v1/items", json={**INCIDENT, "external_id": f"o{n}"})
                except httpx.HTTPError as exc:
                    failures.append(f"write: {type(exc).__name__}")
                    continue
                writes.append((down.is_set(), r.status_code, r.headers.get("retry-after")))
                if r.status_code in (200, 201):
                    accepted.append(r.json()["id"])
                    n += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=score), threading.Thread(target=write)]
    for t in threads:
        t.start()
    try:
        wait_for("traffic before the outage", lambda: len(accepted) >= 20)
        redis_server.stop()
        down.set()
        time.sleep(OUTAGE)
        redis_server.start()
        down.clear()
        before = len(accepted)
        recovered = time.monotonic()
        wait_for("items accepted again", lambda: len(accepted) > before + 20, timeout=20)
        recovery_seconds = time.monotonic() - recovered
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == []
    during = [s for d, s, _ in scoring if d]
    assert len(during) > 50, "scoring was hardly exercised during the outage"
    assert {s for _, s, _ in scoring} == {200}, "scoring failed at some point"
    # No scoring request waits on the dead Redis (shared CPU makes single outliers, so p99).
    times = sorted(sec for d, _, sec in scoring if d)
    p99 = times[int(len(times) * 0.99)]
    assert p99 < 1.0, f"p99 of scoring during the outage was {p99:.2f}s"
    refused = [(s, ra) for d, s, ra in writes if d and s not in (200, 201)]
    assert refused, "no write was refused during the outage"
    assert {s for s, _ in refused} == {503}
    assert all(ra is not None and int(ra) > 0 for _, ra in refused)
    assert {s for _, s, _ in writes} <= {200, 201, 503}
    assert recovery_seconds < 10
    # The worker lived through the outage and handles everything accepted, before and after.
    wait_for(
        "every accepted item completed",
        lambda: all(i.state is ItemState.COMPLETED for i in store.get_many(accepted)),
        timeout=30,
    )
    with httpx.Client(base_url=api.url) as client:
        assert client.get("/readyz").status_code == 200
