"""The source event log: recent inbound tool payloads in a bounded Redis stream, for replay.

A table change may change a source mapping (``sources.toml``) as well as the matrix; the decision
log holds mapped calls, which cannot show what a new mapping would read. So every authenticated
inbound event's body is kept as the tool sent it, and ``usm tables replay --from-events`` maps it
again with each set's own mapping. Like the decision log, recording never waits for Redis: the
route appends to an in-memory deque, a background task writes it with ``XADD ... MAXLEN ~ N``
(``USM_SOURCE_EVENT_LOG_MAXLEN``, default 10,000: payloads are larger than decisions), and
entries are dropped and counted when the buffer overflows or Redis is down.

Each stream entry has the fields ``source``, ``payload`` (the raw body) and ``at`` (ISO time
received).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime
from typing import Any

import msgspec
import redis
import redis.asyncio

from service.governance.keys import SOURCE_EVENTS
from service.metrics.governance import SOURCE_EVENT_LOG_DROPPED, DropReason

__all__ = ["EventLog", "RecordedEvent", "read_events"]

log = logging.getLogger("usm.governance.event_log")

FLUSH_CHUNK = 500
"""Events per pipeline: payloads are up to the body limit, so chunks stay small."""


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One inbound event read back from the stream."""

    id: str
    source: str
    payload: Any
    """The tool's JSON, decoded."""
    at: datetime


class EventLog:
    """Buffers inbound source events in memory and writes them to Redis in the background."""

    def __init__(self, maxlen: int = 10_000, buffer: int = 10_000, key: str = SOURCE_EVENTS):
        self.maxlen = maxlen
        """Events the stream keeps (approximately); 0 turns the log off."""
        self.key = key
        self._buf: deque[tuple[str, bytes, str]] = deque(maxlen=buffer)
        self._redis_down = False

    @property
    def enabled(self) -> bool:
        return self.maxlen > 0

    def append(self, source: str, body: bytes, at: datetime) -> None:
        """Remember one event; O(1), never blocks, never raises."""
        if self.maxlen:
            if len(self._buf) == self._buf.maxlen:
                SOURCE_EVENT_LOG_DROPPED.labels(DropReason.BUFFER_FULL.value).inc()
            self._buf.append((source, body, at.isoformat()))

    def pending(self) -> int:
        return len(self._buf)

    async def flush(self, client: redis.asyncio.Redis) -> int:
        """Write everything buffered; returns events written."""
        items = [self._buf.popleft() for _ in range(len(self._buf))]
        written = 0
        try:
            for start in range(0, len(items), FLUSH_CHUNK):
                pipe = client.pipeline(transaction=False)
                chunk = items[start : start + FLUSH_CHUNK]
                for source, body, at in chunk:
                    fields: dict[Any, Any] = {"source": source, "payload": body, "at": at}
                    pipe.xadd(self.key, fields, maxlen=self.maxlen, approximate=True)
                await pipe.execute()
                written += len(chunk)
        except (redis.RedisError, OSError) as exc:
            SOURCE_EVENT_LOG_DROPPED.labels(DropReason.REDIS_DOWN.value).inc(len(items) - written)
            if not self._redis_down:
                log.warning("source event log: Redis unreachable (%s); dropping events", exc)
            self._redis_down = True
            return written
        self._redis_down = False
        return written

    async def run(self, client: redis.asyncio.Redis, interval: float = 0.2) -> None:
        """Flush every ``interval`` seconds until cancelled, then flush what is left."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.flush(client)
                except Exception:
                    log.exception("source event log flush failed")
        finally:
            if self._buf:
                await asyncio.shield(self._final_flush(client))

    async def _final_flush(self, client: redis.asyncio.Redis) -> None:
        try:
            await asyncio.wait_for(self.flush(client), timeout=2)
        except Exception:
            log.warning("source event log: last flush at shutdown failed")


def read_events(client: redis.Redis, count: int, key: str = SOURCE_EVENTS) -> list[RecordedEvent]:
    """The newest ``count`` recorded events, oldest first; undecodable entries are skipped."""
    out: list[RecordedEvent] = []
    entries: list[tuple[Any, dict[Any, Any]]] = client.xrevrange(key, count=count) or []  # type: ignore[assignment]
    for entry_id, fields in reversed(entries):
        f = {_text(k): v for k, v in fields.items()}
        try:
            out.append(
                RecordedEvent(
                    id=_text(entry_id),
                    source=_text(f["source"]),
                    payload=msgspec.json.decode(f["payload"]),
                    at=datetime.fromisoformat(_text(f["at"])),
                )
            )
        except (KeyError, ValueError, msgspec.DecodeError):
            continue
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
