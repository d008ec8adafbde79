"""What waiting for a replica (``WAIT 1``) costs an item create, side by side in one run.

A primary and one replica (redis-server, loopback). The same ``ItemStore.enqueue`` runs from
4 threads with and without the replica confirmation, interleaved over rounds; both sides talk to
the same primary with the same replica attached, so the only difference is the ``WAIT``.
Reported: items/s (median of rounds) and the p50/p99 of one create.

Target: confirmed creates keep >= 0.5x the throughput of unconfirmed ones (the confirmation is
one more reply on the same round trip, plus the replica's acknowledgement).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench._common import TABLES, median, print_table
from service.core.calls import Call
from service.dispatch.config import DispatchConfig
from service.dispatch.replicas import ReplicaWait, require_replicas
from service.dispatch.store import ItemStore
from service.embedded_redis import find_redis_server, free_port
from service.files.loader import load_all

__all__ = ["TARGET_RATIO", "replica_cost"]

TARGET_RATIO = 0.5
THREADS = 4


@contextmanager
def _pair(tmp: Path) -> Iterator[tuple[int, int]]:
    ports = free_port(), free_port()
    procs = []
    try:
        for n, port in enumerate(ports):
            args = [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            args += ["--dir", str(tmp), "--dbfilename", f"dump{n}.rdb"]
            if n:
                args += ["--replicaof", "127.0.0.1", str(ports[0])]
            procs.append(
                subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        primary = redis.Redis(port=ports[0])
        deadline = time.monotonic() + 30
        while True:
            try:
                info = primary.info("replication")
                if info.get("slave0", {}).get("state") == "online":
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not come online")
            time.sleep(0.05)
        primary.close()
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def _run(store: ItemStore, n: int, tag: str, lat: list[float]) -> float:
    scorer = next(s for s in load_all(TABLES) if s.version == "2026.1").scorer()
    call = Call(type="incident", impact="user", urgency="low")
    now = datetime.now(UTC)
    decision = scorer.score(call, now)
    lock = threading.Lock()

    def work(k: int) -> None:
        mine: list[float] = []
        for i in range(k, n, THREADS):
            t0 = time.perf_counter()
            store.enqueue(call, decision, "bench", f"{tag}-{i}", None, now)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.perf_counter() - t0)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def replica_cost(items: int, rounds: int) -> bool:
    """Measure and print the cost of the replica confirmation; True when the target is met."""
    tmp = Path(tempfile.mkdtemp(prefix="usm-bench-replicas-"))
    rate: dict[str, list[float]] = {"wait": [], "none": []}
    lat: dict[str, list[float]] = {"wait": [], "none": []}
    try:
        with _pair(tmp) as (primary, _):
            confirmed = redis.Redis(port=primary, max_connections=THREADS * 2)
            require_replicas(confirmed, ReplicaWait(replicas=1, timeout_ms=1000))
            plain = redis.Redis(port=primary, max_connections=THREADS * 2)
            stores = {
                "wait": ItemStore(confirmed, DispatchConfig()),
                "none": ItemStore(plain, DispatchConfig()),
            }
            for key, store in stores.items():
                _run(store, 200, f"warm-{key}", [])
            for r in range(rounds):
                for key, store in stores.items():
                    rate[key].append(_run(store, items, f"{key}-{r}", lat[key]))
                print(f"replicas round {r + 1}: WAIT 1 {rate['wait'][-1]:.0f} items/s, "
                      f"no wait {rate['none'][-1]:.0f} items/s", flush=True)  # fmt: skip
            confirmed.close()
            plain.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = median(rate["wait"]) / median(rate["none"])
    print_table(
        [
            ("replica confirmation (4 threads)", "items/s", "p50 ms", "p99 ms"),
            *[
                (
                    label,
                    f"{median(rate[key]):.0f}",
                    f"{_pct(lat[key], 50):.2f}",
                    f"{_pct(lat[key], 99):.2f}",
                )
                for key, label in (("none", "create, no wait"), ("wait", "create + WAIT 1"))
            ],
            ("ratio (WAIT / no wait)", f"{ratio:.2f}x", "", f"target >= {TARGET_RATIO}x"),
        ]
    )
    ok = ratio >= TARGET_RATIO
    print(f"replica confirmation target {'met' if ok else 'NOT met'}")
    return ok
