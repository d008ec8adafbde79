"""Per-request CPU of the service as deployed next to the bare app, in-process, with a profile.

bench/http.py measures whole stacks over the network, where on a shared 2-core machine the server
and the scheduler add noise larger than most of what a request costs. This builds the same two
apps (bench/_app.py) in one process with the settings bench/http.py gives the service (API key,
rate limit counted in Redis, multiprocess metrics, decision log, source event log, access log
to a file), drives their ASGI interfaces directly (no server, no socket) and reads this
process's CPU time per request, background flushes included. Interleaved rounds, medians; ratios
are to the first endpoint named (per round, then the median).

It is a diagnostic, not a target: the targets are bench/http.py's (the server's cost is part of
the ratio there). ``--profile ENDPOINT`` prints cProfile's top functions for one endpoint.

    .venv/bin/python -m bench.http_inprocess [--endpoints bare,in-app,priority,source]
        [--requests 1000] [--rounds 7] [--profile priority]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

ENDPOINTS = {
    # label: (app, path, body kind, credential)
    "bare": ("bare", "/bench/bare", "single", None),
    "in-app": ("service", "/bench/bare", "single", "key"),
    "priority": ("service", "/v1/priority", "single", "key"),
    "source": ("service", "/v1/sources/rt/events", "source", "source"),
    "bare_batch": ("bare", "/bench/bare/batch", "batch", None),
    "in-app_batch": ("service", "/bench/bare/batch", "batch", "key"),
    "batch": ("service", "/v1/priority/batch", "batch", "key"),
}


def _scope(path: str, body: bytes, bearer: str | None) -> dict[str, Any]:
    """What uvicorn hands the app for a wrk POST."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"wrk"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if bearer:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5555),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


async def _request(app: Any, path: str, body: bytes, bearer: str | None) -> None:
    sent: list[Any] = []
    first = True

    async def receive() -> Any:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # a client that stays connected

    async def send(message: Any) -> None:
        sent.append(message)

    await app(_scope(path, body, bearer), receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"{path} answered {sent[0]['status']}: {sent[1:]}")


async def _start(app: Any) -> None:
    """Run the app's lifespan start-up (background flushes, Redis clients) and leave it running."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def send(message: Any) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.get_running_loop().create_task(app(scope, queue.get, send))
    await started.wait()


async def _run(args: argparse.Namespace, apps: dict[str, Any], bodies: dict[str, bytes],
               creds: dict[str | None, str | None]) -> int:  # fmt: skip
    from bench._common import median, print_table

    labels = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    for app in apps.values():
        await _start(app)

    def count(label: str) -> int:
        return args.requests if ENDPOINTS[label][2] != "batch" else max(args.requests // 100, 5)

    async def drive(label: str, n: int) -> float:
        app, path, kind, cred = ENDPOINTS[label]
        started = time.process_time()
        for _ in range(n):
            await _request(apps[app], path, bodies[kind], creds[cred])
        await asyncio.sleep(0.25)  # the background flushes of these requests, counted too
        return (time.process_time() - started) / n * 1e6

    for label in labels:  # warm-up: caches, tallies, connections
        await drive(label, 50)
    runs: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(args.rounds):
        for label in labels:
            runs[label].append(await drive(label, count(label)))
    base = labels[0]
    rows: list[tuple[object, ...]] = [("endpoint", "path", "us CPU/request", f"ratio to {base}")]
    for label in labels:
        ratio = median([b / x for b, x in zip(runs[base], runs[label], strict=True)])
        rows.append((label, ENDPOINTS[label][1], f"{median(runs[label]):,.1f}", f"{ratio:.2f}"))
    print_table(rows)
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        await drive(args.profile, count(args.profile))
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(40)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--endpoints", default="bare,in-app,priority,source")
    parser.add_argument("--requests", type=int, default=1000, help="per round and endpoint")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", choices=sorted(ENDPOINTS), help="cProfile one endpoint")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="usm-bench-inprocess-"))
    # As under `usm serve`: multiprocess metrics chosen before prometheus_client is imported.
    from service.metrics.multiprocess import prepare

    prepare(tmp / "metrics")
    from bench._app import create_bare_app, create_bench_app
    from bench._common import TABLES, batch_body, call_body, machine
    from bench.http import (
        RATE_LIMIT,
        SOURCE_SECRET,
        free_port,
        source_body,
        source_tables,
    )
    from service.api.server import _load
    from service.embedded_redis import EmbeddedRedis
    from service.security.keys import hash_key, new_key
    from service.settings import Settings

    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))
    key = new_key()
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        redis_server = EmbeddedRedis(tmp / "redis", free_port())
        url = redis_server.start()
        stack.callback(redis_server.stop)
        tables = source_tables(TABLES, tmp)
        os.environ.update(
            {
                "REDIS_URL": url,
                "USM_API_KEYS": f"bench:score,admin:{hash_key(key)}",
                "USM_RATE_LIMIT": RATE_LIMIT,
                "USM_SOURCE_RT_SECRET": SOURCE_SECRET,
            }
        )
        settings = Settings.from_env(port=1, tables=str(tables))
        log = stack.enter_context(open(tmp / "access.log", "w"))
        stack.callback(os.dup2, os.dup(2), 2)
        os.dup2(log.fileno(), 2)  # the access lines go to a file, as in bench/http.py
        os.environ["USM_ACCESS_LOG"] = "off"  # the bare app is bare
        apps = {"bare": _load(create_bare_app, settings)}
        os.environ["USM_ACCESS_LOG"] = "on"  # the service logs as shipped
        apps["service"] = _load(create_bench_app, settings)
        bodies = {"single": call_body(), "batch": batch_body(1000), "source": source_body()}
        creds: dict[str | None, str | None] = {None: None, "key": key, "source": SOURCE_SECRET}
        import uvloop

        return uvloop.run(_run(args, apps, bodies, creds))


if __name__ == "__main__":
    sys.exit(main())
