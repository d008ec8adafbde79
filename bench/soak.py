"""Soak: ``usm serve`` (API, workers, embedded Redis) for N minutes at half its measured maximum
rate, mixed scoring and dispatch, keys and rate limits on.

1. Start ``usm serve`` exactly as the README runs it (its own Redis with AOF under a temp dir,
   one worker process per push team), with an API key and a per-key rate limit configured.
2. Measure the maximum rate of the request mix with a closed loop (``--concurrency`` clients).
3. Run the same mix open-loop, paced at half that rate, for ``--minutes``.
4. Wait until every accepted item is handled, then account for each one in Redis.

The mix: 73% ``POST /v1/priority``, 5% ``POST /v1/priority/batch`` (50 calls), 20%
``POST /v1/items`` (a tenth of them retries of an earlier ticket, which must return the same
item), 2% ``GET /v1/items/{id}``. Items route only to teams that have workers.

Pass/fail (issue 7): 0 errors (any answer but the expected 2xx, any socket error, a retry
answering a different item); RSS of the serve process tree grows < 10% from the end of warm-up
to the end; every accepted item completed (none queued, in flight, dead or missing).

    .venv/bin/python -m bench.soak [--minutes 10] [--measure 20] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis

from bench._common import ROOT, TABLES, machine, make_calls, print_table
from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.config import DispatchConfig
from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from service.embedded_redis import free_port
from service.files.loader import load_all
from service.security.keys import hash_key, new_key
from worker.runner import worker_teams

__all__ = ["main"]

RUN_CLI = "import sys; from service.cli.main import main; sys.exit(main(sys.argv[1:]))"
MAX_RSS_GROWTH = 0.10
MIX = (("score", 73), ("batch", 5), ("item", 20), ("read", 2))
BATCH = 50


@dataclass
class Tally:
    """What the load saw, per request kind."""

    ok: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    items: dict[str, str] = field(default_factory=dict)  # external id -> item id
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=1000))  # external ids
    latency: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    by_kind: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds
    skipped: int = 0

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 10:
            self.samples.append(f"{kind}: {what}")


class Mix:
    """Builds the requests of the mix; item calls only for teams that have workers."""

    def __init__(self, seed: int, prefix: str) -> None:
        loaded = load_all(TABLES)[-1]
        scorer = loaded.scorer()
        teams = set(worker_teams(loaded.tables))
        now = datetime.now(UTC)
        calls = make_calls(4000, seed)
        self.calls = calls
        self.item_calls = [
            c for c in calls if scorer.score(msgspec.convert(c, Call), now).team in teams
        ]
        assert self.item_calls, "no call routes to a team with workers"
        self.rng = random.Random(seed)
        self.kinds = [k for k, _ in MIX]
        self.weights = [w for _, w in MIX]
        self.n = 0
        self.prefix = prefix

    def next(self, tally: Tally) -> tuple[str, str, str, dict[str, Any] | None]:
        """``(kind, method, path, json)`` of the next request."""
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "read" and not tally.items:
            kind = "score"
        if kind == "score":
            return kind, "POST", "/v1/priority", self.rng.choice(self.calls)
        if kind == "batch":
            start = self.rng.randrange(len(self.calls) - BATCH)
            return kind, "POST", "/v1/priority/batch", {"calls": self.calls[start : start + BATCH]}
        if kind == "read":
            item_id = tally.items[self.rng.choice(tally.recent)]
            return kind, "GET", f"/v1/items/{item_id}", None
        if tally.items and self.rng.random() < 0.1:
            ext = self.rng.choice(tally.recent)  # a ticketing tool's retry
            kind = "retry"
        else:
            self.n += 1
            ext = f"{self.prefix}-{self.n}"
        body = {**self.rng.choice(self.item_calls), "source": "soak", "external_id": ext}
        return kind, "POST", "/v1/items", body


async def _one(client: httpx.AsyncClient, mix: Mix, tally: Tally) -> None:
    kind, method, path, body = mix.next(tally)
    t0 = time.monotonic()
    try:
        r = await client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        tally.error(kind, f"{type(exc).__name__}: {exc}")
        return
    took = time.monotonic() - t0
    tally.latency.append((t0, took))
    tally.by_kind.setdefault(kind, []).append(took)
    expected = {"item": (201,), "retry": (200,)}.get(kind, (200,))
    if r.status_code not in expected:
        tally.error(kind, f"{r.status_code} {r.text[:160]}")
        return
    if kind in ("item", "retry"):
        assert body is not None
        ext, item_id = body["external_id"], r.json()["id"]
        if ext not in tally.items:
            tally.recent.append(ext)
        if tally.items.setdefault(ext, item_id) != item_id:
            tally.error(kind, f"retry of {ext} answered item {item_id}, not {tally.items[ext]}")
            return
    tally.ok[kind] += 1


async def closed_loop(base: str, headers: dict[str, str], seconds: float, clients: int) -> float:
    """Requests per second of the mix with ``clients`` always-busy clients."""
    mix, tally = Mix(seed=1, prefix="max"), Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:
        end = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < end:
                await _one(c, mix, tally)

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.monotonic() - started
    if tally.errors:
        print(f"  (max-rate run: {sum(tally.errors.values())} errors: {tally.samples[:3]})")
    return sum(tally.ok.values()) / elapsed


async def paced(
    base: str,
    headers: dict[str, str],
    rate: float,
    seconds: float,
    clients: int,
    on_tick: Any,
) -> tuple[Tally, float]:
    """The mix at ``rate`` requests/s for ``seconds``; returns the tally and the achieved rate."""
    mix, tally = Mix(seed=2, prefix="soak"), Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    gate = asyncio.Semaphore(clients)
    pending: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:

        async def fire() -> None:
            async with gate:
                await _one(c, mix, tally)

        started = time.monotonic()
        sent = 0
        next_tick = started
        while (now := time.monotonic()) - started < seconds:
            due = int((now - started) * rate)
            while sent < due:
                sent += 1
                if len(pending) >= 2 * clients:
                    # The client (or the server) cannot keep the pace: skip rather than build an
                    # unbounded backlog that would burst later; the shortfall shows in the rate.
                    tally.skipped += 1
                    continue
                task = asyncio.create_task(fire())
                pending.add(task)
                task.add_done_callback(pending.discard)
            if now >= next_tick:
                on_tick(now - started, tally)
                next_tick += 5.0
            await asyncio.sleep(0.002)
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - started
    return tally, sum(tally.ok.values()) / elapsed


def _tree(root: int) -> dict[int, str]:
    """``pid -> command name`` of ``root`` and all its descendants."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents[int(entry.name)] = ppid
        names[int(entry.name)] = name
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return {p: names.get(p, "?") for p in found}


