"""Worker processes on a real Redis: strict order, kill -9 without loss, SIGTERM behaviour."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import redis

from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.items import ItemState
from service.dispatch.stats import read_worker_stats
from service.dispatch.store import ItemStore
from service.files.loader import load_all
from tests.e2e.dispatch.conftest import Processes, handled, wait_for
from tests.support.leases import in_hand

RQ = Path(sys.executable).with_name("rq")


def _calls_by_priority(tables: Path) -> dict[str, Call]:
    scorer = {s.version: s for s in load_all(tables)}["2026.1"].scorer()
    found: dict[str, Call] = {}
    for impact in scorer.impact.allowed:
        for urgency in scorer.urgency.allowed:
            call = Call(type="incident", impact=impact, urgency=urgency)
            found.setdefault(scorer.score(call, datetime.now(UTC)).priority.name, call)
    return found


def _enqueue(store: ItemStore, tables: Path, call: Call, ext: str) -> str:
    now = datetime.now(UTC)
    scorer = {s.version: s for s in load_all(tables)}["2026.1"].scorer()
    item, _ = store.enqueue(call, scorer.score(call, now), "e2e", ext, None, now)
    return item.id


def _worker_up(conn: redis.Redis, n: int = 1) -> bool:
    return read_worker_stats(conn, ["service_desk"], datetime.now(UTC))[0].up >= n


def test_a_suspended_worker_released_handles_a_shuffled_mix_in_strict_priority_order(
    processes: Processes,
    store: ItemStore,
    redis_client: redis.Redis,
    redis_url: str,
    handler_tables: Path,
    record_file: Path,
) -> None:
    subprocess.run([str(RQ), "suspend", "--url", redis_url], check=True, capture_output=True)
    worker = processes.worker()
    wait_for("the worker to register", lambda: _worker_up(redis_client))
    calls = _calls_by_priority(handler_tables)
    mix = [p for p in sorted(calls) for _ in range(12)]
    random.Random(3).shuffle(mix)
    enqueued = [(p, _enqueue(store, handler_tables, calls[p], f"o{n}")) for n, p in enumerate(mix)]
    time.sleep(0.5)
    assert handled(record_file) == [], "a suspended worker handed something out"
    info = subprocess.run(
        [str(RQ), "info", "--url", redis_url, "--raw"], check=True, capture_output=True, text=True
    ).stdout
    assert "queue usm.service_desk.P1 12" in info and "suspended" in info
    subprocess.run([str(RQ), "resume", "--url", redis_url], check=True, capture_output=True)
    rows = wait_for(
        "every item handled", lambda: len(handled(record_file)) == len(mix) and handled(record_file)
    )
    order = [p for _, p, _ in rows]
    inversions = sum(
        1 for i in range(len(order)) for j in range(i + 1, len(order)) if order[i] > order[j]
    )
    assert inversions == 0
    expected = [i for p in sorted(calls) for q, i in enqueued if q == p]
    assert [i for i, _, _ in rows] == expected
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_kill_9_of_workers_while_1000_items_flow_loses_nothing(
    processes: Processes,
    store: ItemStore,
    redis_client: redis.Redis,
    handler_tables: Path,
    record_file: Path,
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    scorer = {s.version: s for s in load_all(handler_tables)}["2026.1"].scorer()

    def enqueue(ext: str) -> str:
        now = datetime.now(UTC)
        item, _ = store.enqueue(call, scorer.score(call, now), "e2e", ext, None, now)
        return item.id

    ids = [enqueue(f"c{n}") for n in range(1000)]
    queue = keys.queue_key(store.get(ids[0]).queue)
    names = iter(f"kill9-{n}" for n in range(100))

    def start() -> tuple[str, subprocess.Popen[bytes]]:
        name = next(names)
        return name, processes.worker("--name", name, USM_TEST_DELAY="0.01")

    def all_handled() -> bool:
        return len({i for i, _, _ in handled(record_file)}) == len(ids)

    workers = [start() for _ in range(3)]
    rng = random.Random(11)

    def holding() -> tuple[int, list[str]] | None:
        """A live worker that holds an item now (its index, the ids), topping the queue up first.

        Until the kills are done the workers never run dry: a loaded machine starts a worker
        slowly while the others drain the queue, a quiet one drains 1000 items in seconds;
        either way a kill needs an item in hand to strike (bounded: at most 10,000 items).
        """
        while redis_client.llen(queue) < 100 and len(ids) < 10_000:
            ids.append(enqueue(f"c{len(ids)}"))
        order = list(range(len(workers)))
        rng.shuffle(order)
        for n in order:
            held = in_hand(redis_client, workers[n][0])
            if held:
                return n, held
        return None

    kills = 0
    held_at_kill: set[str] = set()
    while kills < 12:
        # Strike a worker while it holds an item (a condition, not a moment on the clock), so
        # kills land mid-item however slowly a loaded machine runs the workers.
        n, held = wait_for("a worker holding an item", holding, timeout=120)
        _, victim = workers.pop(n)
        victim.kill()  # SIGKILL: no clean-up of any kind
        victim.wait()
        workers.append(start())
        kills += 1
        held_at_kill.update(held)
    wait_for("every item handled", all_handled, timeout=120)
    wait_for(
        "every item completed",
        lambda: all(i.state is ItemState.COMPLETED for i in store.get_many(ids)),
        timeout=60,
    )
    rows = handled(record_file)
    assert {i for i, _, _ in rows} == set(ids)
    items = {i.id: i for i in store.get_many(ids)}
    # At least once, and twice only after a lease ran out: every extra hand-out of an item is a
    # redelivery in its history (a kill, or a worker too starved to renew a 1.5 s lease).
    times = Counter(i for i, _, _ in rows)
    unexplained = {
        i: (n, sum(1 for h in items[i].history if h.event == "redelivered"))
        for i, n in times.items()
        if n - 1 > sum(1 for h in items[i].history if h.event == "redelivered")
    }
    assert unexplained == {}, "handled more often than redelivered: {id: (handled, redelivered)}"
    # Kills landed mid-item: those items were taken back by the reaper and handed out again.
    redelivered = [items[i] for i in held_at_kill if items[i].deliveries > 1]
    assert redelivered
    assert all(any(h.event == "redelivered" for h in i.history) for i in redelivered)
    assert redis_client.zcard(keys.INFLIGHT) == 0


def test_sigterm_lets_the_current_item_finish_then_the_worker_exits(
    processes: Processes,
    store: ItemStore,
    redis_client: redis.Redis,
    handler_tables: Path,
    record_file: Path,
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    first = _enqueue(store, handler_tables, call, "t1")
    second = _enqueue(store, handler_tables, call, "t2")
    worker = processes.worker(USM_TEST_DELAY="1.5")
    wait_for("the first item to start", lambda: store.get(first).state is ItemState.STARTED)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert store.get(first).state is ItemState.COMPLETED
    assert store.get(second).state is ItemState.QUEUED
    assert [i for i, _, _ in handled(record_file)] == [first]


def test_a_second_sigterm_interrupts_the_handler_and_requeues_the_item_at_the_front(
    processes: Processes, store: ItemStore, handler_tables: Path, record_file: Path
) -> None:
    call = Call(type="incident", impact="user", urgency="low")
    first = _enqueue(store, handler_tables, call, "s1")
    second = _enqueue(store, handler_tables, call, "s2")
    worker = processes.worker(USM_TEST_DELAY="30")
    wait_for("the item to start", lambda: store.get(first).state is ItemState.STARTED)
    worker.send_signal(signal.SIGTERM)
    # Two SIGTERMs sent before the first is handled merge into one: wait until it was.
    wait_for("the first SIGTERM handled", lambda: "stopping after" in processes.log_of(worker))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    item = store.get(first)
    assert item.state is ItemState.QUEUED
    assert item.history[-1].event == "released"
    assert handled(record_file) == []
    queue = store.waiting_ids([item.queue], 10)
    assert queue == [first, second]


def test_usm_worker_refuses_a_pull_mode_team_naming_it(processes: Processes) -> None:
    proc = processes.start("worker", "--team", "change_advisory", log="refused")
    assert proc.wait(30) != 0
    assert (
        "usm worker: team 'change_advisory' is in pull mode: people claim its items over HTTP, "
        "it gets no workers"
    ) in processes.logs()


def test_a_worker_with_metrics_port_exports_its_item_counters(
    processes: Processes, store: ItemStore, handler_tables: Path
) -> None:
    import httpx

    from tests.support.redis_server import free_port

    port = free_port()
    processes.worker("--metrics-port", str(port))
    _enqueue(store, handler_tables, Call(type="incident", impact="user", urgency="low"), "m1")
    line = 'usm_items_completed_total{priority="P5",team="service_desk"} 1.0'

    def scraped() -> bool:
        try:
            return line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        except httpx.HTTPError:
            return False

    wait_for("the completed item in the worker's /metrics", scraped)
