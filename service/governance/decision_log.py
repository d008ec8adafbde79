"""The decision log: recent decisions in a bounded Redis stream, for replay and audit.

Scoring must not wait for Redis, nor fail when it is down. A request only appends
``(call, decision)`` to an in-memory deque; a background task drains it every ~200 ms, encodes the
entries and appends up to :data:`FLUSH_CHUNK` of them per call of :data:`APPEND_SCRIPT` as one
stream entry. When the buffer overflows or Redis is down the entries are dropped and counted.

A batch arrives already encoded (:meth:`DecisionLog.extend_batch`): each row's start is made
once per distinct decision (:class:`service.core.encoded.Prototype`), so a row costs a join, not an
encode and an ``isoformat``. A decision appended on its own is encoded as it is appended, never
held: a :class:`Decision` is a tree of some twenty objects the garbage collector tracks, and the
thousands a flush interval held were carried through its generations, costing the API about a
tenth of its requests per CPU-second (bench/governance.py: on/off 0.90 -> 0.95 moving the same
encode from the flush to the append). The calls' JSON travels as one string with their lengths,
not as JSON strings inside the rows: no escaping on the way in, none to undo on the way out.

A stream entry holds ``n`` decisions: ``calls`` (their calls' JSON, what replay needs, one after
the other), ``lengths`` (JSON array of their lengths in bytes) and ``rows`` (JSON array of
``[version, hash, priority, team, at]``: the table set that decided, the outcome, and the ISO time
the call was reported: the decision time unless the caller gave ``reported_at``). Entries of
releases before held one decision each (fields ``call``, ``version``, ``hash``, ``priority``,
``team``, ``at``); :func:`read_log` reads both.
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
from service.core.encoded import EncodedBatch
from service.governance.keys import DECISION_LOG, stream_index
from service.governance.stream_buffer import StreamBuffer, text
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
-- Append one chunk of decisions to the decision log as one stream entry, then drop the oldest
-- entries while the newer ones still hold at least ARGV[1] decisions.
-- One entry per chunk, not per decision: an XADD (and its AOF record) per decision cost Redis
-- about 5 ms of CPU per 1,000 decisions, twice a whole bare batch request (docs/benchmarks.md).
-- KEYS[1]: the stream. Entry fields: n (decisions), calls, lengths, rows (ARGV[2..4]).
-- KEYS[2]: sorted set indexing the stream: member an entry id, score the decisions appended up
--          to and including that entry (a running total), so trimming reads no entry. Lost, it
--          starts again at 0 and the stream is trimmed once ARGV[1] new decisions are in.
-- ARGV[1]: decisions to keep, at least (whole entries are dropped).
-- ARGV[2]: the calls' JSON, one after the other.
-- ARGV[3]: JSON array of their lengths in bytes, in order.
-- ARGV[4]: JSON array of [version, hash, priority, team, at] rows, one per call; at an ISO time.
-- ARGV[5]: the number of decisions.
-- Returns: the number of decisions added.
local n = tonumber(ARGV[5])
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local total = n + (tonumber(newest[2]) or 0)
local id = redis.call('XADD', KEYS[1], '*', 'n', n, 'calls', ARGV[2], 'lengths', ARGV[3],
  'rows', ARGV[4])
redis.call('ZADD', KEYS[2], total, id)
local floor = total - tonumber(ARGV[1])
if floor >= 0 then
  -- Entries whose decisions are all beyond the newest ARGV[1] go, and with them any older
  -- entry the index does not know (one decision each, written by a release before it).
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', floor)
  redis.call('XTRIM', KEYS[1], 'MINID', redis.call('ZRANGE', KEYS[2], 0, 0)[1])
end
return n
"""


class LoggedDecision(msgspec.Struct, frozen=True, kw_only=True):
    """One decision read back from the stream."""

    id: str
    """The stream entry's id; ``<id>/<i>`` for the ``i``-th decision of a chunked entry."""
    call: Call
    version: str
    hash: str
    priority: str
    team: str
    at: datetime


