"""HTTP throughput of the priority endpoints next to bare ceilings, per ASGI server, in one run.

For each server (one worker process, started as a subprocess through ``run_api``, the same code
``usm api`` runs) the bench app serves the product's routes plus two ceilings (bench/_app.py):

- ``POST /v1/priority`` (req/s) next to ``POST /bench/bare``: same app, same middleware, same
  request decoding, a constant decision of the same shape as the answer;
- ``POST /v1/priority/batch`` with 1,000-call batches (decisions/s) next to
  ``POST /bench/bare/batch`` (decode the batch, answer 1,000 constant decisions).

Runs are interleaved (ceiling, product, ceiling, product, ... across servers and rounds) so noise
from other processes on the machine hits every side alike; medians are reported. Besides the
wall-clock rate, each run reads the server's own CPU time from /proc: requests per CPU-second of
the server is what one process would serve with a core to itself, and it drifts far less than the
wall clock when other programs share the machine.

    .venv/bin/python -m bench.http [--servers uvicorn,granian] [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench._common import TABLES, batch_body, call_body, machine, median, print_table
from bench._load import LoadResult, load, tool_name

__all__ = ["main", "tree_cpu"]

TARGET_RATIO = 0.85
"""Issue 2: ``POST /v1/priority`` reaches at least 0.85 of the bare endpoint's req/s."""
TARGET_BATCH = 200_000
"""Issue 2: the batch endpoint scores at least 200,000 decisions/s (1,000-call batches)."""

BATCH = 1000

# (label, path, body kind, calls per request); each product endpoint follows its ceiling.
ENDPOINTS = (
    ("bare", "/bench/bare", "single", 1),
    ("priority", "/v1/priority", "single", 1),
    ("bare_batch", "/bench/bare/batch", "batch", BATCH),
    ("batch", "/v1/priority/batch", "batch", BATCH),
)
PAIRS = (("bare", "priority"), ("bare_batch", "batch"))


@dataclass(frozen=True)
class Run:
    """One load run against one endpoint, with the server's CPU seconds spent during it."""

    load: LoadResult
    cpu: float

    @property
    def per_cpu(self) -> float:
        """Requests per CPU-second of the server process tree."""
        return self.load.requests / self.cpu if self.cpu > 0 else 0.0


def tree_cpu(root: int) -> float:
    """User + system CPU seconds of process ``root`` and all its descendants (Linux /proc)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    ticks = sum(table[p][1] for p in tree if p in table)
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(name: str, tables: Path) -> Iterator[tuple[str, int]]:
    """Start ``run_api`` with the bench app under server ``name``; yield (base URL, pid)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "bench.http",
        "--serve",
        name,
        "--port",
        str(port),
        "--tables",
        str(tables),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(
                    f"{name} exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not answer /healthz within 60 s")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check(url: str, bodies: dict[str, bytes]) -> None:
    """Product and ceiling answer 200 with the same JSON keys, so like is compared with like."""
    got = {}
    for _, path, kind, _ in ENDPOINTS:
        resp = httpx.post(
            f"{url}{path}",
            content=bodies[kind],
            headers={"content-type": "application/json"},
            timeout=30,
        )
        if resp.status_code != 200:
            raise SystemExit(f"{url}{path} answered {resp.status_code}: {resp.text[:300]}")
        got[path] = resp.json()
    a, b = got["/v1/priority"], got["/bench/bare"]
    if sorted(a) != sorted(b) or len(a["explanation"]) != len(b["explanation"]):
        raise SystemExit(f"ceiling shape differs from the product's: {sorted(a)} vs {sorted(b)}")
    if len(got["/v1/priority/batch"]["decisions"]) != BATCH:
        raise SystemExit("batch endpoint did not answer one decision per call")


