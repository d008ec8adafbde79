"""What the access log costs per request, next to what the bare app costs, in one run.

The HTTP bench (bench/http.py) measures whole stacks over the network, where on a shared 2-core
machine the noise is larger than one log line. This drives the bare litestar app of bench/_app.py
in-process through ASGI (no server, no socket), with and without :class:`AccessLog` around it,
the log going to a file in the text format, and reads this process's CPU time. Interleaved
rounds, medians; the ratio is bare / (bare + access log).

Target: the access log keeps >= 0.95 of the bare app's requests per CPU-second, so it stays a
small part of the service's 0.85 budget (issue 14).

    .venv/bin/python -m bench.access_log [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from typing import Any

from bench._app import BARE_PATH, create_bare_app
from bench._common import call_body, machine, median, print_table
from service.api.access import FLUSH_SECONDS, AccessLog
from service.logs import setup
from service.settings import Settings

__all__ = ["main"]

TARGET = 0.95


async def _drive(app: Any, body: bytes, n: int) -> float:
    """CPU seconds for ``n`` POSTs of ``body`` through ``app``'s ASGI interface."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": BARE_PATH,
        "raw_path": BARE_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"bench")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(msg: Any) -> None:
        if msg["type"] == "http.response.start" and msg["status"] != 200:
            raise SystemExit(f"unexpected status {msg['status']}")

    start = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
        await asyncio.sleep(0)  # a turn of the loop per request, as a server gives it
    await asyncio.sleep(FLUSH_SECONDS * 2)  # the last lines are written (CPU time only counts)
    return time.process_time() - start


async def _run(bare: Any, requests: int, rounds: int) -> dict[str, float]:
    logged = AccessLog(bare)
    body = call_body()
    await _drive(bare, body, 500)  # warm caches on both paths
    await _drive(logged, body, 500)
    cpu: dict[str, list[float]] = {"bare": [], "bare + access log": []}
    for _ in range(rounds):
        cpu["bare"].append(await _drive(bare, body, requests))
        cpu["bare + access log"].append(await _drive(logged, body, requests))
    return {name: requests / median(times) for name, times in cpu.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=20000, help="requests per run")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = p.parse_args(argv)
    # Built first: a plain Litestar configures logging its own way when it is created.
    bare = create_bare_app(Settings())
    with tempfile.NamedTemporaryFile("w", suffix=".log") as out:
        # The log format as deployed, written to a file as to a terminal or journald.
        os.environ.pop("USM_LOG_FORMAT", None)
        setup("INFO", "text")
        # The handler writes to sys.stderr as it is at each record (service/logs.py).
        with contextlib.redirect_stderr(out):
            rates = asyncio.run(_run(bare, args.requests, args.rounds))
        out.flush()
        with open(out.name) as written:
            lines = sum(1 for _ in written)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))
    ratio = rates["bare + access log"] / rates["bare"]
    print_table(
        [
            ["path", "req/CPU-s", "ratio", "us per request"],
            ["bare", f"{rates['bare']:,.0f}", "ceiling", f"{1e6 / rates['bare']:.1f}"],
            [
                "bare + access log",
                f"{rates['bare + access log']:,.0f}",
                f"{ratio:.3f}",
                f"{1e6 / rates['bare + access log']:.1f}",
            ],
        ]
    )
    print(f"access lines written: {lines:,}")
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"access log: {ratio:.3f} x bare per CPU-second (target {TARGET}): {verdict}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
