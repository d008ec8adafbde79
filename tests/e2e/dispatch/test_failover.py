"""Losing the Redis primary loses no acknowledged item (issue 13), with real processes.

A primary, a replica and three sentinels (Debian's redis-server and redis-sentinel) on loopback;
a ``usm api`` process and two ``usm worker`` processes reach them through
``redis+sentinel://``. Items go in over HTTP while the workers handle them; the primary is
SIGKILLed mid-stream, then (once the old one is back as a replica) the new primary too. Every
item that got a 2xx must exist afterwards and end completed. Handler runs beyond one per item
(at-least-once) and the seconds clients spent on 503s are reported, not hidden.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from service.dispatch import keys
from tests.e2e.dispatch.conftest import RECORD, ROOT, Processes, handled, wait_for
from tests.security.process import ApiProcess
from tests.support.sentinel import SentinelCluster

ITEMS = 2000
INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "failover"}


@dataclass
class Traffic:
    """Clients that post items until each one got a 2xx, retrying the same external id."""

    url: str
    total: int
    acked: dict[str, str] = field(default_factory=dict)  # external id -> item id
    refused: list[float] = field(default_factory=list)  # monotonic times of 503s / no answer
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _next: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, threads: int = 4) -> list[threading.Thread]:
        started = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]
        for t in started:
            t.start()
        return started

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set():
                with self._lock:
                    n = next(self._next)
                if n >= self.total:
                    return
                ext = f"f{n}"
                while not self.stop.is_set():
                    try:
                        r = http.post("/v1/items", json={**INCIDENT, "external_id": ext})
                    except httpx.HTTPError:
                        self.refused.append(time.monotonic())
                        time.sleep(0.05)
                        continue
                    self.statuses[r.status_code] += 1
                    if r.status_code in (200, 201):
                        self.acked[ext] = r.json()["id"]
                        break
                    if r.status_code != 503 or "retry-after" not in r.headers:
                        self.unexpected.append(f"{r.status_code} {r.text}")
                        break
                    self.refused.append(time.monotonic())
                    time.sleep(0.05)

    def refused_seconds(self) -> float:
        """Seconds (in 0.1 s steps) in which some client got a 503 or no answer."""
        return len({int(t * 10) for t in self.refused}) / 10


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    c = SentinelCluster(tmp_path / "redis", down_after_ms=1000)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def env(cluster: SentinelCluster, handler_tables: Path, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": cluster.url,
        "USM_TABLES": str(handler_tables),
        "USM_TEST_RECORD": str(tmp_path / "handled.txt"),
        "USM_PYTHON_HANDLERS": RECORD,
        "USM_REDIS_TIMEOUT_SECONDS": "1",
        "USM_REDIS_WAIT_TIMEOUT_SECONDS": "0.5",
        "USM_RATE_LIMIT": "off",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def api(tmp_path: Path, env: dict[str, str]) -> Iterator[ApiProcess]:
    server = ApiProcess(tmp_path / "api.log", env)
    server.start(timeout=40)
    yield server
    server.stop()


def _states(conn: redis.Redis, ids: list[str]) -> list[bytes | None]:
    with conn.pipeline(transaction=False) as pipe:
        for i in ids:
            pipe.hget(keys.job_key(i), "usm_state")
        return list(pipe.execute())


def _kill_primary_and_rejoin(cluster: SentinelCluster) -> dict[str, float]:
    old = cluster.primary()
    new = cluster.other(old)
    t0 = time.monotonic()
    old.kill()
    promoted = cluster.wait_promoted(new)
    cluster.rejoin(old, new)
    cluster.wait_settled()
    return {"promoted_after_s": round(promoted, 1), "replica_back_after_s": time.monotonic() - t0}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkilled_primaries_lose_no_acknowledged_item(
    cluster: SentinelCluster, api: ApiProcess, env: dict[str, str], tmp_path: Path
) -> None:
    procs = Processes(tmp_path, env)
    try:
        for _ in range(2):
            procs.worker()
        traffic = Traffic(api.url, ITEMS)
        threads = traffic.run()
        wait_for("a third of the items acknowledged", lambda: len(traffic.acked) >= ITEMS // 3, 90)
        failover = _kill_primary_and_rejoin(cluster)
        mark = len(traffic.acked)
        wait_for("items acknowledged after the failover", lambda: len(traffic.acked) > mark, 60)
        wait_for("two thirds acknowledged", lambda: len(traffic.acked) >= 2 * ITEMS // 3, 90)
        failback = _kill_primary_and_rejoin(cluster)
        for t in threads:
            t.join(120)
        assert traffic.unexpected == []
        assert len(traffic.acked) == ITEMS, f"{len(traffic.acked)} of {ITEMS} acknowledged"

        conn = redis.Redis(port=cluster.primary_port(), socket_timeout=5)
        ids = list(traffic.acked.values())
        wait_for(
            "every acknowledged item completed",
            lambda: all(s == b"completed" for s in _states(conn, ids)),
            timeout=120,
        )
        states = Counter(_states(conn, ids))
        runs = Counter(item_id for item_id, _, _ in handled(tmp_path / "handled.txt"))
        report = {
            "acknowledged": len(ids),
            "lost": sum(n for s, n in states.items() if s is None),
            "completed": states[b"completed"],
            "duplicate_runs": sum(n - 1 for n in runs.values() if n > 1),
            "items_run_twice_or_more": sum(1 for n in runs.values() if n > 1),
            "seconds_of_503": traffic.refused_seconds(),
            "statuses": dict(traffic.statuses),
            "failover": failover,
            "failback": failback,
        }
        (tmp_path / "failover-report.json").write_text(json.dumps(report, indent=2))
        print(f"\nfailover report: {json.dumps(report)}")
        assert report["lost"] == 0 and report["completed"] == ITEMS, report
        assert set(runs) >= set(ids), "an acknowledged item was never handled"
    finally:
        procs.stop_all()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_frozen_primary_that_returns_stale_loses_no_acknowledged_write(
    cluster: SentinelCluster, api: ApiProcess
) -> None:
    """SIGSTOP the primary (a partition): the sentinels promote the replica; on SIGCONT the old
    primary briefly believes it still leads. Writes that reach it cannot gather a replica's
    confirmation, so none is acknowledged there; every 2xx is on the final primary."""
    old = cluster.primary()
    new = cluster.other(old)
    traffic = Traffic(api.url, 100_000)
    threads = traffic.run(threads=3)
    try:
        wait_for("writes before the partition", lambda: len(traffic.acked) >= 100, 60)
        old.freeze()
        try:
            cluster.wait_promoted(new)
        finally:
            old.thaw()
        thawed = len(traffic.acked)
        cluster.wait_replicated(new)
        wait_for("writes acknowledged after", lambda: len(traffic.acked) >= thawed + 100, 60)
    finally:
        traffic.stop.set()
        for t in threads:
            t.join(30)
    conn = redis.Redis(port=cluster.primary_port(), socket_timeout=5)
    ids = list(traffic.acked.values())
    missing = [i for i, s in zip(ids, _states(conn, ids), strict=True) if s is None]
    print(
        f"\nstale-primary report: acknowledged {len(ids)}, lost {len(missing)}, "
        f"seconds of 503 {traffic.refused_seconds()}, statuses {dict(traffic.statuses)}"
    )
    assert traffic.unexpected == []
    assert missing == []


def test_rq_info_reaches_the_queues_through_the_sentinels(
    cluster: SentinelCluster, tmp_path: Path
) -> None:
    """What docs/deploy.md tells operators: RQ's own settings file with ``SENTINEL``."""
    from rq import Queue

    from service.connection import connect

    conn = connect(cluster.url, timeout=2)
    Queue("usm.service_desk.P1", connection=conn).enqueue("os.getpid")
    conn.close()
    instances = [("127.0.0.1", p) for p in cluster.sentinel_ports]
    (tmp_path / "rq_sentinel.py").write_text(
        f"SENTINEL = {{'INSTANCES': {instances!r}, 'MASTER_NAME': 'usm', 'DB': 0}}\n"
    )
    out = subprocess.run(
        [str(Path(sys.executable).with_name("rq")), "info", "-c", "rq_sentinel", "--raw"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "queue usm.service_desk.P1 1" in out


def test_leases_due_times_dead_letters_decisions_and_rate_limits_carry_over(
    cluster: SentinelCluster, single_set_tables: Path
) -> None:
    """What a failover keeps: the state of every kind, written through the sentinels, is on the
    promoted replica, and the lease holder can still finish its item there."""
    import asyncio
    from datetime import UTC, datetime

    from service.connection import connect, connect_async
    from service.core.calls import Call
    from service.dispatch.config import DispatchConfig
    from service.dispatch.items import ItemState, now_ms
    from service.dispatch.leases import Outcome, finish, pop
    from service.dispatch.replicas import ReplicaWait, require_replicas
    from service.dispatch.store import ItemStore
    from service.files.loader import load_all
    from service.governance.decision_log import DecisionLog, read_log
    from service.security.ratelimit import RateLimitStore

    conn = connect(cluster.url, timeout=2)
    require_replicas(conn, ReplicaWait(replicas=1, timeout_ms=2000))
    store = ItemStore(conn, DispatchConfig())
    scorer = load_all(single_set_tables)[0].scorer()
    call = Call(type="change", impact="user", urgency="low")  # change_advisory, a pull team
    now = datetime.now(UTC)
    decision = scorer.score(call, now)
    ids = [store.enqueue(call, decision, "co", f"k{n}", None, now)[0].id for n in range(3)]
    queues = [keys.queue_name("change_advisory", decision.priority.name)]
    wake = [keys.wake_key("change_advisory")]
    held = pop(conn, queues, wake, "ann#1", now_ms(), 600_000, ItemState.CLAIMED)
    dead = pop(conn, queues, wake, "bob#2", now_ms(), 600_000, ItemState.CLAIMED)
    assert not isinstance(held, str | None) and not isinstance(dead, str | None)
    assert finish(conn, dead.id, "bob#2", Outcome.DEAD, now_ms(), 3600, "boom")

    async def side_state() -> int:
        aconn = connect_async(cluster.url, timeout=2)
        log = DecisionLog(maxlen=100)
        log.append(call, decision)
        await log.flush(aconn)
        count, _ = await RateLimitStore(aconn).hit("usm-key-ann", 60_000, 1000, amount=7)
        await aconn.execute_command("WAIT", 1, 2000)  # these writes are not WAITed by the API
        await aconn.aclose()
        return count

    assert asyncio.run(side_state()) == 7
    raw = redis.Redis(port=cluster.primary_port())
    before = {
        "inflight": raw.zrange(keys.INFLIGHT, 0, -1, withscores=True),
        "due": raw.zrange(keys.due_key(queues[0]), 0, -1, withscores=True),
        "queue": raw.lrange(keys.queue_key(queues[0]), 0, -1),
        "dead": raw.zrange(keys.failed_key(queues[0]), 0, -1),
    }
    raw.close()
    assert before["queue"] == [ids[2].encode()] and before["dead"] == [dead.id.encode()]

    old = cluster.primary()
    new = cluster.other(old)
    old.kill()
    cluster.wait_promoted(new)

    after = redis.Redis(port=new.port)
    assert {
        "inflight": after.zrange(keys.INFLIGHT, 0, -1, withscores=True),
        "due": after.zrange(keys.due_key(queues[0]), 0, -1, withscores=True),
        "queue": after.lrange(keys.queue_key(queues[0]), 0, -1),
        "dead": after.zrange(keys.failed_key(queues[0]), 0, -1),
    } == before
    logged = read_log(after, 10)
    assert [(d.call, d.priority, d.team) for d in logged] == [
        (call, decision.priority.name, decision.team)
    ]

    async def limit_now() -> int:
        aconn = connect_async(cluster.url, timeout=2)
        count, _ = await RateLimitStore(aconn).hit("usm-key-ann", 60_000, 1000)
        await aconn.aclose()
        return count

    assert asyncio.run(limit_now()) == 8
    after.close()
    # The holder finishes its item on the new primary, through the same sentinel URL.
    plain = connect(cluster.url, timeout=2)
    assert finish(plain, held.id, "ann#1", Outcome.COMPLETED, now_ms(), 3600)
    assert ItemStore(plain, DispatchConfig()).get(held.id).state is ItemState.COMPLETED
    plain.close()
    conn.close()
