"""Workers killed with SIGKILL again and again while 2,000 items arrive over HTTP: none is lost."""

from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis

from service.dispatch import keys
from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from service.files.loader import load_set
from tests.reliability.conftest import HEADERS, Workers
from tests.security.process import ApiProcess
from tests.support.tables import REPO_TABLES, SINGLE_VERSION

ITEMS = 2000
SENDERS = 4


def _service_desk_calls() -> list[dict[str, object]]:
    """Incident calls of every priority that route to service_desk (the team with workers)."""
    scorer = load_set(REPO_TABLES / SINGLE_VERSION).scorer()  # the set the API runs on
    from service.core.calls import Call

    calls = []
    for impact, urgency in itertools.product(scorer.impact.allowed, scorer.urgency.allowed):
        call = {"type": "incident", "impact": impact, "urgency": urgency}
        if scorer.score(Call(**call), datetime.now(UTC)).team == "service_desk":  # type: ignore[arg-type]
            calls.append(call)
    assert len(calls) >= 4
    return calls


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigkilled_workers_during_2000_items_lose_none(
    api: ApiProcess,
    workers: Workers,
    store: ItemStore,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    calls = _service_desk_calls()
    live = [workers.start() for _ in range(3)]
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    errors: list[str] = []

    def send(offset: int) -> None:
        rng = random.Random(offset)
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=10) as client:
            for n in range(offset, ITEMS, SENDERS):
                body = {**rng.choice(calls), "source": "kills", "external_id": f"k{n}"}
                r = client.post("/v1/items", json=body)
                if r.status_code not in (200, 201):
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    continue
                with lock:
                    acknowledged[body["external_id"]] = r.json()["id"]

    senders = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
    for t in senders:
        t.start()
    rng = random.Random(7)
    kills = 0
    started = time.monotonic()
    done: list[str] = []
    while time.monotonic() - started < 90:
        time.sleep(0.4)
        if any(t.is_alive() for t in senders) or kills < 10:
            victim = live.pop(rng.randrange(len(live)))
            victim.kill()  # SIGKILL: no clean-up, no release, mid-item or not
            victim.wait()
            kills += 1
            live.append(workers.start())
        elif len(acknowledged) == ITEMS:
            items = store.get_many(list(acknowledged.values()))
            done = [i.id for i in items if i.state is ItemState.COMPLETED]
            if len(done) == ITEMS:
                break
    for t in senders:
        t.join(10)
    assert errors == []
    assert len(acknowledged) == ITEMS
    assert len(set(acknowledged.values())) == ITEMS
    items = store.get_many(list(acknowledged.values()))
    lost = [i.id for i in items if i.state is not ItemState.COMPLETED]
    assert lost == [], f"{len(lost)} of {ITEMS} not completed after {kills} kills"
    assert kills >= 10
    assert redis_client.zcard(keys.INFLIGHT) == 0
    # The kills did land mid-item: some items were taken back by the reaper and handed out again.
    assert any(i.deliveries > 1 for i in items)
