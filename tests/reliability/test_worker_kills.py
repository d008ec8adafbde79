"""Workers killed with SIGKILL again and again while 2,000 items arrive over HTTP: none is lost."""

from __future__ import annotations

import itertools
import random
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis

from service.dispatch import keys
from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from service.files.loader import load_set
from tests.reliability.conftest import HEADERS, Workers, wait_for
from tests.security.process import ApiProcess
from tests.support.leases import in_hand
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
@pytest.mark.timeout(400)
def test_sigkilled_workers_during_2000_items_lose_none(
    api: ApiProcess,
    workers: Workers,
    store: ItemStore,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    calls = _service_desk_calls()
    names = iter(f"kills-{n}" for n in range(1000))

    def start() -> tuple[str, subprocess.Popen[bytes]]:
        name = next(names)
        return name, workers.start(name=name)

    live = [start() for _ in range(3)]
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    errors: list[str] = []
    enough_kills = threading.Event()

    def send(offset: int) -> None:
        rng = random.Random(offset)
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=10) as client:
            n = offset
            # At least ITEMS, and on until the kills are done: a fast machine would otherwise
            # finish the work before ten kills (bounded: ten times that at most).
            while n < ITEMS or (not enough_kills.is_set() and n < 10 * ITEMS):
                body = {**rng.choice(calls), "source": "kills", "external_id": f"k{n}"}
                r = client.post("/v1/items", json=body)
                if r.status_code not in (200, 201):
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    n += SENDERS
                    continue
                with lock:
                    acknowledged[body["external_id"]] = r.json()["id"]
                n += SENDERS

    def drained() -> bool:
        # Everything sent is acknowledged and nothing waits or is in hand: no work left to kill.
        if any(t.is_alive() for t in senders):
            return False
        items = store.get_many(list(acknowledged.values()))
        return all(i.state is ItemState.COMPLETED for i in items)

    senders = [threading.Thread(target=send, args=(i,)) for i in range(SENDERS)]
    for t in senders:
        t.start()
    rng = random.Random(7)
    kills = 0
    killed: set[str] = set()
    struck = False
    # Kill while items arrive (and at least ten times), each time a worker that holds an item:
    # a condition, so a loaded machine that starts workers slowly still gets kills mid-item and
    # workers that live long enough to work between kills. Whether a kill struck an item is read
    # after the worker died: between a look at what it held and the kill, a loaded machine gives
    # the worker time to finish that item (and take the next), so the kills go on until one did.
    while kills < 10 or not struck or any(t.is_alive() for t in senders):
        name, victim = live.pop(rng.randrange(len(live)))
        held = wait_for(
            f"worker {name} to hold an item",
            lambda name=name: in_hand(redis_client, name) or drained(),
            timeout=60,
        )
        victim.kill()  # SIGKILL: no clean-up, no release
        victim.wait()
        killed.add(name)
        struck = struck or bool(in_hand(redis_client, name))  # until its lease runs out
        live.append(start())
        if held is True:
            break
        kills += 1
        if kills >= 10 and struck:
            enough_kills.set()
    for t in senders:
        t.join(30)
    assert errors == []
    assert len(acknowledged) >= ITEMS
    assert len(set(acknowledged.values())) == len(acknowledged)
    ids = list(acknowledged.values())

    def not_completed() -> list[str]:
        return [i.id for i in store.get_many(ids) if i.state is not ItemState.COMPLETED]

    # A lost item never completes: waiting (however long the machine needs) then fails here.
    wait_for(
        f"all {len(ids)} acknowledged items completed", lambda: not not_completed(), timeout=120
    )
    assert not_completed() == []
    assert kills >= 10
    assert redis_client.zcard(keys.INFLIGHT) == 0
    # The kills did land mid-item: the reaper took items back from killed holders (the history
    # names them) and they were handed out again.
    taken_back = [
        i
        for i in store.get_many(ids)
        if any(h.event == "redelivered" and h.holder in killed for h in i.history)
    ]
    assert taken_back, "no kill struck a worker holding an item"
    assert all(i.deliveries > 1 for i in taken_back)
