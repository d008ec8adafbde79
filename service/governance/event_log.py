"""The source event log: recent inbound tool payloads in a bounded Redis stream, for replay.

A table change may change a source mapping (``sources.toml``) as well as the matrix; the decision
log holds mapped calls, which cannot show what a new mapping would read. So every authenticated
inbound event's body is kept as the tool sent it, and ``usm tables replay --from-events`` maps it
again with each set's own mapping. Like the decision log, recording never waits for Redis: the
route appends to an in-memory deque, a background task writes it with ``XADD ... MAXLEN ~ N``
(``USM_SOURCE_EVENT_LOG_MAXLEN``, default 10,000: payloads are larger than decisions), and
entries are dropped and counted when the buffer overflows or Redis is down.

Each stream entry has the fields ``source``, ``payload`` (the raw body) and ``at`` (ISO time
received). The flush sends up to :data:`FLUSH_CHUNK` events per call of :data:`RECORD_SCRIPT`,
which runs the ``XADD``s inside Redis: about 26 us of the API process's CPU per event with one
pipelined ``XADD`` each, about 3 us with three script arguments per event. The script's
arguments are now a few per chunk (the payloads one after the other in packs of up to
:data:`PACK_BYTES`, their sources, times and lengths as one JSON array), because redis-py packs
each argument in Python: 1.4 us per event of three arguments, 0.1 us this way, against some
17 us for a whole event on the fast path (``bench.http_inprocess``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from operator import itemgetter
from typing import Any

import msgspec
import redis
import redis.asyncio

from service.governance.keys import SOURCE_EVENTS
from service.governance.stream_buffer import StreamBuffer, read_newest, text
from service.metrics.governance import SOURCE_EVENT_LOG_DROPPED

__all__ = [
    "FLUSH_CHUNK",
    "PACK_BYTES",
    "RECORD_SCRIPT",
    "EventLog",
    "RecordedEvent",
    "read_events",
]

log = logging.getLogger("usm.governance.event_log")

FLUSH_CHUNK = 500
"""Events per script call: payloads are up to the body limit, so chunks stay small."""

PACK_BYTES = 1 << 20
"""Payload bytes per script argument (one larger payload has an argument of its own): far
below Redis's 512 MB argument limit whatever the body limit (``USM_MAX_BODY_BYTES``)."""

RECORD_SCRIPT = """
-- Append inbound source events to their stream, trimming it to about ARGV[1] entries.
-- One call replaces one XADD round trip (and its client-side command packing) per event.
-- KEYS[1]: the stream.
-- ARGV[1]: MAXLEN (approximate).
-- ARGV[2]: JSON array of [source, at, length] or [source, at, length, pack] per event, in
--          order: at the ISO time received, length the payload's bytes, pack n its argument
--          ARGV[2 + n] (1 when left out).
-- ARGV[3..]: the payloads (the tools' bodies as sent), one after the other in order.
-- Returns: the number of entries added.
local events = cjson.decode(ARGV[2])
local pack, start = 0, 1
for _, e in ipairs(events) do
  local n = e[4] or 1
  if n ~= pack then
    pack, start = n, 1
  end
  local stop = start + e[3]
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'source', e[1], 'payload', string.sub(ARGV[2 + n], start, stop - 1), 'at', e[2])
  start = stop
end
return #events
"""


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One inbound event read back from the stream."""

    id: str
    source: str
    payload: Any
    """The tool's JSON, decoded."""
    at: datetime


class EventLog(StreamBuffer[tuple[str, bytes, str]]):
    """Buffers inbound source events in memory and writes them to Redis in the background."""

    name = "source event log"
    noun = "events"
    script = RECORD_SCRIPT
    chunk = FLUSH_CHUNK
    dropped = SOURCE_EVENT_LOG_DROPPED
    log = log

    def __init__(self, maxlen: int = 10_000, buffer: int = 10_000, key: str = SOURCE_EVENTS):
        super().__init__(maxlen, buffer, key)

    def append(self, source: str, body: bytes, at: datetime) -> None:
        """Remember one event; O(1), never blocks, never raises."""
        self._add((source, body, at.isoformat()))

    def append_at(self, source: str, body: bytes, at: str) -> None:
        """:meth:`append` with the time already written: ``at`` is the ISO time received, as
        ``isoformat`` writes it. The fast event route has it from the answer's own encoding,
        for a fifth of ``isoformat``."""
        self._add((source, body, at))

    def _args(self, chunk: list[tuple[str, bytes, str]]) -> list[Any]:
        bodies = list(map(_body, chunk))
        lengths = list(map(len, bodies))
        if sum(lengths) <= PACK_BYTES:  # the usual chunk: one pack, no per-event Python step
            events = list(zip(map(_source, chunk), map(_at, chunk), lengths, strict=True))
            return [self.maxlen, _encode(events), b"".join(bodies)]
        packs: list[bytes] = []
        meta: list[tuple[str, str, int, int]] = []
        held: list[bytes] = []
        size = 0
        for source, body, at in chunk:
            if held and size + len(body) > PACK_BYTES:
                packs.append(b"".join(held))
                held, size = [], 0
            held.append(body)
            size += len(body)
            meta.append((source, at, len(body), len(packs) + 1))
        packs.append(b"".join(held))
        return [self.maxlen, _encode(meta), *packs]


_source = itemgetter(0)
_body = itemgetter(1)
_at = itemgetter(2)
_encode = msgspec.json.Encoder().encode


def read_events(client: redis.Redis, count: int, key: str = SOURCE_EVENTS) -> list[RecordedEvent]:
    """The newest ``count`` recorded events, oldest first; undecodable entries are skipped."""
    return read_newest(client, key, count, _decode)


def _decode(entry_id: str, f: dict[str, bytes]) -> RecordedEvent:
    return RecordedEvent(
        id=entry_id,
        source=text(f["source"]),
        payload=msgspec.json.decode(f["payload"]),
        at=datetime.fromisoformat(text(f["at"])),
    )
