"""The decision log: recent decisions in a bounded Redis stream, for replay and audit.

Scoring must not wait for Redis, nor fail when it is down. A request only appends
``(call, decision)`` to an in-memory deque; a background task drains it every ~200 ms, encodes the
entries and appends them with ``XADD ... MAXLEN ~ N`` inside a Lua script. When the buffer
overflows or Redis is down the entries are dropped and counted. The flush sends up to
:data:`FLUSH_CHUNK` decisions per call of :data:`APPEND_SCRIPT`, which runs the ``XADD``s inside
Redis: per decision, the client only encodes one JSON row instead of packing one command.

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
from redis.commands.core import AsyncScript

from service.core.calls import Call
from service.core.decision import Decision
from service.governance.keys import DECISION_LOG
from service.metrics.governance import (
    DECISION_LOG_DROPPED,
    DECISION_LOG_WRITTEN,
    DropReason,
)
from service.tasks import finish

__all__ = ["APPEND_SCRIPT", "FLUSH_CHUNK", "DecisionLog", "LoggedDecision", "read_log"]

log = logging.getLogger("usm.governance.decision_log")

_encode = msgspec.json.Encoder().encode

FLUSH_CHUNK = 1000
"""Decisions per script call: bounds how long one call keeps Redis busy (about a millisecond)."""

APPEND_SCRIPT = """
-- Append decisions to the decision log stream, trimming it to about ARGV[1] entries.
-- One call replaces one XADD round trip (and its client-side command packing) per decision.
-- KEYS[1]: the stream.
-- ARGV[1]: MAXLEN (approximate).
-- ARGV[2]: JSON array of [call, version, hash, priority, team, at] rows; call is the call's JSON
--          as a string, at an ISO time.
-- Returns: the number of entries added.
local rows = cjson.decode(ARGV[2])
for _, r in ipairs(rows) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'call', r[1], 'version', r[2], 'hash', r[3], 'priority', r[4], 'team', r[5], 'at', r[6])
end
return #rows
"""


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
        self._registered: tuple[redis.asyncio.Redis, AsyncScript] | None = None

    @property
    def enabled(self) -> bool:
        return self.maxlen > 0

    def append(self, call: Call, decision: Decision) -> None:
        """Remember one decision; O(1), never blocks, never raises.

        Safe from handler threads too (``deque.append`` is atomic); only the ``buffer_full``
        drop count may then come out a little low.
        """
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
        """Write everything buffered, a chunk per script call; returns entries written."""
        items = self._take()
        if not items:
            return 0
        script = self._script(client)
        written = 0
        try:
            for start in range(0, len(items), FLUSH_CHUNK):
                rows = _encode(
                    [
                        (
                            _encode(call).decode(),
                            d.table_version,
                            d.table_hash,
                            d.priority.name,
                            d.team,
                            d.reported_at.isoformat(),
                        )
                        for call, d in items[start : start + FLUSH_CHUNK]
                    ]
                )
                written += int(await script(keys=[self.key], args=[self.maxlen, rows]))
        except (redis.RedisError, OSError) as exc:
            DECISION_LOG_DROPPED.labels(DropReason.REDIS_DOWN.value).inc(len(items) - written)
            if not self._redis_down:
                log.warning("decision log: Redis unreachable (%s); dropping decisions", exc)
            self._redis_down = True
            DECISION_LOG_WRITTEN.inc(written)
            return written
        if self._redis_down:
            log.info("decision log: Redis reachable again")
        self._redis_down = False
        DECISION_LOG_WRITTEN.inc(written)
        return written

    def _script(self, client: redis.asyncio.Redis) -> AsyncScript:
        """APPEND_SCRIPT registered on ``client`` (once per client)."""
        if self._registered is None or self._registered[0] is not client:
            self._registered = (client, client.register_script(APPEND_SCRIPT))
        return self._registered[1]

    async def run(self, client: redis.asyncio.Redis, interval: float = 0.2) -> None:
        """Flush every ``interval`` seconds until cancelled, then flush what is left."""
        task = asyncio.current_task()
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.flush(client)
                except Exception:
                    log.exception("decision log flush failed")
                # A cancel that landed inside a Redis command can come out of the client's
                # read-timeout handling (itself a cancel) as a plain return; the shutdown that
                # sent it waits for this task, so a cancel asked for ends the loop regardless.
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
        finally:
            if self._buf:
                # Held to its end (bounded by its own timeout) even if cancelled again meanwhile.
                await finish(asyncio.ensure_future(self._final_flush(client)))

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
