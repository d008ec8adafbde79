"""Cost of a ``/metrics`` scrape with 20 teams x 5 priorities, and whether it grows with items.

Four ``usm api`` processes run side by side on one redis-server, each on its own database:
empty queues, 5,000 and 50,000 queued items spread over 20 teams x 5 priorities (100 queues),
and 50,000 items in multiprocess mode as under ``usm serve``, where every queue has seen work
so every item counter and histogram series exists (the most a scrape has to merge). Scrapes are
interleaved A/B/C/D so noise from other processes hits all alike; ``GET /healthz`` on the same
servers is the HTTP floor. The scrape must stay under TARGET_MS and the 50k/5k ratio near 1:
queue state is read with LLEN / LINDEX / ZCOUNT per queue, never by walking items.

Also measured in-process: what counting decisions adds to scoring a 1,000-call batch.

    .venv/bin/python -m bench.metrics [--rounds 40] [--small 5000] [--large 50000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import httpx
import msgspec
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench._common import ROOT, default_scorer, interleave, machine, make_calls, median, print_table
from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.items import new_item_id
from service.metrics.decisions import record_decisions
from tests.support.redis_server import RedisServer, free_port

__all__ = ["main"]

TARGET_MS = 50.0
TEAMS = 20
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
USM = Path(sys.executable).with_name("usm")


def make_tables(out: Path) -> list[str]:
    """The default 2026.1 set with teams added up to :data:`TEAMS`; returns the team names."""
    target = out / "2026.1"
    shutil.copytree(ROOT / "tables" / "2026.1", target)
    teams_file = target / "teams.toml"
    text = teams_file.read_text()
    have = text.count("[[team]]")
    extra = [f"bench_team_{n:02d}" for n in range(1, TEAMS - have + 1)]
    text += "".join(f'\n[[team]]\nname = "{name}"\n' for name in extra)
    teams_file.write_text(text)
    names = [line.split('"')[1] for line in text.splitlines() if line.startswith("name = ")]
    return names


def fill(conn: redis.Redis, teams: list[str], items: int) -> None:
    """``items`` waiting items spread evenly over every (team, priority) queue.

    Written straight in the dispatch key layout (queue list + due zset), as enqueue leaves them;
    the item hashes are left out because a scrape never reads them.
    """
    queues = [keys.queue_name(t, p) for t in teams for p in PRIORITIES]
    born = datetime.now(UTC) - timedelta(minutes=30)
    at_ms = int(born.timestamp() * 1000)
    due = born.timestamp() + 900
    pipe = conn.pipeline(transaction=False)
    for n in range(items):
        name = queues[n % len(queues)]
        item_id = new_item_id(at_ms + n)
        pipe.rpush(keys.queue_key(name), item_id)
        pipe.zadd(keys.due_key(name), {item_id: due + (n % 7200)})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def start_api(
    tables: Path, redis_url: str, log: Path, multiproc: Path | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "USM_TABLES": str(tables),
        "USM_HOST": "127.0.0.1",
        "USM_PORT": str(port),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if multiproc is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(USM), "api"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"usm api did not start; see {log}")


# A process standing in for the workers of `usm serve`: every queue has handled items, so every
# item counter and both histograms exist for all 100 queues (the most series a scrape merges).
_WORKERS = """
import sys
from service.metrics.instruments import ITEM_HANDLING, ITEM_WAIT, ItemEvent, record
for team in sys.argv[1].split(","):
    for priority in sys.argv[2].split(","):
        for event in ItemEvent:
            record(event, team, priority)
        ITEM_WAIT.labels(team, priority).observe(12.5)
        ITEM_HANDLING.labels(team, priority).observe(0.3)
