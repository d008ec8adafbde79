"""The activation lock is fenced: a replica that stalls past its lock stops and marks nothing.

Two watchers (replicas) on one real Redis and the real ``rescore_all`` over real items; the
first stalls (a long GC pause, a frozen VM) while its 1 s lock runs out, the second takes over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import redis

from service.core.calls import Call
from service.core.scoring import Scorer
from service.dispatch.rescore import rescore_all
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet, load_set
from service.files.store import TableStore
from service.governance.activation import Activation, ActivationWatcher
from service.governance.keys import activation_key

TABLES = Path(__file__).resolve().parents[3] / "tables"
SWITCH = datetime(2027, 1, 1, tzinfo=UTC)


class Stalling:
    """``rescore_all`` that stalls once, at its first write step or just before it returns."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.stalled = threading.Event()
        self.resume = threading.Event()

    def _stall(self) -> None:
        if not self.stalled.is_set():
            self.stalled.set()
            assert self.resume.wait(30)

    def __call__(
        self, conn: redis.Redis, scorer: Scorer, fence: Callable[[], None] | None = None
    ) -> int:
        assert fence is not None

        def stalling_fence() -> None:
            if self.where == "first step":
                self._stall()
            fence()

        moved = rescore_all(conn, scorer, stalling_fence)
        if self.where == "before done":
            self._stall()
        return moved


@pytest.mark.parametrize("where", ["first step", "before done"])
def test_a_replica_whose_lock_ran_out_stops_and_the_new_owner_marks_the_activation(
    where: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    both: list[LoadedSet] = [load_set(TABLES / "2026.1"), load_set(TABLES / "2027.1")]
    old = both[0].scorer()
    store = ItemStore(redis_client)
    now = datetime.now(UTC)
    moving = Call(type="incident", impact="group", urgency="high")  # P3 -> P2 under 2027.1
    ids = [
        store.enqueue(moving, old.score(moving, now), "fence", f"F{n}", None, now)[0].id
        for n in range(30)
    ]
    first = Stalling(where)
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    a = ActivationWatcher(TableStore(both), clients[0], first, lock_seconds=1, clock=lambda: SWITCH)
    b = ActivationWatcher(
        TableStore(both), clients[1], rescore_all, lock_seconds=1, clock=lambda: SWITCH
    )
    key = activation_key("2027.1", both[1].hash)
    results: list[Activation | None] = []
    thread = threading.Thread(target=lambda: results.append(a.check()))
    thread.start()
    try:
        assert first.stalled.wait(30)
        deadline = time.monotonic() + 30
        while redis_client.exists(key):  # A's lock runs out while it stalls
            assert time.monotonic() < deadline, "the stalled replica's lock never expired"
            time.sleep(0.05)
        taken_over = b.check()
    finally:
        first.resume.set()
        thread.join(30)
    assert taken_over is not None and taken_over.state == "done"
    assert results == [None]  # A stopped (or finished) without marking anything
    marker = msgspec.json.decode(redis_client.get(key) or b"", type=Activation)
    assert marker == taken_over
    moved_by = {"first step": 30, "before done": 0}[where]  # B moved them, or found them moved
    assert taken_over.moved == moved_by
    for item_id in ids:
        item = store.get(item_id)
        assert item.priority == "P2"
        assert [h.event for h in item.history] == ["enqueued", "rescored"]
    for c in clients:
        c.close()