def rss(root: int) -> dict[str, int]:
    """Resident set size in KiB of the serve process tree, summed per process kind."""
    total: Counter[str] = Counter()
    for pid, name in _tree(root).items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                kind = "redis" if "redis" in name else name
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    cmd = []
                if b"worker" in cmd:
                    kind = "workers"
                elif kind != "redis":
                    kind = "api (+serve)"
                total[kind] += int(line.split()[1])
    total["service (api+workers)"] = total["api (+serve)"] + total["workers"]
    return dict(total)


def account(conn: redis.Redis, ids: list[str], wait: float) -> Counter[str]:
    """States of every accepted item once handling has caught up (or ``wait`` ran out)."""
    store = ItemStore(conn, DispatchConfig())
    deadline = time.monotonic() + wait
    while True:
        states: Counter[str] = Counter()
        for i in range(0, len(ids), 1000):
            chunk = ids[i : i + 1000]
            found = store.get_many(chunk)
            states["missing"] += len(chunk) - len(found)
            states.update(item.state.value for item in found)
        if states[ItemState.COMPLETED.value] == len(ids) or time.monotonic() > deadline:
            return states
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration (default 10)")
    parser.add_argument("--measure", type=float, default=20.0, help="max-rate run, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="client connections")
    parser.add_argument(
        "--keep", default=None, help="keep serve.log and the Redis data and log in this directory"
    )
    args = parser.parse_args(argv)
    print(" ".join(f"{k}={v}" for k, v in machine().items()))
    key = new_key()
    headers = {"Authorization": f"Bearer {key}"}
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="usm-soak-") as scratch:
        tmp = args.keep or scratch
        port, redis_port = free_port(), free_port()
        env = {
            **os.environ,
            "USM_PORT": str(port),
            "USM_REDIS_PORT": str(redis_port),
            "USM_DATA_DIR": str(Path(tmp) / "var"),
            "USM_TABLES": str(TABLES),
            "USM_API_KEYS": f"soak:score,dispatch,admin:{hash_key(key)}",
            "USM_RATE_LIMIT": "100000/second",  # on (and counted in Redis), never reached
        }
        env.pop("REDIS_URL", None)
        log_path = Path(tmp) / "serve.log"
        with log_path.open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-c", RUN_CLI, "serve"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            return _run(args, serve, base, headers, redis_port, log_path)
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
            text = log_path.read_text(errors="replace")
            if key in text:
                print("FAIL: the API key appeared in the serve log")


