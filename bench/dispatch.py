"""Dispatch end to end: usm next to plain RQ, Dramatiq, Celery and a limit loop, on one Redis.

Every system runs one worker process with a no-op handler on the same Redis, in interleaved
rounds (medians reported); the peers are set up in bench/_peers.py as their docs advise.

- **throughput**: items/s from the first enqueue (4 client threads) to the last item finished.
  usm both by direct ``ItemStore.enqueue`` (like the peers' own clients) and through
  ``POST /v1/items`` on a ``usm api`` process.
- **idle dispatch latency**: from just before the enqueue to the first line of the handler (a
  timestamp pushed to Redis; one machine, one clock).
- **Redis commands per item** (INFO commandstats) and **memory per queued / finished item**
  (``used_memory``), and the guarantees each gives.

Targets (issue 14): usm direct throughput >= 1.0x the fastest of RQ, Dramatiq and Celery and
>= 0.5x the limit; idle dispatch p99 <= 5 ms direct, <= 10 ms through HTTP. Exits 1 on a miss.

A third section, **replica confirmation** (:mod:`bench._replicas`), measures what ``WAIT 1``
after each create costs (items/s and p99, with and without, same run; target >= 0.5x).

    .venv/bin/python -m bench.dispatch [--items 2000] [--rounds 3] [--latency 200]
    .venv/bin/python -m bench.dispatch --only replicas
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from rq import Queue

from bench import _peers
from bench._common import ROOT, TABLES, machine, median, print_table
from bench._dispatch_jobs import STAMPS, rq_job
from bench._replicas import replica_cost
from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.store import ItemStore
from service.embedded_redis import EmbeddedRedis, free_port
from service.files.loader import load_all

__all__ = ["main"]

TARGET_RATIO = 1.0
RUN_CLI = "import sys; from service.cli.main import main; sys.exit(main(sys.argv[1:]))"
HANDLER = "bench._dispatch_jobs:handle"
RQ_QUEUE = "bench-plain-rq"
CALL = {"type": "incident", "impact": "user", "urgency": "low"}  # P5: below four empty levels
THREADS = 4


def _tables(tmp: Path) -> Path:
    """The shipped 2026.1 only (what :class:`Bench` scores with, whatever the date), with
    service_desk's handler set to the bench's no-op."""
    target = tmp / "tables"
    shutil.copytree(TABLES / "2026.1", target / "2026.1")
    for teams in target.glob("*/teams.toml"):
        line = 'name = "service_desk"\n'
        text = teams.read_text()
        teams.write_text(
            text.replace(line, f'{line}handler = {{ kind = "python", target = "{HANDLER}" }}\n')
        )
    return target


@contextmanager
def _processes(env: dict[str, str], tmp: Path, api_port: int) -> Iterator[dict[str, int]]:
    """Every system's worker process (and usm's API), started; yields their pids by name."""
    procs = []
    logs = []
    pids: dict[str, int] = {}

    def start(name: str, args: list[str]) -> None:
        log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115
        logs.append(log)
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log))
        pids[name] = procs[-1].pid

    start(
        "api",
        [sys.executable, "-c", RUN_CLI, "--log-level", "WARNING", "api", "--port", str(api_port)],
    )
    start(
        "usm-worker",
        [
            sys.executable,
            "-c",
            RUN_CLI,
            "--log-level",
            "WARNING",
            "worker",
            "--team",
            "service_desk",
        ],
    )
    rq_cli = str(Path(sys.executable).with_name("rq"))
    start("rq-worker", [rq_cli, "worker", "-w", "rq.SimpleWorker", "-q", "--url", env["REDIS_URL"],
                        RQ_QUEUE])  # fmt: skip
    for name, args in _peer_workers():
        start(name, args)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("API did not start; see " + str(tmp / "api.log"))
            time.sleep(0.1)
        time.sleep(2)  # workers import and register
        yield pids
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def _wait_count(read: Callable[[], int], target: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while read() < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {read()} of {target} done")
        time.sleep(0.002)
    return time.perf_counter()


def _spread(n: int, work: Callable[[int], object]) -> None:
    """Run ``work(i)`` for i in 0..n-1 over THREADS threads."""

    def run(k: int) -> None:
        for i in range(k, n, THREADS):
            work(i)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def usm_throughput(conn: redis.Redis, base: str, n: int, tag: str) -> float:
    finished = keys.finished_key(keys.queue_name("service_desk", "P5"))
    target = conn.zcard(finished) + n
    clients = [httpx.Client(base_url=base, timeout=30) for _ in range(THREADS)]

    def post(i: int) -> None:
        r = clients[i % THREADS].post(
            "/v1/items", json={**CALL, "source": "bench", "external_id": f"{tag}-{i}"}
        )
        assert r.status_code == 201, r.text

    start = time.perf_counter()
    _spread(n, post)
    end = _wait_count(lambda: int(conn.zcard(finished)), target)
    for c in clients:
        c.close()
    return n / (end - start)


def rq_throughput(conn: redis.Redis, n: int) -> float:
    queue = Queue(RQ_QUEUE, connection=conn)
    finished = queue.finished_job_registry.key
    target = conn.zcard(finished) + n
    start = time.perf_counter()
    _spread(n, lambda i: queue.enqueue(rq_job))
    end = _wait_count(lambda: int(conn.zcard(finished)), target)
    return n / (end - start)


def _latencies(conn: redis.Redis, n: int, send: Callable[[int], None]) -> list[float]:
    conn.delete(STAMPS)
    out = []
    for i in range(n):
        time.sleep(0.01)  # let the worker go idle (blocked on its wake list / BLPOP)
        sent = time.time()
        send(i)
        got = conn.blpop([STAMPS], timeout=10)
        if got is None:
            raise RuntimeError("no timestamp within 10 s")
        out.append((float(got[1]) - sent) * 1000)
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and every live descendant of it (Dramatiq
    and Celery run their workers in child processes)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo += [c for c, parent in parents.items() if parent == p]
    return total


class CpuMeter:
    """CPU seconds a run costs: the system's own processes, Redis (INFO cpu) and this bench
    process (its client threads). Load on the machine slows a run down but hardly changes
    these, so items per CPU-second compare systems where items/s cannot."""

    def __init__(self, conn: redis.Redis, pids: dict[str, int]) -> None:
        self.conn = conn
        self.pids = pids

    def _redis(self) -> float:
        info: dict[str, Any] = self.conn.info("cpu")  # type: ignore[assignment]
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def _bench(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def snapshot(self, names: Sequence[str]) -> tuple[float, float, float]:
        """(the processes named, Redis, this process) CPU seconds so far."""
        own = sum(_process_cpu(self.pids[n]) for n in names)
        return own, self._redis(), self._bench()


CPU_OF = {
    "usm_direct": ("usm-worker",),
    "usm_http": ("usm-worker", "api"),
    "rq": ("rq-worker",),
    "dramatiq": ("dramatiq",),
    "celery": ("celery",),
    "limit": ("limit",),
}
"""The processes whose CPU a system's run costs (besides Redis and the bench's clients)."""


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class Bench:
    """The two systems on one Redis, and the clients that drive them."""

    def __init__(self, conn: redis.Redis, http: httpx.Client) -> None:
        self.conn = conn
        self.http = http
        self.store = ItemStore(conn)
        self.scorer = {s.version: s for s in load_all(TABLES)}["2026.1"].scorer()
        self.call = Call(**CALL)  # type: ignore[arg-type]
        self.rq_queue = Queue(RQ_QUEUE, connection=conn)
        self._sent = itertools.count()

    def _ext(self) -> str:
        return f"lat-{next(self._sent)}"  # next() on a count is atomic: threads share it

    def usm_direct(self, i: int) -> None:
        now = datetime.now(UTC)
        decision = self.scorer.score(self.call, now)
        self.store.enqueue(self.call, decision, "lat", self._ext(), {"stamp": True}, now)

    def usm_direct_plain(self, i: int) -> None:
        now = datetime.now(UTC)
        decision = self.scorer.score(self.call, now)
        self.store.enqueue(self.call, decision, "direct", self._ext(), None, now)

    def usm_http(self, i: int) -> None:
        body = {**CALL, "source": "lat", "external_id": self._ext(), "payload": {"stamp": True}}
        self.http.post("/v1/items", json=body)

    def rq_enqueue(self, i: int) -> None:
        self.rq_queue.enqueue(rq_job, stamp=True)


# --- The peers (issue 14): Dramatiq, Celery and the limit loop, set up in bench/_peers.py ------


def _peer_workers() -> list[tuple[str, list[str]]]:
    """Each peer's worker, one process each, started by its own command."""
    bindir = Path(sys.executable).parent
    return [
        ("dramatiq", [str(bindir / "dramatiq"), "bench._peers", "--processes", "1",
                      "--queues", _peers.DRAMATIQ_QUEUE]),
        ("celery", [str(bindir / "celery"), "-A", "bench._peers:celery_app", "worker",
                    "--pool", "solo", "-Q", _peers.CELERY_QUEUE, "--without-gossip",
                    "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]),
        ("limit", [sys.executable, "-m", "bench._peers"]),
    ]  # fmt: skip


LIMIT_ENQUEUE = """
-- The limit row's enqueue: the item at the tail of its priority list; wake an idle worker.
-- KEYS[1]: the priority list, KEYS[2]: the wake list. ARGV[1]: the item.
redis.call('RPUSH', KEYS[1], ARGV[1])
if redis.call('LLEN', KEYS[2]) == 0 then redis.call('RPUSH', KEYS[2], 1) end
return 1
"""


class Peers:
    """Direct enqueue into each system, the way its own client does it."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn
        self.limit_enqueue = conn.register_script(LIMIT_ENQUEUE)
        self._sent = itertools.count()

    def dramatiq(self, stamp: bool = False) -> None:
        _peers.dramatiq_noop.send(stamp)

    def celery(self, stamp: bool = False) -> None:
        _peers.celery_noop.apply_async((stamp,), priority=5)

    def limit(self, stamp: bool = False) -> None:
        item = f"{'s' if stamp else 'i'}{next(self._sent)}"
        # P5, like the usm side: below four empty levels.
        self.limit_enqueue(keys=[_peers.LIMIT_QUEUES[4], "bench:limit:wake"], args=[item])

    def done(self, name: str) -> Callable[[], int]:
        """How many items ``name`` has finished (a counter the bench polls)."""
        conn = self.conn
        if name == "limit":
            return lambda: int(conn.get(_peers.LIMIT_DONE) or 0)
        raise KeyError(name)


def _drained(conn: redis.Redis, name: str) -> bool:
    """Nothing of ``name`` left queued or unacked (Dramatiq and Celery keep no finished count)."""
    if name == "dramatiq":
        return int(conn.hlen(f"dramatiq:{_peers.DRAMATIQ_QUEUE}.msgs")) == 0
    lists = [k for k in conn.scan_iter(f"{_peers.CELERY_QUEUE}*")]
    queued = sum(int(conn.llen(k)) for k in lists if conn.type(k) == b"list")
    return queued == 0 and int(conn.hlen("unacked")) == 0


def peer_throughput(conn: redis.Redis, peers: Peers, name: str, n: int) -> float:
    """Items/s from the first direct enqueue to the last item finished, for one peer."""
    send = getattr(peers, name)
    start = time.perf_counter()
    if name == "limit":
        target = peers.done("limit")() + n
        _spread(n, lambda i: send())
        end = _wait_count(peers.done("limit"), target)
    else:
        _spread(n, lambda i: send())
        deadline = time.monotonic() + 300
        while not _drained(conn, name):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not finish {n} items")
            time.sleep(0.002)
        end = time.perf_counter()
    return n / (end - start)


def usm_direct_throughput(conn: redis.Redis, bench: Bench, n: int) -> float:
    """usm with ``ItemStore.enqueue`` straight into Redis (like the peers' own clients)."""
    finished = keys.finished_key(keys.queue_name("service_desk", "P5"))
    target = conn.zcard(finished) + n
    start = time.perf_counter()
    _spread(n, bench.usm_direct_plain)
    end = _wait_count(lambda: int(conn.zcard(finished)), target)
    return n / (end - start)


def command_count(conn: redis.Redis) -> int:
    """Commands Redis has run so far, less INFO itself (INFO commandstats)."""
    stats: dict[str, Any] = conn.info("commandstats")  # type: ignore[assignment]
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def memory_per_queued(conn: redis.Redis, enqueue: Callable[[], None], n: int) -> float:
    """Bytes of Redis memory per item queued where no worker takes it (used_memory delta)."""
    before = int(conn.info("memory")["used_memory"])  # type: ignore[index]
    for _ in range(n):
        enqueue()
    after = int(conn.info("memory")["used_memory"])  # type: ignore[index]
    return (after - before) / n


GUARANTEES = {
    # name: (strict priority across levels, crash safety, re-delivery after a worker dies)
    "usm": ("yes (Lua pop over the team's levels)", "yes (lease)", "lease expiry (team setting)"),
    "plain RQ": ("no (one queue; at_front only)", "single-queue worker: BLMOVE to an "
                 "intermediate list; multi-queue: BLPOP, a crash loses the job (rq#1716)",
                 "~90 s heartbeat + maintenance (up to 600 s)"),
    "Dramatiq": ("no (actor priority orders prefetched messages only)",
                 "yes (ack set until the actor returns)", "heartbeat_timeout, 60 s default"),
    "Celery": ("emulated: one list per step, polled in order, prefetch 1",
               "yes with acks_late (unacked hash)", "visibility_timeout, 1 h default"),
    "limit": ("yes (Lua pop over 5 lists)", "yes (lease zset)", "lease deadline (60 s here)"),
}  # fmt: skip


PEERS = ("rq", "dramatiq", "celery")
"""Direct-enqueue systems compared with usm; the target is the fastest of them."""
SIDES = ("usm_direct", "usm_http", "rq", "dramatiq", "celery", "limit")
LABELS = {
    "usm_direct": "usm (direct enqueue)",
    "usm_http": "usm (through HTTP API)",
    "rq": "plain RQ",
    "dramatiq": "Dramatiq",
    "celery": "Celery",
    "limit": "limit (Lua pop+lease, ack)",
}
GUARANTEE_OF = {"usm_direct": "usm", "usm_http": "usm", "rq": "plain RQ", "dramatiq": "Dramatiq",
                "celery": "Celery", "limit": "limit"}  # fmt: skip
TARGET_LIMIT_RATIO = 0.5
TARGET_P99_DIRECT_MS = 5.0
TARGET_P99_HTTP_MS = 10.0


def _report(
    results: dict[str, list[float]],
    lat: dict[str, list[float]],
    commands: dict[str, float],
    queued: dict[str, float],
    finished: dict[str, float],
) -> bool:
    """Print every table; True when every target is met."""
    rate = {k: median(v) for k, v in results.items()}
    rounds = len(results["usm_direct"])

    def per_round(a: str, b: str) -> float:
        # Each round's runs went back to back under the same load: ratio per round, then median.
        return median([results[a][i] / results[b][i] for i in range(rounds)])

    fastest = max(PEERS, key=lambda k: rate[k])
    vs_peer = per_round("usm_direct", fastest)
    vs_limit = per_round("usm_direct", "limit")
    print()
    rows: list[tuple[Any, ...]] = [(
        "system", "items/s", "vs usm direct", "p50 ms", "p99 ms", "commands/item",
        "bytes/queued", "bytes/finished",
    )]  # fmt: skip
    for side in SIDES:
        ratio = "1.00x" if side == "usm_direct" else f"{per_round(side, 'usm_direct'):.2f}x"
        rows.append((
            LABELS[side], f"{rate[side]:,.0f}", ratio, f"{_pct(lat[side], 50):.2f}",
            f"{_pct(lat[side], 99):.2f}", f"{commands.get(side, 0):.1f}",
            f"{queued[side]:,.0f}" if side in queued else "",
            f"{finished[side]:,.0f}" if side in finished else "",
        ))  # fmt: skip
    print_table(rows)
    print()
    g: list[tuple[Any, ...]] = [("system", "strict priority", "crash safety", "re-delivery")]
    for name, (prio, safe, redeliver) in GUARANTEES.items():
        g.append((name, prio, safe, redeliver))
    print_table(g)
    checks = [
        (f"usm direct vs fastest peer ({LABELS[fastest]}) {vs_peer:.2f}x", vs_peer >= TARGET_RATIO,
         f">= {TARGET_RATIO:.1f}x"),
        (f"usm direct vs limit {vs_limit:.2f}x", vs_limit >= TARGET_LIMIT_RATIO,
         f">= {TARGET_LIMIT_RATIO}x"),
        (f"idle dispatch p99 direct {_pct(lat['usm_direct'], 99):.2f} ms",
         _pct(lat["usm_direct"], 99) <= TARGET_P99_DIRECT_MS, f"<= {TARGET_P99_DIRECT_MS:g} ms"),
        (f"idle dispatch p99 through HTTP {_pct(lat['usm_http'], 99):.2f} ms",
         _pct(lat["usm_http"], 99) <= TARGET_P99_HTTP_MS, f"<= {TARGET_P99_HTTP_MS:g} ms"),
    ]  # fmt: skip
    print()
    for text, ok, target in checks:
        print(f"{text} (target {target}): {'met' if ok else 'MISSED'}")
    ok = all(c[1] for c in checks)
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    return ok


def _rounds(
    runs: dict[str, Callable[[int, str], float]],
    meter: CpuMeter,
    n: int,
    rounds: int,
    results: dict[str, list[float]],
    cpu: dict[str, list[tuple[float, ...]]],
) -> None:
    """Interleaved throughput rounds: each round runs every system once, back to back."""
    for r in range(rounds):
        for side, run in runs.items():
            before = meter.snapshot(CPU_OF[side])
            results[side].append(run(n, f"r{r}"))
            after = meter.snapshot(CPU_OF[side])
            cpu[side].append(tuple((b - a) / n for a, b in zip(before, after, strict=True)))
        print(f"round {r + 1}: " + ", ".join(
            f"{side} {results[side][-1]:.0f}/s" for side in SIDES), flush=True)  # fmt: skip


def _report_cpu(cpu: dict[str, list[tuple[float, ...]]]) -> None:
    """CPU per item of each system's throughput rounds (medians), and usm's items per
    CPU-second against Dramatiq's and the limit's. Not targets: the issue's targets are in
    items/s; these say how much of a gap is CPU and how much is waiting on a busy machine."""
    rows: list[tuple[Any, ...]] = [(
        "system", "CPU us/item", "its processes", "Redis", "bench clients", "items/CPU-s",
    )]  # fmt: skip
    total = {side: [sum(r) for r in rounds] for side, rounds in cpu.items()}
    for side in SIDES:
        parts = [median([r[k] for r in cpu[side]]) * 1e6 for k in range(3)]
        rows.append((
            LABELS[side], f"{median(total[side]) * 1e6:,.0f}", f"{parts[0]:,.0f}",
            f"{parts[1]:,.0f}", f"{parts[2]:,.0f}", f"{1 / median(total[side]):,.0f}",
        ))  # fmt: skip
    print()
    print_table(rows)
    for other in ("dramatiq", "limit"):
        ratio = median([b / a for a, b in zip(total["usm_direct"], total[other], strict=True)])
        print(f"usm direct items per CPU-second vs {LABELS[other]}: {ratio:.2f}x")


def _commands_per_item(conn: redis.Redis, run: Callable[[], object], n: int) -> float:
    """Redis commands per item of one throughput run, INFO commandstats before and after.

    The bench's own polling while it waits is in the count too; it polls every 2 ms, so this
    is an upper bound by a few commands per item at most (docs/benchmarks.md)."""
    before = command_count(conn)
    run()
    return (command_count(conn) - before) / n


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=2000, help="items per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=int, default=200, help="samples per latency run")
    parser.add_argument("--memory-items", type=int, default=2000, help="items per memory run")
    parser.add_argument("--only", choices=["replicas"], help="run one section only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    print("machine:", ", ".join(f"{k}={v}" for k, v in machine().items()))
    if args.only == "replicas":
        return 0 if replica_cost(args.items, args.rounds) else 1
    versions = {d: _version(d) for d in ("rq", "dramatiq", "celery", "kombu", "redis")}
    print("peers:", ", ".join(f"{k}={v}" for k, v in versions.items()))

    tmp = Path(tempfile.mkdtemp(prefix="usm-bench-dispatch-"))
    server = EmbeddedRedis(tmp, free_port())
    url = server.start()
    api_port = free_port()
    env = {**os.environ, "REDIS_URL": url, "USM_TABLES": str(_tables(tmp)), "PYTHONPATH": str(ROOT),
           "USM_PYTHON_HANDLERS": HANDLER}  # fmt: skip
    env.pop("USM_API_KEYS", None)
    env.pop("USM_API_KEYS_FILE", None)
    os.environ["REDIS_URL"] = url  # bench._peers reads it when imported below
    conn = redis.Redis.from_url(url)
    print("redis:", conn.info("server")["redis_version"], "AOF",  # type: ignore[index]
          conn.config_get("appendonly")["appendonly"],
          "fsync", conn.config_get("appendfsync")["appendfsync"], "; usm api server:",
          os.environ.get("USM_SERVER", "uvicorn (default)"))  # fmt: skip
    base = f"http://127.0.0.1:{api_port}"
    results: dict[str, list[float]] = {side: [] for side in SIDES}
    lat: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[tuple[float, ...]]] = {side: [] for side in SIDES}
    commands: dict[str, float] = {}
    queued: dict[str, float] = {}
    finished: dict[str, float] = {}
    try:
        _reload_peers(url)
        with (
            _processes(env, tmp, api_port) as pids,
            httpx.Client(base_url=base, timeout=10) as http,
        ):
            meter = CpuMeter(conn, pids)
            bench = Bench(conn, http)
            peers = Peers(conn)
            runs: dict[str, Callable[[int, str], float]] = {
                "usm_direct": lambda n, tag: usm_direct_throughput(conn, bench, n),
                "usm_http": lambda n, tag: usm_throughput(conn, base, n, tag),
                "rq": lambda n, tag: rq_throughput(conn, n),
                **{name: (lambda n, tag, name=name: peer_throughput(conn, peers, name, n))
                   for name in ("dramatiq", "celery", "limit")},
            }  # fmt: skip
            for run in runs.values():  # warm-up: imports, scripts, pools
                run(200, "warm")
            _rounds(runs, meter, args.items, args.rounds, results, cpu)
            for side, run in runs.items():
                mem = int(conn.info("memory")["used_memory"])  # type: ignore[index]
                commands[side] = _commands_per_item(
                    conn, lambda run=run: run(args.items, "cmd"), args.items
                )
                finished[side] = (int(conn.info("memory")["used_memory"]) - mem) / args.items  # type: ignore[index]
            senders = {"usm_direct": bench.usm_direct, "usm_http": bench.usm_http,
                       "rq": bench.rq_enqueue,
                       **{name: (lambda i, name=name: getattr(peers, name)(True))
                          for name in ("dramatiq", "celery", "limit")}}  # fmt: skip
            for _ in range(args.rounds):
                for side, send in senders.items():
                    lat[side] += _latencies(conn, args.latency, send)
            for side, enqueue in _idle_enqueuers(conn, bench, peers).items():
                queued[side] = memory_per_queued(conn, enqueue, args.memory_items)
            queued["usm_http"] = queued["usm_direct"]
    finally:
        conn.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    _report_cpu(cpu)
    ok = _report(results, lat, commands, queued, finished)
    ok = replica_cost(args.items, args.rounds) and ok
    return 0 if ok else 1


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _reload_peers(url: str) -> None:
    """Point bench._peers' clients at this run's Redis (it read REDIS_URL when imported)."""
    import importlib

    importlib.reload(_peers)


def _idle_enqueuers(conn: redis.Redis, bench: Bench, peers: Peers) -> dict[str, Callable[[], None]]:
    """Enqueue one item where no worker takes it, per system (memory per queued item)."""
    idle_rq = Queue("bench-rq-idle", connection=conn)
    idle_call = Call(type="incident", impact="user", urgency="low", category="security")
    scorer = bench.scorer
    counter = itertools.count()

    def usm() -> None:
        now = datetime.now(UTC)
        decision = scorer.score(idle_call, now)  # routed to "security": no worker here
        bench.store.enqueue(idle_call, decision, "idle", f"idle-{next(counter)}", None, now)

    def dramatiq() -> None:
        message = _peers.dramatiq_noop.message().copy(queue_name="bench-dramatiq-idle")
        _peers.dramatiq_broker.enqueue(message)

    def limit() -> None:
        peers.limit_enqueue(keys=["bench:limit:idle:P5", "bench:limit:idle:wake"],
                            args=[f"i{next(counter)}"])  # fmt: skip

    return {
        "usm_direct": usm,
        "rq": lambda: idle_rq.enqueue(rq_job) and None,
        "dramatiq": dramatiq,
        "celery": lambda: (
            _peers.celery_noop.apply_async((False,), priority=5, queue="bench-celery-idle") and None
        ),
        "limit": limit,
    }


if __name__ == "__main__":
    raise SystemExit(main())
