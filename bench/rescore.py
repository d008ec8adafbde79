"""Mass re-score on a real Redis: no single Redis call may block it for more than 50 ms.

Fills one Redis (``redis-server``, AOF every second, as ``usm serve`` runs it) with ``--items``
waiting items of every impact x urgency mix under 2026.1, hands 1 % of them out (items in hand
are re-scored too), then re-scores everything under 2027.1, which moves an eighth of them to
another queue and gives a quarter new targets. Redis's SLOWLOG (threshold 1 ms) records every call
that ran longer; the longest one during each phase is reported next to the phase's rate, so the
re-score is compared with plain enqueueing on the same Redis in the same run. SLOWLOG times
are wall-clock: on a loaded machine a call also counts the time Redis waited for a CPU, which
is why Redis gets a real-time priority when the bench may (root; see ``_isolate``), and why the
longest plain enqueue is printed as the noise floor.

Checks after the run: every waiting item is in exactly one queue list, each list in seniority
(enqueue) order, and items in hand kept their lease under their new decision.

Target (issue 12 #6): no Redis call during the re-score longer than 50 ms.

    .venv/bin/python -m bench.rescore [--items 50000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench._common import TABLES, machine, print_table
from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.config import DispatchConfig
from service.dispatch.items import ItemState, now_ms
from service.dispatch.leases import Leased, pop
from service.dispatch.rescore import rescore_all
from service.dispatch.store import ItemStore, hand_out_order
from service.embedded_redis import EmbeddedRedis, free_port
from service.files.loader import load_all

__all__ = ["main"]

TARGET_MS = 50.0
TEAM = "service_desk"
IMPACTS = ("organisation", "department", "group", "user")
URGENCIES = ("immediate", "high", "normal", "low")


def _isolate(pid: int) -> str:
    """Let Redis run as soon as it has work, as on a host of its own; what was possible.

    SLOWLOG times are wall-clock: on a shared, busy machine a call also counts the time Redis
    waited for a CPU behind other processes. A real-time priority (root) removes that wait, so
    the numbers show what the calls cost; Linux still keeps 5 % of each CPU for others.
    """
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
        return "with real-time priority (SCHED_FIFO 10)"
    except (PermissionError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid, -10)
        return "at nice -10"
    except PermissionError:
        return "at the default priority (not root): wall times include waits for a CPU"


def _slowest_ms(conn: redis.Redis) -> tuple[float, str, int]:
    """The longest call SLOWLOG recorded since its last reset, what it was, and how many
    calls took over 10 ms."""
    entries = conn.slowlog_get(100_000)
    if not entries:
        return 0.0, "(none over 1 ms)", 0
    worst = max(entries, key=lambda e: e["duration"])
    command = worst["command"]
    text = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
    over = sum(1 for e in entries if e["duration"] > 10_000)
    return worst["duration"] / 1000, text[:60], over


def _fill(store: ItemStore, n: int) -> float:
    scorer = next(s for s in load_all(TABLES) if s.version == "2026.1").scorer()
    calls = [Call(type="incident", impact=i, urgency=u) for i in IMPACTS for u in URGENCIES]
    started = time.perf_counter()
    for k in range(n):
        call = calls[k % len(calls)]
        now = datetime.now(UTC)
        store.enqueue(call, scorer.score(call, now), "bench", f"R{k}", {"k": k}, now)
    return time.perf_counter() - started


def _check(conn: redis.Redis, queues: list[str], waiting: int, held: list[str]) -> list[str]:
    """What is wrong with the queues after the re-score (empty when all is well)."""
    problems = []
    listed: list[str] = []
    for name in queues:
        ids = [i.decode() for i in conn.lrange(keys.queue_key(name), 0, -1)]  # type: ignore[union-attr]
        if ids != sorted(ids):
            problems.append(f"{name} is not in seniority order")
        listed += ids
    if len(listed) != len(set(listed)) or len(listed) != waiting:
        problems.append(f"{len(listed)} entries ({len(set(listed))} ids) for {waiting} waiting")
    store = ItemStore(conn)
    for item in store.get_many(held):
        if item.state is not ItemState.STARTED or item.lease is None:
            problems.append(f"item in hand {item.id} lost its lease")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=50_000)
    args = parser.parse_args(argv)
    print("machine:", ", ".join(f"{k}={v}" for k, v in machine().items()))
    sets = {s.version: s for s in load_all(TABLES)}
    queues = hand_out_order(sets["2027.1"].tables, [TEAM])
    tmp = Path(tempfile.mkdtemp(prefix="usm-bench-rescore-"))
    server = EmbeddedRedis(tmp, free_port())
    conn = redis.Redis.from_url(server.start())
    try:
        print(f"redis-server runs {_isolate(int(conn.info('server')['process_id']))}")
        conn.config_set("slowlog-log-slower-than", 1000)  # microseconds
        conn.config_set("slowlog-max-len", 100_000)
        store = ItemStore(conn, DispatchConfig())
        conn.slowlog_reset()
        fill_s = _fill(store, args.items)
        fill_worst, _, fill_over = _slowest_ms(conn)
        held = []
        for _ in range(args.items // 100):
            got = pop(conn, queues, [], "bench-worker", now_ms(), 3_600_000)
            assert isinstance(got, Leased)
            held.append(got.id)
        conn.slowlog_reset()
        started = time.perf_counter()
        moved = rescore_all(conn, sets["2027.1"].scorer())
        rescore_s = time.perf_counter() - started
        worst, worst_cmd, over = _slowest_ms(conn)
        problems = _check(conn, queues, args.items - len(held), held)
    finally:
        conn.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.items
    print()
    print_table(
        [
            ("phase", "items", "seconds", "items/s", "longest Redis call (ms)", "calls > 10 ms",
             "target"),
            ("fill: enqueue one by one", n, f"{fill_s:.1f}", f"{n / fill_s:.0f}",
             f"{fill_worst:.2f}", fill_over, ""),
            (f"re-score 2026.1 -> 2027.1 ({moved} moved)", n, f"{rescore_s:.1f}",
             f"{n / rescore_s:.0f}", f"{worst:.2f}", over, f"<= {TARGET_MS:.0f}"),
        ]
    )  # fmt: skip
    print(f"\nre-score rate / enqueue rate: {(n / rescore_s) / (n / fill_s):.2f}x")
    print(f"longest call during the re-score: {worst_cmd}")
    print(f"longest call / target: {worst / TARGET_MS:.2f}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    ok = worst <= TARGET_MS and not problems and moved > 0
    print(f"\ntarget {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
