"""HTTP throughput of the service as deployed next to a bare litestar + msgspec app, in one run.

For each server (one worker process each, started as subprocesses through ``run_api``, the code
``usm api`` runs) two apps are served side by side (bench/_app.py):

- **bare**: a plain ``Litestar`` with no middleware, plugins or stores, answering
  ``POST /bench/bare`` (decode a ``Call``, answer a constant decision of the product's shape)
  and ``POST /bench/bare/batch`` (decode a 1,000-call batch, answer 1,000 such decisions);
- **service**: ``create_app`` with production settings, as ``usm serve`` runs it: an API key
  required (``Authorization: Bearer``), the per-key rate limit counted in Redis, Prometheus HTTP
  metrics in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), the decision log flushed to Redis,
  and whatever else ``create_app`` mounts. It serves ``POST /v1/priority`` and
  ``POST /v1/priority/batch``, plus the same two ceilings mounted inside it ("in-app"), which
  split the gap into the cost of the middleware stack and the cost of scoring.

Targets (issue 14): ``/v1/priority`` >= 0.85 x the bare app's ``/bench/bare`` (req/s), the batch
endpoint >= 0.8 x the bare app's batch ceiling. p50/p99 latencies are printed too.

Runs are interleaved (bare, in-app, product, ... across servers and rounds) so noise from other
processes on the machine hits every side alike; medians are reported. Besides the wall-clock
rate, each run reads the server's own CPU time from /proc: requests per CPU-second of the server
is what one process would serve with a core to itself, and drifts far less than the wall clock
when other programs share the machine.

    .venv/bin/python -m bench.http [--servers uvicorn] [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from bench._common import TABLES, batch_body, call_body, machine, median, print_table
from bench._load import LoadResult, load, tool_name
from service.embedded_redis import EmbeddedRedis
from service.security.keys import hash_key, new_key

__all__ = ["free_port", "main", "serving", "tree_cpu"]

TARGET_RATIO = 0.85
"""Issue 14: ``POST /v1/priority`` as deployed reaches 0.85 of the bare app's req/s."""
TARGET_BATCH_RATIO = 0.8
"""Issue 14: the batch endpoint as deployed reaches 0.8 of the bare app's batch ceiling."""

TARGET_SOURCE_RATIO = 0.85
"""Issue 10: a ticketing tool's own event (signature, JMESPath mapping, scoring) costs at most
15 % over ``POST /v1/priority`` with the same call."""

BATCH = 1000
RATE_LIMIT = "1000000/second"
"""On, counted in Redis like any limit, but far above what one process serves: no 429s."""


@dataclass(frozen=True)
class Endpoint:
    label: str
    app: str
    """``bare`` or ``service``."""
    path: str
    kind: str
    """``single`` or ``batch``: which body is posted."""
    calls: int


ENDPOINTS = (
    Endpoint("bare", "bare", "/bench/bare", "single", 1),
    Endpoint("in-app", "service", "/bench/bare", "single", 1),
    Endpoint("priority", "service", "/v1/priority", "single", 1),
    Endpoint("bare_batch", "bare", "/bench/bare/batch", "batch", BATCH),
    Endpoint("in-app_batch", "service", "/bench/bare/batch", "batch", BATCH),
    Endpoint("batch", "service", "/v1/priority/batch", "batch", BATCH),
    Endpoint("source", "service", "/v1/sources/rt/events", "source", 1),
)
GROUPS = {
    "single": ("bare", "in-app", "priority"),
    "batch": ("bare_batch", "in-app_batch", "batch"),
    "source": ("priority", "source"),
}
TARGETS = {
    "priority": ("bare", TARGET_RATIO),
    "batch": ("bare_batch", TARGET_BATCH_RATIO),
    "source": ("priority", TARGET_SOURCE_RATIO),
}


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
def serving(
    name: str, tables: Path, app: str = "bench", env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Start ``run_api`` with a bench app (``bench``, ``bare``) under server ``name``; yield
    (base URL, pid). ``env`` is the child's environment (default: this one)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "bench.http", "--serve", name, "--app", app,
        "--port", str(port), "--tables", str(tables),
    ]  # fmt: skip
    env = dict(os.environ if env is None else env)
    if app == "bare":
        env["USM_ACCESS_LOG"] = "off"  # the bare app is bare; the service logs as deployed
    # The log (one access line per request) goes to a file: a pipe nobody reads fills up and
    # stalls the server mid-run.
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise SystemExit(f"{name} exited: {log.read().decode(errors='replace')[-3000:]}")
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
        log.close()


