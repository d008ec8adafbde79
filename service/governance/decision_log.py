"""The decision log: recent decisions in a bounded Redis stream, for replay and audit.

Scoring must not wait for Redis, nor fail when it is down. A request only appends
``(call, decision)`` to an in-memory deque; a background task drains it every ~200 ms, encodes the
entries and writes them with one pipelined round trip of ``XADD ... MAXLEN ~ N``. When the buffer
overflows or Redis is down the entries are dropped and counted.

Each stream entry has the fields ``call`` (the call as JSON, what replay needs), ``version`` and
``hash`` (the table set that decided), ``priority``, ``team`` and ``at`` (ISO time the call was
reported: the decision time unless the caller gave ``reported_at``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec
import redis
import redis.asyncio

from service.core.calls import Call
from service.core.decision import Decision
from service.governance.instruments import (
    DECISION_LOG_DROPPED,
    DECISION_LOG_WRITTEN,
    DropReason,
)
from service.governance.keys import DECISION_LOG

__all__ = ["DecisionLog", "LoggedDecision", "read_log"]

log = logging.getLogger("usm.governance.decision_log")

_encode = msgspec.json.Encoder().encode


class LoggedDecision(msgspec.Struct, frozen=True, kw_only=True):
    """One entry read back from the stream."""

    id: str
    call: Call
    version: str
    hash: str
    priority: str
    team: str
    at: datetime


class DecisionLog:
    """Buffers decisions in memory and writes them to Redis in the background."""

    def __init__(self, maxlen: int = 100_000, buffer: int = 50_000, key: str = DECISION_LOG):
        self.maxlen = maxlen
        """Entries the stream keeps (approximately); 0 turns the log off."""
        self.key = key
        self._buf: deque[tuple[Call, Decision]] = deque(maxlen=buffer)
        self._appended = 0
        self._taken = 0
        self._overflowed = 0
        self._redis_down = False

    @property
    def enabled(self) -> bool:
        return self.maxlen > 0

    def append(self, call: Call, decision: Decision) -> None:
        """Remember one decision; O(1), never blocks, never raises."""
        if self.maxlen:
            self._buf.append((call, decision))
            self._appended += 1

    def extend(self, calls: Iterable[Call], decisions: Iterable[Decision]) -> None:
        """Remember a batch of decisions, pairwise with their calls."""
        if self.maxlen:
            items = list(zip(calls, decisions, strict=False))
            self._buf.extend(items)  # a full deque drops its oldest; _take counts them
            self._appended += len(items)

    def pending(self) -> int:
        """Entries waiting for the next flush."""
        return len(self._buf)

    def _take(self) -> list[tuple[Call, Decision]]:
        items: list[tuple[Call, Decision]] = []
        pop = self._buf.popleft
        for _ in range(len(self._buf)):
            items.append(pop())
        self._taken += len(items)
        lost = self._appended - self._taken - len(self._buf) - self._overflowed
        if lost > 0:
            self._overflowed += lost
            DECISION_LOG_DROPPED.labels(DropReason.BUFFER_FULL.value).inc(lost)
        return items

    async def flush(self, client: redis.asyncio.Redis) -> int:
        """Write everything buffered in one pipelined round trip; returns entries written."""
        items = self._take()
        if not items:
            return 0
        pipe = client.pipeline(transaction=False)
        for call, d in items:
            pipe.xadd(
                self.key,
                {
                    "call": _encode(call),
                    "version": d.table_version,
                    "hash": d.table_hash,
                    "priority": d.priority.name,
                    "team": d.team,
                    "at": d.reported_at.isoformat(),
                },
                maxlen=self.maxlen,
                approximate=True,
            )
        try:
            await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            DECISION_LOG_DROPPED.labels(DropReason.REDIS_DOWN.value).inc(len(items))
            if not self._redis_down:
                log.warning("decision log: Redis unreachable (%s); dropping decisions", exc)
            self._redis_down = True
            return 0
        if self._redis_down:
            log.info("decision log: Redis reachable again")
        self._redis_down = False
        DECISION_LOG_WRITTEN.inc(len(items))
        return len(items)

    async def run(self, client: redis.asyncio.Redis, interval: float = 0.2) -> None:
        """Flush every ``interval`` seconds until cancelled, then flush what is left."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.flush(client)
                except Exception:
                    log.exception("decision log flush failed")
        finally:
            if self._buf:
                await asyncio.shield(self._final_flush(client))

    async def _final_flush(self, client: redis.asyncio.Redis) -> None:
        try:
            await asyncio.wait_for(self.flush(client), timeout=2)
        except Exception:
            log.warning("decision log: last flush at shutdown failed")


def read_log(client: redis.Redis, count: int, key: str = DECISION_LOG) -> list[LoggedDecision]:
    """The newest ``count`` entries of the decision log, oldest first.

    Entries that no longer decode (written by another release) are skipped.
    """
    out: list[LoggedDecision] = []
    entries: list[tuple[Any, dict[Any, Any]]] = client.xrevrange(key, count=count) or []  # type: ignore[assignment]
    for entry_id, fields in reversed(entries):
        f = {_text(k): v for k, v in fields.items()}
        try:
            out.append(
                LoggedDecision(
                    id=_text(entry_id),
                    call=msgspec.json.decode(f["call"], type=Call),
                    version=_text(f["version"]),
                    hash=_text(f["hash"]),
                    priority=_text(f["priority"]),
                    team=_text(f["team"]),
                    at=datetime.fromisoformat(_text(f["at"])),
                )
            )
        except (KeyError, ValueError, msgspec.DecodeError):
            continue
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
