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
from service.embedded_redis import HASH_MAX_LISTPACK_VALUE, EmbeddedRedis, free_port
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


def run(conn: redis.Redis, n: int, prefix: str) -> tuple[float, float]:
    """Queue ``n`` items (every other one re-scored), then complete them all; bytes per item."""
    scorer = next(s for s in load_all(TABLES) if s.version == "2026.1").scorer()
    store = ItemStore(conn, DispatchConfig())
    calls = [msgspec.convert(c, Call) for c in make_calls(64)]
    ids, queue_of, payload_bytes = [], {}, 0
    for k in range(n):
        call = calls[k % len(calls)]
        now = datetime.now(UTC)
        payload = _payload(k)
        payload_bytes += len(msgspec.json.encode(payload))
        item, _ = store.enqueue(call, scorer.score(call, now), prefix, f"M{k}", payload, now)
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
        assert finish(conn, got.id, "bench-worker", Outcome.COMPLETED, now_ms(), 86400)
    done = measure(conn, ids, payload_bytes)
    _show("finished (completed)", done, *fields(conn, ids))
    return queued["total"], done["total"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=500)
    args = parser.parse_args(argv)
    print("machine:", ", ".join(f"{k}={v}" for k, v in machine().items()))
    results = {}
    # The shipped setting (embedded Redis, deploy/) and Redis's default, each on a fresh server.
    for name, value in (("shipped", HASH_MAX_LISTPACK_VALUE), ("redis default", 64)):
        tmp = Path(tempfile.mkdtemp(prefix="usm-bench-memory-"))
        server = EmbeddedRedis(tmp, free_port())
        conn = redis.Redis.from_url(server.start())
        try:
            conn.config_set("hash-max-listpack-value", value)
            print(f"\n=== {name}: hash-max-listpack-value {value}")
            results[name, value] = run(conn, args.items, name.replace(" ", "_"))
        finally:
            conn.close()
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    rows: list[tuple[object, ...]] = [
        ("bytes per item, payload apart", "hash-max-listpack-value", "measured", "target", "ratio",
         "verdict"),
    ]  # fmt: skip
    ok = True
    for (name, value), (q, f) in results.items():
        for kind, got, target in (("queued", q, QUEUED_TARGET), ("finished", f, FINISHED_TARGET)):
            met = got <= target
            verdict = ("met" if met else "MISSED") if name == "shipped" else "(for reference)"
            ok = ok and (met or name != "shipped")
            rows.append(
                (f"{kind} ({name})", value, f"{got:,.0f}", f"<= {target}", f"{got / target:.2f}",
                 verdict)
            )  # fmt: skip
    print_table(rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