def _minutes(
    latency: list[tuple[float, float]], loads: list[tuple[float, float]]
) -> list[list[object]]:
    """Requests, rate, latency percentiles and machine load per minute: does anything degrade?

    The load average (every process on the machine, the bench's own included) tells a slow
    minute caused by neighbours on the shared cores from one caused by the service.
    """
    if not latency:
        return [["minute", "requests"]]
    start = min(t for t, _ in latency)
    buckets: dict[int, list[float]] = {}
    for t, d in latency:
        buckets.setdefault(int((t - start) // 60), []).append(d)
    load_by: dict[int, list[float]] = {}
    for at, load1 in loads:
        load_by.setdefault(int(at // 60), []).append(load1)
    rows: list[list[object]] = [["minute", "requests", "req/s", "p50 ms", "p99 ms", "load1"]]
    for minute, values in sorted(buckets.items()):
        values.sort()
        p50 = values[len(values) // 2] * 1000
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        rate = f"{len(values) / 60:.0f}"
        load = f"{max(load_by.get(minute) or [float('nan')]):.1f}"
        rows.append([minute + 1, len(values), rate, f"{p50:.1f}", f"{p99:.1f}", load])
    return rows


def _rss_report(samples: list[tuple[float, dict[str, int]]], warmup: float) -> float:
    """Print RSS per process kind from the end of warm-up to the end; the service's growth."""
    base_rss = next(s for at, s in samples if at >= warmup)
    end_rss = samples[-1][1]
    rows: list[list[object]] = []
    growth_total = 0.0
    for kind in sorted(end_rss):
        before, after = base_rss.get(kind, 0), end_rss[kind]
        growth = (after - before) / before if before else 0.0
        if kind.startswith("service"):
            growth_total = growth
        rows.append([kind, f"{before / 1024:.1f}", f"{after / 1024:.1f}", f"{growth:+.1%}"])
    print()
    print_table([["process", f"RSS MiB at {warmup:.0f}s", "RSS MiB at end", "growth"], *rows])
    return growth_total


def _wait_ready(serve: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if serve.poll() is not None:
            print(log_path.read_text(errors="replace")[-3000:])
            raise SystemExit("usm serve exited during start-up")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("usm serve did not become ready in 60 s")
        time.sleep(0.2)


def _run(
    args: argparse.Namespace,
    serve: subprocess.Popen[bytes],
    base: str,
    headers: dict[str, str],
    redis_port: int,
    log_path: Path,
) -> int:
    _wait_ready(serve, base, log_path)
    conn = redis.Redis(port=redis_port)
    print(f"usm serve up: API {base}, embedded Redis :{redis_port}, pid tree {_tree(serve.pid)}")

    maximum = asyncio.run(closed_loop(base, headers, args.measure, args.concurrency))
    rate = maximum / 2
    used_before = int(conn.info("memory")["used_memory"])
    seconds = args.minutes * 60
    print(f"max rate of the mix: {maximum:.0f} req/s; soaking at {rate:.0f} req/s "
          f"for {args.minutes:g} min")  # fmt: skip
    warmup = min(60.0, seconds / 6)
    samples: list[tuple[float, dict[str, int]]] = []

    loads: list[tuple[float, float]] = []

    def tick(at: float, tally: Tally) -> None:
        samples.append((at, rss(serve.pid)))
        loads.append((at, os.getloadavg()[0]))
        if int(at) % 60 < 5:
            done = sum(tally.ok.values())
            print(f"  t={at:5.0f}s ok={done} errors={sum(tally.errors.values())} "
                  f"rss={samples[-1][1]['service (api+workers)'] / 1024:.0f} MiB")  # fmt: skip

    tally, achieved = asyncio.run(paced(base, headers, rate, seconds, args.concurrency * 4, tick))
    samples.append((seconds, rss(serve.pid)))
    ids = sorted(set(tally.items.values()))
    states = account(conn, ids, wait=120)
    used_after = int(conn.info("memory")["used_memory"])
    queued = sum(conn.llen(k) for k in conn.scan_iter(keys.queue_key("usm.*")))
    inflight = conn.zcard(keys.INFLIGHT)
    conn.close()

    growth_total = _rss_report(samples, warmup)
    errors = sum(tally.errors.values())
    print()
    print_table(_minutes(tally.latency, loads))
    print()
    kinds = ("score", "batch", "item", "retry", "read")
    rows: list[list[object]] = [["kind", "ok", "errors", "p50 ms", "p99 ms", "max ms"]]
    for k in kinds:
        took = sorted(tally.by_kind.get(k) or [0.0])
        p50, p99 = took[len(took) // 2], took[min(len(took) - 1, int(len(took) * 0.99))]
        ms = [f"{v * 1000:.1f}" for v in (p50, p99, took[-1])]
        rows.append([k, tally.ok[k], tally.errors[k], *ms])
    print_table(rows)
    completed = states[ItemState.COMPLETED.value]
    print()
    print(f"requests: {sum(tally.ok.values())} ok at {achieved:.0f} req/s (target {rate:.0f}; "
          f"{tally.skipped} not sent: client at its limit), errors {errors}")  # fmt: skip
    for sample in tally.samples:
        print(f"  error: {sample}")
    print(f"items: {len(ids)} accepted, {completed} completed, states {dict(states)}, "
          f"queued {queued}, in flight {inflight}")  # fmt: skip
    checks = {
        "0 errors": errors == 0,
        f"service RSS growth < {MAX_RSS_GROWTH:.0%} ({growth_total:+.1%})": (
            growth_total < MAX_RSS_GROWTH
        ),
        "every item accounted for (completed)": completed == len(ids)
        and queued == 0
        and inflight == 0,
    }
    per_item = (used_after - used_before) / max(len(ids), 1)
    days = DispatchConfig().result_ttl // 86400
    print(f"Redis used_memory {used_before / 2**20:.1f} -> {used_after / 2**20:.1f} MiB during "
          f"the soak: {per_item / 1024:.1f} KiB per accepted item (completed items and their "
          f"history are kept {days} days by design)")  # fmt: skip
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}: {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