# --- Source events (issue 10): an RT scrip's payload for the very call of call_body(). The RT
# source is switched to queue = false in a copy of the tables, so the path measured is the
# inbound mapping (signature check, JMESPath readers, value maps, scoring), not item writes.
SOURCE_SECRET = "bench-rt-scrip-token"
SOURCE_AUTH = {"Authorization": f"Bearer {SOURCE_SECRET}"}


def source_body() -> bytes:
    """What the USM scrip posts for a ticket with the fields of :func:`call_body`."""
    cf = {"Impact": "Group", "Urgency": "Seriously impaired", "Service": "email"}
    cf["Category"] = "hardware"
    ticket = {"id": 4711, "status": "new", "created": None, "custom_fields": cf}
    return msgspec.json.encode({"event": "create", "ticket": ticket})


def source_tables(tables: Path, tmp: Path) -> Path:
    """A copy of ``tables`` whose RT source only scores (``queue = false``)."""
    target = tmp / "tables"
    shutil.copytree(tables, target)
    for path in target.glob("*/sources.toml"):  # rt is the first source of the worked example
        path.write_text(path.read_text().replace("queue = true", "queue = false", 1))
    return target


def _headers(e: Endpoint, auth: dict[str, str]) -> dict[str, str]:
    if e.kind == "source":
        return SOURCE_AUTH
    return auth if e.app == "service" else {}


def check(urls: dict[str, str], bodies: dict[str, bytes], auth: dict[str, str]) -> None:
    """Every endpoint answers 200; product and ceilings answer the same JSON shape."""
    got = {}
    for e in ENDPOINTS:
        headers = {"content-type": "application/json"} | _headers(e, auth)
        resp = httpx.post(
            f"{urls[e.app]}{e.path}", content=bodies[e.kind], headers=headers, timeout=30
        )
        if resp.status_code != 200:
            raise SystemExit(f"{e.label} {e.path} answered {resp.status_code}: {resp.text[:300]}")
        got[e.label] = resp.json()
    a = got["priority"]
    for label in ("bare", "in-app"):
        b = got[label]
        if sorted(a) != sorted(b) or len(a["explanation"]) != len(b["explanation"]):
            raise SystemExit(
                f"{label} shape differs from the product's: {sorted(a)} vs {sorted(b)}"
            )
    if any(len(got[x]["decisions"]) != BATCH for x in ("batch", "bare_batch", "in-app_batch")):
        raise SystemExit("a batch endpoint did not answer one decision per call")
    source = got["source"]
    if source.get("action") != "scored" or source["decision"]["priority"] != a["priority"]:
        raise SystemExit(f"the source event is not the same call scored: {str(source)[:300]}")


def _serve(argv: list[str]) -> int:
    """Child mode: serve a bench app with one server until terminated."""
    p = argparse.ArgumentParser()
    p.add_argument("--serve", required=True)
    p.add_argument("--app", choices=("bench", "bare"), default="bench")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tables", required=True)
    args = p.parse_args(argv)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # As under `usm serve`: multiprocess metrics chosen before prometheus_client is imported.
        from service.metrics.multiprocess import prepare

        prepare(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    from bench._app import create_bare_app, create_bench_app
    from service.api.server import run_api
    from service.settings import Settings

    factory = create_bare_app if args.app == "bare" else create_bench_app
    run_api(Settings.from_env(port=args.port, tables=args.tables), args.serve, factory)
    return 0


def _service_env(tmp: Path, redis_url: str, key: str) -> dict[str, str]:
    """The environment of the service as deployed: keys, rate limit, Redis, multiprocess metrics."""
    metrics = tmp / "metrics"
    metrics.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("USM_")}
    return {
        **env,
        "REDIS_URL": redis_url,
        "USM_API_KEYS": f"bench:score,admin:{hash_key(key)}",
        "USM_RATE_LIMIT": RATE_LIMIT,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "USM_SOURCE_RT_SECRET": SOURCE_SECRET,
    }


