"""The decision log: recent decisions in a bounded Redis stream, for replay and audit.

Scoring must not wait for Redis, nor fail when it is down. A request only appends
``(call, decision)`` to an in-memory deque; a background task drains it every ~200 ms, encodes the
entries and appends them with ``XADD ... MAXLEN ~ N`` inside a Lua script. When the buffer
overflows or Redis is down the entries are dropped and counted. The flush sends up to
:data:`FLUSH_CHUNK` decisions per call of :data:`APPEND_SCRIPT`, which runs the ``XADD``s inside
Redis: per decision, the client only encodes one JSON row instead of packing one command.

A batch arrives already encoded (:meth:`DecisionLog.extend_batch`): each row's start is made
once per distinct decision (:class:`service.core.wire.Prototype`), so a row costs a join, not an
encode and an ``isoformat``. The calls' JSON travels beside the rows as one string with their
lengths, not as JSON strings inside the rows: no escaping on the way in, no unescaping in Lua.

Each stream entry has the fields ``call`` (the call as JSON, what replay needs), ``version`` and
``hash`` (the table set that decided), ``priority``, ``team`` and ``at`` (ISO time the call was
reported: the decision time unless the caller gave ``reported_at``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from operator import itemgetter
from typing import Any

import msgspec
import redis
import redis.asyncio

from service.core.calls import Call
from service.core.decision import Decision
from service.core.wire import EncodedBatch
from service.governance.keys import DECISION_LOG
from service.governance.stream_buffer import StreamBuffer, read_newest, text
from service.metrics.governance import (
    DECISION_LOG_DROPPED,
    DECISION_LOG_WRITTEN,
)

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
-- ARGV[2]: the calls' JSON, one after the other.
-- ARGV[3]: JSON array of their lengths in bytes, in order.
-- ARGV[4]: JSON array of [version, hash, priority, team, at] rows, one per call; at an ISO time.
-- Returns: the number of entries added.
local lengths = cjson.decode(ARGV[3])
local rows = cjson.decode(ARGV[4])
local start = 1
for i, r in ipairs(rows) do
  local stop = start + lengths[i]
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'call', string.sub(ARGV[2], start, stop - 1),
    'version', r[1], 'hash', r[2], 'priority', r[3], 'team', r[4], 'at', r[5])
  start = stop
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


Entry = tuple[Call, Decision] | tuple[bytes, bytes]
"""A decision as appended, or a batch's: the call's JSON and its row (see the module doc)."""


class DecisionLog(StreamBuffer[Entry]):
    """Buffers decisions in memory and writes them to Redis in the background."""

    name = "decision log"
    noun = "decisions"
    script = APPEND_SCRIPT
    chunk = FLUSH_CHUNK
    dropped = DECISION_LOG_DROPPED
    written = DECISION_LOG_WRITTEN
    log = log

    def __init__(self, maxlen: int = 100_000, buffer: int = 50_000, key: str = DECISION_LOG):
        super().__init__(maxlen, buffer, key)

    def append(self, call: Call, decision: Decision) -> None:
        """Remember one decision; O(1), never blocks, never raises."""
        self._add((call, decision))

    def extend(self, calls: Iterable[Call], decisions: Iterable[Decision]) -> None:
        """Remember a batch of decisions, pairwise with their calls."""
        self._add_many(zip(calls, decisions, strict=False))

    def extend_batch(self, batch: EncodedBatch) -> None:
        """Remember a batch scored by :meth:`Scorer.score_encoded`: its calls' JSON and rows."""
        self._add_many(zip(batch.calls, batch.rows, strict=True))

    def _args(self, chunk: list[Entry]) -> list[Any]:
        entries = [e if e[0].__class__ is bytes else _encoded(e) for e in chunk]  # type: ignore[arg-type]
        calls = list(map(_first, entries))
        rows = b"[" + b",".join(map(_second, entries)) + b"]"
        return [self.maxlen, b"".join(calls), _encode(list(map(len, calls))), rows]


_first = itemgetter(0)
_second = itemgetter(1)


def _encoded(entry: tuple[Call, Decision]) -> tuple[bytes, bytes]:
    """A decision appended on its own, as a batch's entries are: the call's JSON and its row."""
    call, d = entry
    at = d.reported_at.isoformat()
    return _encode(call), _encode((d.table_version, d.table_hash, d.priority.name, d.team, at))


def read_log(client: redis.Redis, count: int, key: str = DECISION_LOG) -> list[LoggedDecision]:
    """The newest ``count`` entries of the decision log, oldest first.

    Entries that no longer decode (written by another release) are skipped.
    """
    return read_newest(client, key, count, _decode)


def _decode(entry_id: str, f: dict[str, bytes]) -> LoggedDecision:
    return LoggedDecision(
        id=entry_id,
        call=msgspec.json.decode(f["call"], type=Call),
        version=text(f["version"]),
        hash=text(f["hash"]),
        priority=text(f["priority"]),
        team=text(f["team"]),
        at=datetime.fromisoformat(text(f["at"])),
    )
