"""Redis stopped under mixed traffic: scoring keeps answering, item writes get 503 with
Retry-After, and everything (API, rate limits, workers) recovers by itself when Redis is back.

Measured by conditions, not by the clock of a shared machine: the outage lasts until scoring has
answered many times and writes were refused several times (at least ``OUTAGE`` seconds, so the
API meets a Redis that stays dead), and a request that hangs on the dead Redis fails the test by
its client timeout, far above any answer that does not wait on Redis.
"""

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

OUTAGE = 5.0
"""Shortest outage; it lasts until ``SCORED`` and ``REFUSED`` are reached (at most 90 s)."""
SCORED = 50
"""Scoring answers during the outage: each one did not wait on Redis (or the client timed out)."""
REFUSED = 5
"""Item writes refused with 503 during the outage."""
CLIENT_TIMEOUT = 10.0
"""Longer than any answer that does not wait on Redis, even on a loaded machine."""
CALL = {"type": "incident", "impact": "department", "urgency": "high"}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_redis_outage_keeps_scoring_up_refuses_writes_cleanly_and_heals(
    api: ApiProcess, workers: Workers, redis_server: RedisServer, store: ItemStore
) -> None:
    workers.start()
    down = threading.Event()
    stop = threading.Event()
    scoring: list[tuple[bool, int]] = []  # (during outage, status)
    writes: list[tuple[bool, int, str | None]] = []  # (during outage, status, Retry-After)
    accepted: list[str] = []
    failures: list[str] = []

    def score() -> None:
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=CLIENT_TIMEOUT) as client:
            while not stop.is_set():
                try:
                    r = client.post("/v1/priority", json=CALL)
                except httpx.HTTPError as exc:
                    failures.append(f"scoring: {type(exc).__name__}")
                    continue
                scoring.append((down.is_set(), r.status_code))

    def write() -> None:
        n = 0
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=CLIENT_TIMEOUT) as client:
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
        floor = time.monotonic() + OUTAGE
        wait_for(
            f"{SCORED} scoring answers and {REFUSED} refused writes during the outage",
            lambda: (
                failures
                or (
                    time.monotonic() >= floor
                    and sum(1 for d, _ in scoring if d) >= SCORED
                    and sum(1 for d, s, _ in writes if d and s == 503) >= REFUSED
                )
            ),
            timeout=90,
        )
        redis_server.start()
        down.clear()
        before = len(accepted)
        wait_for("items accepted again", lambda: len(accepted) > before + 20, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == []
    assert sum(1 for d, _ in scoring if d) >= SCORED
    assert {s for _, s in scoring} == {200}, "scoring failed at some point"
    refused = [(s, ra) for d, s, ra in writes if d and s not in (200, 201)]
    assert refused, "no write was refused during the outage"
    assert {s for s, _ in refused} == {503}
    assert all(ra is not None and int(ra) > 0 for _, ra in refused)
    assert {s for _, s, _ in writes} <= {200, 201, 503}
    # The worker lived through the outage and handles everything accepted, before and after.
    wait_for(
        "every accepted item completed",
        lambda: all(i.state is ItemState.COMPLETED for i in store.get_many(accepted)),
        timeout=60,
    )
    with httpx.Client(base_url=api.url) as client:
        assert client.get("/readyz").status_code == 200
