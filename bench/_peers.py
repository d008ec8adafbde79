"""The queues bench/dispatch.py measures usm against: Dramatiq, Celery and a limit loop.

Each is set up the way its own documentation advises for reliability on Redis:

- **Dramatiq** (``RedisBroker``): messages stay in the queue's ``.msgs`` hash and the worker's
  ack set until the actor returns; a dead worker's unacked messages are put back once its
  heartbeat is older than the broker's ``heartbeat_timeout`` (60 s by default). One worker
  process (``--processes 1``) with Dramatiq's default 8 threads. Actor priorities only order
  what one worker has already fetched: no strict priority across queues.
- **Celery** (Redis transport): ``task_acks_late`` with ``worker_prefetch_multiplier = 1``, as its
  "Should I use retry or acks_late?" and optimisation guides advise for work that must not be
  lost, results ignored, and priorities as its Redis docs configure them (``priority_steps``
  0-9, ``queue_order_strategy = "priority"``): one list per step, polled in order. An unacked
  message comes back after ``visibility_timeout`` (1 hour by default). One worker process
  (``--pool solo``).
- **limit**: the least a strict-priority, crash-safe hand-out costs on the same Redis: one Lua
  call pops the first item of five priority lists and leases it (ZADD with a deadline), one Lua
  call acks it (ZREM); a plain Python loop in one process.

Run by the peers' own worker commands, so this module must import without side effects beyond
defining the apps (it reads ``REDIS_URL`` when a worker or the bench imports it).
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

__all__ = [
    "ACK_SCRIPT",
    "CELERY_QUEUE",
    "DRAMATIQ_QUEUE",
    "LIMIT_DONE",
    "LIMIT_LEASES",
    "LIMIT_QUEUES",
    "POP_SCRIPT",
    "celery_app",
    "dramatiq_noop",
    "limit_worker",
]

DRAMATIQ_QUEUE = "bench-dramatiq"
CELERY_QUEUE = "bench-celery"
LIMIT_QUEUES = [f"bench:limit:P{i}" for i in range(1, 6)]
LIMIT_LEASES = "bench:limit:leases"
LIMIT_DONE = "bench:limit:done"

POP_SCRIPT = """
-- Pop the first item of the highest non-empty priority list and lease it.
-- KEYS: the priority lists, highest first, then the lease zset.
-- ARGV[1]: lease deadline (ms). Returns the item or false.
local leases = KEYS[#KEYS]
for i = 1, #KEYS - 1 do
  local item = redis.call('LPOP', KEYS[i])
  if item then
    redis.call('ZADD', leases, ARGV[1], item)
    return item
  end
end
return false
"""

ACK_SCRIPT = """
-- Ack one item: end its lease; count it done (the bench waits on the count).
-- KEYS[1]: lease zset, KEYS[2]: done counter. ARGV[1]: the item.
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('INCR', KEYS[2])
"""

_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_stamps: redis.Redis | None = None


def _stamp(started: float) -> None:
    from bench._dispatch_jobs import STAMPS

    global _stamps
    if _stamps is None:
        _stamps = redis.Redis.from_url(_url)
    _stamps.rpush(STAMPS, repr(started))


# --- Dramatiq -------------------------------------------------------------------------------
import dramatiq  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402

dramatiq_broker = RedisBroker(url=_url)
dramatiq.set_broker(dramatiq_broker)


@dramatiq.actor(queue_name=DRAMATIQ_QUEUE, max_retries=0)
def dramatiq_noop(stamp: bool = False) -> None:
    """No-op, or one timestamp for latency runs."""
    started = time.time()
    if stamp:
        _stamp(started)


# --- Celery ---------------------------------------------------------------------------------
from celery import Celery  # noqa: E402

celery_app = Celery("bench", broker=_url)
celery_app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue=CELERY_QUEUE,
    broker_transport_options={
        "priority_steps": list(range(10)),
        "sep": ":",
        "queue_order_strategy": "priority",
    },
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@celery_app.task(name="bench.noop")
def celery_noop(stamp: bool = False) -> None:
    """No-op, or one timestamp for latency runs."""
    started = time.time()
    if stamp:
        _stamp(started)


# --- limit ----------------------------------------------------------------------------------
def limit_worker() -> None:
    """The limit row's worker: pop-and-lease, (stamp,) ack; blocks briefly when idle."""
    conn = redis.Redis.from_url(_url)
    pop = conn.register_script(POP_SCRIPT)
    ack = conn.register_script(ACK_SCRIPT)
    keys = [*LIMIT_QUEUES, LIMIT_LEASES]
    wake = "bench:limit:wake"
    while True:
        item: Any = pop(keys=keys, args=[int(time.time() * 1000) + 60_000])
        if item is None:
            conn.blpop([wake], timeout=1)  # idle: the enqueue pushes a wake token
            continue
        if item.startswith(b"s"):
            _stamp(time.time())
        ack(keys=[LIMIT_LEASES, LIMIT_DONE], args=[item])


if __name__ == "__main__":
    limit_worker()
