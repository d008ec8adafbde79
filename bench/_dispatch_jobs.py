"""The job both sides of bench/dispatch.py run: nothing, or one timestamp for latency runs.

``handle`` is the usm worker's python handler; ``rq_job`` the plain RQ job. With ``stamp`` set they
push ``time.time()`` at their very start onto a Redis list the bench waits on.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

__all__ = ["STAMPS", "handle", "rq_job"]

STAMPS = "bench:dispatch:stamps"
_conn: redis.Redis | None = None


def _stamp(started: float) -> None:
    global _conn
    if _conn is None:
        _conn = redis.Redis.from_url(os.environ["REDIS_URL"])
    _conn.rpush(STAMPS, repr(started))


def handle(delivery: Any) -> None:
    """usm worker handler: no-op unless the payload asks for a timestamp."""
    started = time.time()
    if delivery.payload and delivery.payload.get("stamp"):
        _stamp(started)


def rq_job(stamp: bool = False) -> None:
    """Plain RQ job: no-op unless asked for a timestamp."""
    started = time.time()
    if stamp:
        _stamp(started)