def _serve(argv: list[str]) -> int:
    """Child mode: serve the bench app with one server until terminated."""
    from bench._app import create_bench_app
    from service.api.server import run_api
    from service.settings import Settings

    p = argparse.ArgumentParser()
    p.add_argument("--serve", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tables", required=True)
    args = p.parse_args(argv)
    run_api(Settings.from_env(port=args.port, tables=args.tables), args.serve, create_bench_app)
    return 0


def measure(
    servers: list[str], kinds: set[str], rounds: int, seconds: float, conns: dict[str, int],
    tool: str, tables: Path,
) -> dict[tuple[str, str], list[Run]]:  # fmt: skip
    """Start every server, check the answers, warm up, then run all endpoints interleaved."""
    bodies = {"single": call_body(), "batch": batch_body(BATCH)}
    endpoints = [e for e in ENDPOINTS if e[2] in kinds]
    results: dict[tuple[str, str], list[Run]] = {}
    with contextlib.ExitStack() as stack:
        procs = {name: stack.enter_context(serving(name, tables)) for name in servers}
        for url, _ in procs.values():
            check(url, bodies)
            for _, path, kind, _ in endpoints:  # warm-up: caches, allocator, connection pools
                load(tool, f"{url}{path}", bodies[kind], conns[kind], 1)
        for _ in range(rounds):
            for name, (url, pid) in procs.items():
                for label, path, kind, _ in endpoints:
                    before = tree_cpu(pid)
                    r = load(tool, f"{url}{path}", bodies[kind], conns[kind], seconds)
                    results.setdefault((name, label), []).append(Run(r, tree_cpu(pid) - before))
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--serve" in argv:
        return _serve(argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--servers", default="uvicorn,granian", help="comma-separated (default uvicorn,granian)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=3, help="seconds per load run (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="for the single-call endpoints")
    parser.add_argument("--batch-connections", type=int, default=4, help="for the batch endpoints")
    parser.add_argument(
        "--tool", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument(
        "--endpoints", default="single,batch", help="single, batch or both (default)"
    )
    parser.add_argument("--tables", default=str(TABLES), help="table set directory")
    args = parser.parse_args(argv)
    kinds = {k.strip() for k in args.endpoints.split(",")}
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    tool = tool_name(args.tool)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))
    how = "Debian package" if tool == "wrk" else "asyncio on raw sockets"
    if tool == "python" and args.tool == "auto":
        how += "; wrk not found: apt-get install -y wrk"
    print(
        f"load: {tool} ({how}), {args.connections} connections (batch: "
        f"{args.batch_connections}), {args.seconds:g} s per run, {args.rounds} interleaved "
        "rounds, medians; one worker process per server"
    )
    conns = {"single": args.connections, "batch": args.batch_connections}
    results = measure(servers, kinds, args.rounds, args.seconds, conns, tool, Path(args.tables))
    print(f"load1 after the run: {os.getloadavg()[0]:.1f}")
    return report(servers, results)


def report(servers: list[str], results: dict[tuple[str, str], list[Run]]) -> int:
    """Print the table, the ratios and the verdicts; 0 when every target is met."""

    def rps(name: str, label: str) -> float:
        return median([r.load.rps for r in results[(name, label)]])

    def cpu(name: str, label: str) -> float:
        return median([r.per_cpu for r in results[(name, label)]])

    labels = {label for _, label in results}
    per = {label: n for label, _, _, n in ENDPOINTS}
    paths = {label: path for label, path, _, _ in ENDPOINTS}
    errors = {
        k: sum(r.load.bad_status + r.load.socket_errors for r in v) for k, v in results.items()
    }
    header = (
        "server",
        "endpoint",
        "req/s",
        "calls/s",
        "ratio",
        "req/CPU-s",
        "calls/CPU-s",
        "ratio",
    )
    rows: list[tuple[object, ...]] = [(*header, "p99 ms", "errors")]
    for name in servers:
        for bare, prod in (p for p in PAIRS if p[1] in labels):
            for label in (bare, prod):
                w, c, n = rps(name, label), cpu(name, label), per[label]
                ratio_w = f"{w / rps(name, bare):.2f}" if label == prod else "ceiling"
                ratio_c = f"{c / cpu(name, bare):.2f}" if label == prod else "ceiling"
                p99 = median([r.load.p99_ms for r in results[(name, label)]])
                row = (f"{w:,.0f}", f"{w * n:,.0f}", ratio_w, f"{c:,.0f}", f"{c * n:,.0f}", ratio_c)
                rows.append((name, paths[label], *row, f"{p99:.1f}", errors[(name, label)]))
    print_table(rows)
    ok = True
    for name in servers:
        verdicts: list[tuple[str, bool]] = []
        if "priority" in labels:
            wall = rps(name, "priority") / rps(name, "bare")
            norm = cpu(name, "priority") / cpu(name, "bare")
            text = (
                f"/v1/priority {wall:.2f} x ceiling (per CPU-s {norm:.2f}; target {TARGET_RATIO})"
            )
            verdicts.append((text, wall >= TARGET_RATIO))
        if "batch" in labels:
            wall, norm = rps(name, "batch") * BATCH, cpu(name, "batch") * BATCH
            text = f"batch {wall:,.0f} decisions/s (per CPU-s {norm:,.0f}; target {TARGET_BATCH:,})"
            verdicts.append((text, wall >= TARGET_BATCH))
        met = all(v for _, v in verdicts)
        print(f"{name}: " + ", ".join(t for t, _ in verdicts) + f": {'met' if met else 'MISSED'}")
        ok = ok and met
    for label in ("priority", "batch") if len(servers) > 1 else ():
        if label in labels:
            best = max(servers, key=lambda n: rps(n, label))
            others = ", ".join(
                f"{rps(best, label) / rps(n, label):.2f}x {n} "
                f"({cpu(best, label) / cpu(n, label):.2f}x per CPU-s)"
                for n in servers
                if n != best
            )
            print(f"fastest on {paths[label]}: {best}, {others}")
    if any(errors.values()):
        print(f"errors seen: {errors}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
