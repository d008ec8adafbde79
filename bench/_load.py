"""HTTP load for the bench: ``wrk`` when installed, else a small asyncio load generator.

Both keep ``connections`` keep-alive connections busy with the same POST for ``seconds`` and
report completed requests per second; non-2xx answers and socket errors are counted, not hidden.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "load", "tool_name"]

# wrk reads the body from a file named in the environment, so a 100 KB batch needs no quoting.
_WRK_SCRIPT = """
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\\n]+") do
  local k, v = line:match("^([^:]+):%s*(.*)$")
  wrk.headers[k] = v
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    requests: int
    seconds: float
    bad_status: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def tool_name(choice: str = "auto") -> str:
    """``wrk`` if asked for or found on PATH, else ``python``."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk, or use --tool python")
    return choice


def load(
    tool: str,
    url: str,
    body: bytes,
    connections: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """POST ``body`` (with extra ``headers``) to ``url`` on ``connections`` connections."""
    headers = headers or {}
    if tool == "wrk":
        return _wrk(url, body, connections, seconds, headers)
    return asyncio.run(_python(url, body, connections, seconds, headers))


def _wrk(
    url: str, body: bytes, connections: int, seconds: float, headers: dict[str, str]
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="usm-bench-") as tmp:
        script, data = Path(tmp, "post.lua"), Path(tmp, "body.json")
        script.write_text(_WRK_SCRIPT)
        data.write_bytes(body)
        cmd = [
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script), url,
        ]  # fmt: skip
        out = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=True,
            env={
                **os.environ,
                "BENCH_BODY": str(data),
                "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in headers.items()),
            },
        )
    lines = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
    if not lines:
        raise SystemExit(f"wrk gave no result for {url}: {out.stdout}{out.stderr}")
    line = lines[0]
    requests, micros, bad, errors, p50, p99 = (int(v) for v in line.split()[1:])
    return LoadResult(requests, micros / 1e6, bad, errors, p50 / 1000, p99 / 1000)


async def _python(
    url: str, body: bytes, connections: int, seconds: float, headers: dict[str, str]
) -> LoadResult:
    host, _, rest = url.removeprefix("http://").partition(":")
    port, _, path = rest.partition("/")
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    counts = {"bad": 0, "errors": 0}
    start = time.perf_counter()
    deadline = start + seconds

    async def client() -> None:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            counts["errors"] += 1
            return
        try:
            while (t0 := time.perf_counter()) < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if not 200 <= status < 300:
                    counts["bad"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["errors"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0
        )

    return LoadResult(len(latencies), elapsed, counts["bad"], counts["errors"], pct(0.5), pct(0.99))