Entry = tuple[bytes, bytes]
"""A decision as buffered: the call's JSON and its row (see the module doc)."""


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
        self.keys = [key, stream_index(key)]

    def append(self, call: Call, decision: Decision) -> None:
        """Remember one decision; O(1), never blocks, never raises."""
        if self.maxlen:
            self._add(_encoded(call, decision))

    def append_encoded(self, call: bytes, row: bytes) -> None:
        """Remember one decision already encoded, as a batch's are: the call's JSON and its row
        (see the module doc). For single calls scored to JSON (``POST /v1/priority``, source
        events) on the fast path."""
        self._add((call, row))

    def extend(self, calls: Iterable[Call], decisions: Iterable[Decision]) -> None:
        """Remember a batch of decisions, pairwise with their calls."""
        if self.maxlen:
            self._add_many(map(_encoded, calls, decisions))

    def extend_batch(self, batch: EncodedBatch) -> None:
        """Remember a batch scored by :meth:`Scorer.score_encoded`: its calls' JSON and rows."""
        self._add_many(zip(batch.calls, batch.rows, strict=True))

    def _args(self, chunk: list[Entry]) -> list[Any]:
        calls = list(map(_first, chunk))
        rows = b"[" + b",".join(map(_second, chunk)) + b"]"
        return [self.maxlen, b"".join(calls), _encode(list(map(len, calls))), rows, len(calls)]


_first = itemgetter(0)
_second = itemgetter(1)


def _encoded(call: Call, d: Decision) -> tuple[bytes, bytes]:
    """A decision appended on its own, as a batch's entries are: the call's JSON and its row."""
    at = d.reported_at.isoformat()
    return _encode(call), _encode((d.table_version, d.table_hash, d.priority.name, d.team, at))


_PAGE = 100
"""Stream entries read per ``XREVRANGE``: up to 100,000 decisions, or 100 of an older release."""

_Row = tuple[str, str, str, str, str]
_decode_rows = msgspec.json.Decoder(list[_Row]).decode
_decode_lengths = msgspec.json.Decoder(list[int]).decode
_decode_call = msgspec.json.Decoder(Call).decode


def read_log(client: redis.Redis, count: int, key: str = DECISION_LOG) -> list[LoggedDecision]:
    """The newest ``count`` decisions of the decision log, oldest first.

    Decisions that no longer decode (written by another release) are skipped. An entry written
    by a release before chunked entries holds one decision: it is read as it always was.
    """
    newest_first: list[LoggedDecision] = []
    upper = "+"
    while len(newest_first) < count:
        entries: list[tuple[Any, dict[Any, Any]]] = client.xrevrange(  # type: ignore[assignment]
            key, max=upper, min="-", count=_PAGE
        )
        if not entries:
            break
        for entry_id, fields in entries:
            decisions = _decode(text(entry_id), {text(k): v for k, v in fields.items()})
            newest_first.extend(reversed(decisions))
        upper = "(" + text(entries[-1][0])
    return newest_first[:count][::-1]


def _decode(entry_id: str, f: dict[str, bytes]) -> list[LoggedDecision]:
    """The decisions of one stream entry, in order; [] when it does not decode."""
    try:
        if "calls" not in f:  # one decision, as written before chunked entries
            return [
                LoggedDecision(
                    id=entry_id,
                    call=_decode_call(f["call"]),
                    version=text(f["version"]),
                    hash=text(f["hash"]),
                    priority=text(f["priority"]),
                    team=text(f["team"]),
                    at=datetime.fromisoformat(text(f["at"])),
                )
            ]
        lengths, rows, calls = _decode_lengths(f["lengths"]), _decode_rows(f["rows"]), f["calls"]
    except (KeyError, ValueError, msgspec.DecodeError):
        return []
    if len(lengths) != len(rows):
        return []
    out: list[LoggedDecision] = []
    start = 0
    pairs = zip(lengths, rows, strict=True)
    for i, (length, (version, table_hash, priority, team, at)) in enumerate(pairs):
        try:
            call = _decode_call(calls[start : start + length])
            when = datetime.fromisoformat(at)
        except (ValueError, msgspec.DecodeError):
            continue
        finally:
            start += length
        out.append(
            LoggedDecision(
                id=f"{entry_id}/{i}",
                call=call,
                version=version,
                hash=table_hash,
                priority=priority,
                team=team,
                at=when,
            )
        )
    return out
