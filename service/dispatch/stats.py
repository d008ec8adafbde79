"""Queue and worker state read from Redis for metrics, in one round trip each.

The cost of a read grows with the number of queues and teams, never with the number of queued
items: depth is ``LLEN``, the oldest item's age comes from the head id (ids start with their
creation time), overdue is ``ZCOUNT`` on a zset scored by response target.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec
import redis

from service.dispatch import keys
from service.dispatch.items import id_time_ms

__all__ = ["QueueStat", "WorkerStat", "read_queue_stats", "read_worker_stats"]


class QueueStat(msgspec.Struct, frozen=True, kw_only=True):
    """One team's queue for one priority level."""

    team: str
    priority: str
    depth: int
    """Items waiting."""
    oldest_age_seconds: float
    """Age of the oldest waiting item (0 when empty), counted from its enqueue time."""
    overdue: int
    """Waiting items past their response target."""


class WorkerStat(msgspec.Struct, frozen=True, kw_only=True):
    """One team's workers."""

    team: str
    up: int
    """Workers whose heartbeat is current."""
    busy: int
    """Items a worker is handling now (one per busy worker)."""
    longest_running_seconds: float
    """How long the longest-running item has been handled (0 when idle)."""


def read_queue_stats(
    conn: redis.Redis, teams: Sequence[str], priorities: Sequence[str], now: datetime
) -> list[QueueStat]:
    """Depth, oldest age and overdue count of every (team, priority) queue; one pipeline.

    Args:
        conn: Redis connection.
        teams: team names.
        priorities: priority names, e.g. ``["P1", ..., "P5"]``.
        now: the moment ages and targets are measured against (timezone-aware).
    """
    pairs = [(t, p) for t in teams for p in priorities]
    now_s = now.timestamp()
    with conn.pipeline(transaction=False) as pipe:
        for team, priority in pairs:
            name = keys.queue_name(team, priority)
            pipe.llen(keys.queue_key(name))
            pipe.lindex(keys.queue_key(name), 0)
            pipe.zcount(keys.due_key(name), "-inf", now_s)
        rows = pipe.execute()
    out = []
    for n, (team, priority) in enumerate(pairs):
        depth, head, overdue = rows[3 * n : 3 * n + 3]
        age = 0.0
        if head is not None:
            born = id_time_ms(head.decode())
            age = max(0.0, now_s - born / 1000) if born else 0.0
        out.append(
            QueueStat(
                team=team,
                priority=priority,
                depth=int(depth),
                oldest_age_seconds=age,
                overdue=int(overdue),
            )
        )
    return out


def read_worker_stats(conn: redis.Redis, teams: Sequence[str], now: datetime) -> list[WorkerStat]:
    """Workers up and busy per team, and the longest-running item; one pipeline."""
    now_ms = now.timestamp() * 1000
    with conn.pipeline(transaction=False) as pipe:
        for team in teams:
            pipe.zcount(keys.workers_key(team), now_ms, "+inf")
            pipe.zcard(keys.started_key(team))
            pipe.zrange(keys.started_key(team), 0, 0, withscores=True)
        rows = pipe.execute()
    out = []
    for n, team in enumerate(teams):
        up, busy, first = rows[3 * n : 3 * n + 3]
        longest = max(0.0, (now_ms - first[0][1]) / 1000) if first else 0.0
        out.append(
            WorkerStat(team=team, up=int(up), busy=int(busy), longest_running_seconds=longest)
        )
    return out
