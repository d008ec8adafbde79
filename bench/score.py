"""In-process scoring throughput next to its bare ceiling, measured side by side in one run.

Product: decode a JSON batch as the fast path does (``UncheckedBatch``: each distinct set of values
is checked once, when the memo first meets it), ``Scorer.score_encoded`` (the decisions' JSON
from memoised prototypes, service/core/encoded.py) and the answer's bytes -- what
``POST /v1/priority/batch`` does between the socket reads and writes, besides the decision log
and the counters. Ceiling: decode the same bytes with the same decoder, one dict lookup per call
(a ready-made decision of the same shape for the call's type), encode the result with msgspec.
The ratio is what scoring costs on top of the wire work that no implementation can avoid. Two
more rows for reference: the path before issue 14's batch cut (``score_many`` into ``Decision``
structs, then msgspec encodes them) and the product with a new ``Scorer`` per batch (cold memo).

    .venv/bin/python -m bench.score [--calls 1000] [--rounds 9] [--seconds 0.4]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from bench._common import batch_body, default_scorer, interleave, machine, median, print_table
from service.api.priority import BatchRequest, BatchResponse, UncheckedBatch
from service.core.calls import Call
from service.core.decision import Decision
from service.core.scoring import Scorer

__all__ = ["ceiling_batch", "ceiling_table", "core_batch", "main", "run", "structs_batch"]

TARGET = 0.5
"""Issue 2: the scoring core reaches at least half of the bare ceiling."""

_DECODER = msgspec.json.Decoder(BatchRequest)
_UNCHECKED = msgspec.json.Decoder(UncheckedBatch)
_ENCODER = msgspec.json.Encoder()


def core_batch(body: bytes, scorer: Scorer, now: datetime) -> bytes:
    """The product path: decode, score every call straight to JSON, the answer's bytes."""
    request = _UNCHECKED.decode(body)
    return scorer.score_encoded(request.calls, now).body()


def structs_batch(body: bytes, scorer: Scorer, now: datetime) -> bytes:
    """The path before: decode, score every call into a ``Decision``, encode them."""
    request = _DECODER.decode(body)
    return _ENCODER.encode(BatchResponse(decisions=scorer.score_many(request.calls, now)))


def ceiling_table(scorer: Scorer, now: datetime) -> dict[str, Decision]:
    """One ready decision per call type, shaped like the product's (same fields, same steps)."""
    samples = {
        "incident": Call(type="incident", impact="group", urgency="high", service="workplace"),
        "service_request": Call(type="service_request", impact=3, urgency=3, service="website"),
        "change": Call(type="change", impact="department", urgency=2, category="software"),
        "wish": Call(type="wish", impact="user", urgency="low", service="website"),
        "risk": Call(type="risk", impact=2, likelihood="likely", proximity=2, category="hardware"),
    }
    return {name: scorer.score(call, now) for name, call in samples.items()}


def ceiling_batch(body: bytes, table: dict[str, Decision]) -> bytes:
    """The bare ceiling: decode the same batch, one dict lookup per call, encode."""
    request = _DECODER.decode(body)
    return _ENCODER.encode(BatchResponse(decisions=[table[c.type] for c in request.calls]))


def _rate(fn: Callable[[], object], calls: int, seconds: float) -> float:
    """Decisions per second of ``fn`` (one batch of ``calls`` per invocation) over ~seconds."""
    fn()  # warm: caches, allocator
    loops, start = 0, time.perf_counter()
    while True:
        fn()
        loops += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return loops * calls / elapsed


def run(
    calls: int = 1000, rounds: int = 9, seconds: float = 0.4, seed: int = 2026
) -> dict[str, float]:
    """Measure product, cold-cache product and ceiling, interleaved; medians in decisions/s."""
    scorer = default_scorer()
    now = datetime.now(UTC)
    body = batch_body(calls, seed)
    table = ceiling_table(scorer, now)

    def cold() -> bytes:
        # A fresh scorer each batch: no memoised decision parts, the worst case after a reload.
        return core_batch(body, Scorer(scorer.tables, scorer.table_hash), now)

    results = interleave(
        rounds,
        {
            "ceiling": lambda: _rate(lambda: ceiling_batch(body, table), calls, seconds),
            "product": lambda: _rate(lambda: core_batch(body, scorer, now), calls, seconds),
            "structs": lambda: _rate(lambda: structs_batch(body, scorer, now), calls, seconds),
            "product_cold": lambda: _rate(cold, calls, seconds),
        },
    )
    out = {name: median(values) for name, values in results.items()}
    out["ratio"] = out["product"] / out["ceiling"]
    out["ratio_cold"] = out["product_cold"] / out["ceiling"]
    out["ratio_structs"] = out["structs"] / out["ceiling"]
    if core_batch(body, scorer, now) != structs_batch(body, scorer, now):
        raise AssertionError("score_encoded answered other bytes than score_many + encode")
    out["body_bytes"] = len(body)
    out["product_bytes"] = len(core_batch(body, scorer, now))
    out["ceiling_bytes"] = len(ceiling_batch(body, table))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000, help="calls per batch (default 1000)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--seconds", type=float, default=0.4, help="time per measurement")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the call mix")
    args = parser.parse_args(argv)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine().items()))
    r = run(args.calls, args.rounds, args.seconds, args.seed)
    print(
        f"batch: {args.calls} calls, seed {args.seed}, request {r['body_bytes']:.0f} B, response "
        f"{r['product_bytes']:.0f} B (ceiling {r['ceiling_bytes']:.0f} B); "
        f"median of {args.rounds} interleaved rounds"
    )
    print_table(
        [
            ("path", "decisions/s", "ratio to ceiling"),
            ("ceiling: decode + dict lookup + encode", f"{r['ceiling']:,.0f}", "1.00"),
            ("product: decode + score_encoded", f"{r['product']:,.0f}", f"{r['ratio']:.2f}"),
            (
                "before: decode + score_many + encode",
                f"{r['structs']:,.0f}",
                f"{r['ratio_structs']:.2f}",
            ),
            (
                "product, cold cache (new Scorer/batch)",
                f"{r['product_cold']:,.0f}",
                f"{r['ratio_cold']:.2f}",
            ),
        ]
    )
    ok = r["ratio"] >= TARGET
    print(
        f"target: product >= {TARGET:.2f} x ceiling: {'met' if ok else 'MISSED'} ({r['ratio']:.2f})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
