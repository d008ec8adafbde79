"""Does a big batch block the event loop? ``/healthz`` latency while 10,000-call batches are scored.

One API process (``run_api``, the code ``usm api`` runs, the default server). Interleaved rounds:

- **idle**: ``GET /healthz`` every 10 ms, nothing else running;
- **batches**: the same probe while ``--clients`` threads post ``--calls``-call batches to
  ``POST /v1/priority/batch`` back to back.

Reported: probe p50/p99/max per side, batch requests/s. Target: the probe's median under batch
load stays within ``TARGET_P50_MS`` (the loop yields between chunks of a batch; issue 12 #10
measured 56 ms before), and every batch answers 200.

    .venv/bin/python -m bench.batch_loop [--rounds 3] [--seconds 5] [--calls 10000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx

from bench._common import TABLES, batch_body, machine, median, print_table
from bench.http import serving

__all__ = ["main"]

TARGET_P50_MS = 10.0
"""Median ``/healthz`` latency while batches run (idle: about 1 ms)."""


def _probe(base: str, seconds: float) -> list[float]:
    out: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            if c.get("/healthz").status_code != 200:
                raise SystemExit("/healthz did not answer 200")
            out.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    return out


def _batches(base: str, body: bytes, stop: threading.Event, done: list[int]) -> None:
    with httpx.Client(base_url=base, timeout=120) as c:
        while not stop.is_set():
            r = c.post(
                "/v1/priority/batch", content=body, headers={"content-type": "application/json"}
            )
            done.append(r.status_code)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--server", default="uvicorn")
    args = parser.parse_args(argv)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))
    body = batch_body(args.calls)
    idle: list[float] = []
    loaded: list[float] = []
    rates: list[float] = []
    codes: list[int] = []
    with serving(args.server, Path(TABLES)) as (base, _):
        httpx.post(f"{base}/v1/priority/batch", content=body, timeout=120)  # warm-up
        for _ in range(args.rounds):
            idle += _probe(base, args.seconds)
            stop, done = threading.Event(), []
            threads = [
                threading.Thread(target=_batches, args=(base, body, stop, done))
                for _ in range(args.clients)
            ]
            started = time.monotonic()
            for t in threads:
                t.start()
            loaded += _probe(base, args.seconds)
            stop.set()
            for t in threads:
                t.join()
            rates.append(len(done) / (time.monotonic() - started))
            codes += done
    rows: list[tuple[object, ...]] = [("/healthz ms", "p50", "p99", "max", "samples")]
    for name, v in (("idle", idle), (f"{args.calls:,}-call batches", loaded)):
        rows.append((name, f"{median(v):.1f}", f"{_pct(v, 0.99):.1f}", f"{max(v):.1f}", len(v)))
    print_table(rows)
    bad = sum(1 for c in codes if c != 200)
    p50 = median(loaded)
    ok = p50 <= TARGET_P50_MS and bad == 0
    print(
        f"batch requests/s (median of rounds): {median(rates):.1f}; non-200: {bad}; "
        f"/healthz p50 under load {p50:.1f} ms (target <= {TARGET_P50_MS:g}): "
        f"{'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