"""


def fake_workers(multiproc: Path, teams: list[str]) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", _WORKERS, ",".join(teams), ",".join(PRIORITIES)],
        check=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip


class Side(NamedTuple):
    label: str
    items: int
    serve: bool
    """Multiprocess mode as under ``usm serve``, with every queue's worker series present."""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (granian serves from a child).

    CPU time, unlike wall time, hardly moves when other processes compete for the cores, so
    this column is the one to compare across runs on a shared machine.
    """
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            todo += _children(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def timed_get(client: httpx.Client, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response.text


def summarise(text: str) -> tuple[float, int, float]:
    """(queued items reported, number of samples, collector seconds) of one scrape."""
    depth = 0.0
    samples = 0
    collect = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples += 1
            if s.name == "usm_queue_depth":
                depth += s.value
            elif s.name == "usm_queue_collect_seconds":
                collect = s.value
    return depth, samples, collect


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def decision_overhead(rounds: int) -> tuple[float, float]:
    """Median seconds to score 1,000 calls, without and with decision counting."""
    scorer = default_scorer()
    calls = msgspec.convert(make_calls(1000), list[Call])
    now = datetime.now(UTC)

    def plain() -> float:
        started = time.perf_counter()
        scorer.score_many(calls, now)
        return time.perf_counter() - started

    def counted() -> float:
        started = time.perf_counter()
        decisions = scorer.score_many(calls, now)
        record_decisions(decisions, time.perf_counter() - started)
        return time.perf_counter() - started

    runs = interleave(rounds, {"plain": plain, "counted": counted})
    return median(runs["plain"]), median(runs["counted"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="scrapes per side")
    parser.add_argument("--small", type=int, default=5_000, help="queued items, small side")
    parser.add_argument("--large", type=int, default=50_000, help="queued items, large side")
    args = parser.parse_args(argv)
    sides = [
        Side("empty", 0, serve=False),
        Side("small", args.small, serve=False),
        Side("large", args.large, serve=False),
        Side("large, serve", args.large, serve=True),
    ]

    with tempfile.TemporaryDirectory(prefix="usm-bench-metrics-") as tmp:
        work = Path(tmp)
        teams = make_tables(work / "tables")
        server = RedisServer(work / "redis", appendonly=False)
        server.start()
        procs: list[subprocess.Popen[bytes]] = []
        clients: dict[Side, httpx.Client] = {}
        try:
            for db, side in enumerate(sides):
                url = server.url.rsplit("/", 1)[0] + f"/{db}"
                conn = redis.Redis.from_url(url)
                conn.flushdb()
                fill(conn, teams, side.items)
                multiproc = None
                if side.serve:
                    multiproc = work / f"metrics-{db}"
                    multiproc.mkdir()
                    fake_workers(multiproc, teams)
                proc, api = start_api(work / "tables", url, work / f"api-{db}.log", multiproc)
                procs.append(proc)
                clients[side] = httpx.Client(base_url=api, timeout=10)
            for client in clients.values():  # warm up: first scrape builds the collectors
                timed_get(client, "/metrics")
                timed_get(client, "/healthz")
            pids = {side: proc.pid for side, proc in zip(sides, procs, strict=True)}
            cpu_before = {side: cpu_seconds(pid) for side, pid in pids.items()}
            scrapes = interleave(
                args.rounds,
                {side: (lambda c=c: timed_get(c, "/metrics")) for side, c in clients.items()},
            )
            cpu = {
                side: (cpu_seconds(pid) - cpu_before[side]) / args.rounds * 1000
                for side, pid in pids.items()
            }
            floors = interleave(
                args.rounds,
                {side: (lambda c=c: timed_get(c, "/healthz")[0]) for side, c in clients.items()},
            )
            overhead = decision_overhead(max(args.rounds, 15))
        finally:
            for client in clients.values():
                client.close()
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=15)
            server.stop()

    return report(Results(teams, sides, scrapes, floors, cpu, overhead))


class Results(NamedTuple):
    teams: list[str]
    sides: list[Side]
    scrapes: dict[Side, list[tuple[float, str]]]
    floors: dict[Side, list[float]]
    cpu: dict[Side, float]
    overhead: tuple[float, float]


def report(r: Results) -> int:
    """Print the table and verdicts; exit status 1 when the target is missed."""
    teams, sides, scrapes, floors, cpu, overhead = r
    print("machine:", ", ".join(f"{k}={v}" for k, v in machine().items()))
    print(f"teams={len(teams)} priorities={len(PRIORITIES)} queues={len(teams) * len(PRIORITIES)}")
    rows: list[list[object]] = [
        ["side", "queued items", "samples", "scrape p50 ms", "scrape p95 ms", "server CPU ms",
         "redis read p50 ms", "/healthz p50 ms", "bytes"],
    ]  # fmt: skip
    p50: dict[Side, float] = {}
    for side in sides:
        times = [t for t, _ in scrapes[side]]
        reported, samples, _ = summarise(scrapes[side][-1][1])
        if reported != side.items:
            raise SystemExit(f"{side.label}: scrape reports {reported:.0f} items, not {side.items}")
        collects = [summarise(text)[2] * 1000 for _, text in scrapes[side]]
        p50[side] = median(times)
        rows.append(
            [side.label, f"{side.items:,}", samples, f"{p50[side]:.1f}", f"{p95(times):.1f}",
             f"{cpu[side]:.1f}", f"{median(collects):.2f}", f"{median(floors[side]):.1f}",
             f"{len(scrapes[side][-1][1]):,}"],
        )  # fmt: skip
    print_table(rows)
    small, large, serve = sides[1], sides[2], sides[3]
    wall, spent = p50[large] / p50[small], cpu[large] / cpu[small]
    print(
        f"\n{large.items:,} / {small.items:,} queued items: scrape p50 x{wall:.2f}, server CPU "
        f"x{spent:.2f} (must stay near 1: the cost does not grow with items)"
    )
    worst = max(p50[large], p50[serve])
    verdict = "meets" if worst <= TARGET_MS else "MISSES"
    print(f"slowest scrape p50 at {large.items:,} items: {worst:.1f} ms, {verdict} the "
          f"{TARGET_MS:.0f} ms target")  # fmt: skip
    plain, counted = overhead
    print(
        f"\nscoring 1,000 calls: {plain * 1e3:.3f} ms plain, {counted * 1e3:.3f} ms with decision "
        f"counting: x{counted / plain:.3f}"
    )
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