def measure(
    servers: list[str], kinds: set[str], rounds: int, seconds: float, conns: dict[str, int],
    tool: str, tables: Path,
) -> dict[tuple[str, str], list[Run]]:  # fmt: skip
    """Start the bare app and the service per server, check, warm up, run interleaved."""
    bodies = {"single": call_body(), "batch": batch_body(BATCH), "source": source_body()}
    # A kind's group names its ceiling (the source row's is /v1/priority): measure it too.
    wanted = {label for kind in kinds for label in GROUPS.get(kind, ())}
    endpoints = [e for e in ENDPOINTS if e.kind in kinds or e.label in wanted]
    key = new_key()
    auth = {"Authorization": f"Bearer {key}"}
    results: dict[tuple[str, str], list[Run]] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="usm-bench-http-"))
        stack.callback(shutil.rmtree, tmp, True)
        tables = source_tables(tables, tmp)
        redis_server = EmbeddedRedis(tmp / "redis", free_port())
        redis_url = redis_server.start()
        stack.callback(redis_server.stop)
        procs: dict[str, dict[str, tuple[str, int]]] = {}
        for name in servers:
            (tmp / name).mkdir()
            service_env = _service_env(tmp / name, redis_url, key)
            procs[name] = {
                "bare": stack.enter_context(serving(name, tables, "bare")),
                "service": stack.enter_context(serving(name, tables, "bench", service_env)),
            }
        for apps in procs.values():
            check({a: url for a, (url, _) in apps.items()}, bodies, auth)
            for e in endpoints:  # warm-up: caches, allocator, connection pools
                url = apps[e.app][0]
                load(tool, f"{url}{e.path}", bodies[e.kind], conns[e.kind], 1, _headers(e, auth))
        for _ in range(rounds):
            for name, apps in procs.items():
                for e in endpoints:
                    url, pid = apps[e.app]
                    headers = _headers(e, auth)
                    before = tree_cpu(pid)
                    r = load(
                        tool, f"{url}{e.path}", bodies[e.kind], conns[e.kind], seconds, headers
                    )
                    results.setdefault((name, e.label), []).append(Run(r, tree_cpu(pid) - before))
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--serve" in argv:
        return _serve(argv)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--servers", default="uvicorn", help="comma-separated: uvicorn, granian (default uvicorn)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=3, help="seconds per load run (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="for the single-call endpoints")
    parser.add_argument("--batch-connections", type=int, default=4, help="for the batch endpoints")
    parser.add_argument(
        "--tool", choices=("auto", "wrk", "python"), default="auto", help="load generator"
    )
    parser.add_argument(
        "--endpoints",
        default="single,batch,source",
        help="single, batch, source (a ticketing tool's event next to /v1/priority); default all",
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
        "rounds, medians; one worker process per app"
    )
    print(
        f"service: API key required, rate limit {RATE_LIMIT} counted in Redis, multiprocess "
        "Prometheus metrics, decision log to Redis"
    )
    conns = {
        "single": args.connections,
        "batch": args.batch_connections,
        "source": args.connections,
    }
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
    by_label = {e.label: e for e in ENDPOINTS}
    errors = {
        k: sum(r.load.bad_status + r.load.socket_errors for r in v) for k, v in results.items()
    }
    header = ("server", "app", "endpoint", "req/s", "calls/s", "ratio", "req/CPU-s", "ratio")
    rows: list[tuple[object, ...]] = [(*header, "p50 ms", "p99 ms", "errors")]
    for name in servers:
        for group in GROUPS.values():
            if not labels.issuperset(group):  # e.g. --endpoints single: no source row
                continue
            ceiling = group[0]
            for label in group:
                e = by_label[label]
                w, c = rps(name, label), cpu(name, label)
                ratio_w = f"{w / rps(name, ceiling):.2f}" if label != ceiling else "ceiling"
                ratio_c = f"{c / cpu(name, ceiling):.2f}" if label != ceiling else "ceiling"
                p50 = median([r.load.p50_ms for r in results[(name, label)]])
                p99 = median([r.load.p99_ms for r in results[(name, label)]])
                rows.append((
                    name, e.app, e.path, f"{w:,.0f}", f"{w * e.calls:,.0f}", ratio_w, f"{c:,.0f}",
                    ratio_c, f"{p50:.1f}", f"{p99:.1f}", errors[(name, label)],
                ))  # fmt: skip
    print_table(rows)
    ok = True
    for name in servers:
        verdicts: list[tuple[str, bool]] = []
        for label, (ceiling, target) in TARGETS.items():
            if not labels.issuperset((label, ceiling)):
                continue
            wall = rps(name, label) / rps(name, ceiling)
            norm = cpu(name, label) / cpu(name, ceiling)
            path = by_label[label].path
            base = "bare" if ceiling.startswith("bare") else by_label[ceiling].path
            text = f"{path} {wall:.2f} x {base} (per CPU-s {norm:.2f}; target {target})"
            verdicts.append((text, wall >= target))
        met = all(v for _, v in verdicts)
        print(f"{name}: " + ", ".join(t for t, _ in verdicts) + f": {'met' if met else 'MISSED'}")
        ok = ok and met
    if any(errors.values()):
        print(f"errors seen: {errors}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
