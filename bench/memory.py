"""Redis memory per queued and per finished item, key by key and hash field by hash field.

    .venv/bin/python -m bench.memory            # --items 500

Enqueues ``--items`` items through :class:`~service.dispatch.store.ItemStore` into a real
redis-server (free port, temp dir), re-scores every other one, and reads ``MEMORY USAGE`` of every
key that belongs to an item: its RQ job hash, its history list, its idempotency key, plus its share
of the index keys (queue lists, due / in-flight / finished zsets). Then it hands every item out
and completes it, and measures again. The payload's own encoded bytes are subtracted (payloads are
the caller's, counted apart). Targets (issue 14): <= 3 KiB per queued item, <= 1.5 KiB per
finished item. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis

from bench._common import TABLES, machine, make_calls, print_table
from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.config import DispatchConfig
from service.dispatch.items import now_ms
from service.dispatch.leases import Leased, Outcome, finish, pop
from service.dispatch.store import ItemStore
from service.embedded_redis import EmbeddedRedis, free_port
from service.files.loader import load_all

QUEUED_TARGET = 3 * 1024
FINISHED_TARGET = 1536
INDEX_PATTERNS = ("rq:queue:*", "usm:due:*", "usm:inflight", "usm:started:*", "rq:finished:*")


def _payload(k: int) -> dict[str, object]:
    return {"ticket": f"INC{k:07d}", "summary": "printer on floor 3 is out of toner", "k": k}


def _usage(conn: redis.Redis, key: str) -> int:
    return int(conn.memory_usage(key, samples=0) or 0)  # type: ignore[arg-type]


def _index_bytes(conn: redis.Redis) -> int:
    total = 0
    for pattern in INDEX_PATTERNS:
        for key in conn.scan_iter(pattern):
            total += _usage(conn, key.decode())  # type: ignore[union-attr]
    return total


def measure(conn: redis.Redis, ids: Sequence[str], payload_bytes: int) -> dict[str, float]:
    """Mean bytes per item: each own key, the index share, the total minus the payload."""
    n = len(ids)
    job = sum(_usage(conn, keys.job_key(i)) for i in ids) / n
    history = sum(_usage(conn, keys.history_key(i)) for i in ids) / n
    idem = sum(_usage(conn, k.decode()) for k in conn.scan_iter("usm:idem:*")) / n  # type: ignore[union-attr]
    index = _index_bytes(conn) / n
    total = job + history + idem + index - payload_bytes / n
    return {"job hash": job, "history": history, "idem key": idem, "indexes": index, "total": total}


def fields(conn: redis.Redis, ids: Sequence[str]) -> tuple[dict[str, float], Counter[str]]:
    """Mean name+value bytes of each hash field, and the hash encodings seen."""
    sizes: dict[str, int] = defaultdict(int)
    encodings: Counter[str] = Counter()
    for i in ids:
        for name, value in conn.hgetall(keys.job_key(i)).items():  # type: ignore[union-attr]
            sizes[name.decode()] += len(name) + len(value)  # type: ignore[union-attr]
        encodings[conn.object("encoding", keys.job_key(i)).decode()] += 1  # type: ignore[union-attr]
    return {k: v / len(ids) for k, v in sizes.items()}, encodings


def _show(
    title: str, got: dict[str, float], per_field: dict[str, float], enc: Counter[str]
) -> None:
    print(f"\n{title}")
    print_table([("part", "bytes/item"), *((k, f"{v:,.0f}") for k, v in got.items())])
    print(f"hash encodings: {dict(enc)}")
    rows = sorted(per_field.items(), key=lambda kv: -kv[1])
    print_table([("hash field", "name+value bytes"), *((k, f"{v:,.0f}") for k, v in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=500)
    args = parser.parse_args(argv)
    print("machine:", ", ".join(f"{k}={v}" for k, v in machine().items()))
    sets = {s.version: s for s in load_all(TABLES)}
    scorer = sets["2026.1"].scorer()
    tmp = Path(tempfile.mkdtemp(prefix="usm-bench-memory-"))
    server = EmbeddedRedis(tmp, free_port())
    conn = redis.Redis.from_url(server.start())
    try:
        config = DispatchConfig()
        store = ItemStore(conn, config)
        calls = [msgspec.convert(c, Call) for c in make_calls(64)]
        ids, queue_of, payload_bytes = [], {}, 0
        for k in range(args.items):
            call = calls[k % len(calls)]
            now = datetime.now(UTC)
            payload = _payload(k)
            payload_bytes += len(msgspec.json.encode(payload))
            item, _ = store.enqueue(call, scorer.score(call, now), "bench", f"M{k}", payload, now)
            if k % 2:
                # A re-score with a different call: the history keeps a second decision.
                changed = calls[(k + 5) % len(calls)]
                now = datetime.now(UTC)
                item, _ = store.rescore(item.id, scorer.score(changed, now), now, changed, "bench")
            ids.append(item.id)
            queue_of[item.id] = item.queue
        queued = measure(conn, ids, payload_bytes)
        _show("queued", queued, *fields(conn, ids))
        for i in ids:
            got = pop(conn, [queue_of[i]], [], "bench-worker", now_ms(), 60_000)
            assert isinstance(got, Leased), got
            done_ms = now_ms()
            assert finish(conn, got.id, "bench-worker", Outcome.COMPLETED, done_ms, 86400)
        done = measure(conn, ids, payload_bytes)
        _show("finished (completed)", done, *fields(conn, ids))
    finally:
        conn.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    q, f = queued["total"], done["total"]
    print()
    print_table(
        [
            ("bytes per item, payload apart", "measured", "target", "ratio", "verdict"),
            ("queued", f"{q:,.0f}", f"<= {QUEUED_TARGET}", f"{q / QUEUED_TARGET:.2f}",
             "met" if q <= QUEUED_TARGET else "MISSED"),
            ("finished", f"{f:,.0f}", f"<= {FINISHED_TARGET}", f"{f / FINISHED_TARGET:.2f}",
             "met" if f <= FINISHED_TARGET else "MISSED"),
        ]
    )  # fmt: skip
    return 0 if q <= QUEUED_TARGET and f <= FINISHED_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
