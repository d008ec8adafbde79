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
pipelined ``XADD`` each, about 3 us this way (measured on the 2-core dev machine), against some
300 us for the event itself.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import msgspec
import redis
import redis.asyncio

from service.governance.keys import SOURCE_EVENTS
from service.governance.stream_buffer import StreamBuffer, read_newest, text
from service.metrics.governance import SOURCE_EVENT_LOG_DROPPED

__all__ = ["FLUSH_CHUNK", "RECORD_SCRIPT", "EventLog", "RecordedEvent", "read_events"]

log = logging.getLogger("usm.governance.event_log")

FLUSH_CHUNK = 500
"""Events per script call: payloads are up to the body limit, so chunks stay small."""

RECORD_SCRIPT = """
-- Append inbound source events to their stream, trimming it to about ARGV[1] entries.
-- One call replaces one XADD round trip (and its client-side command packing) per event.
-- KEYS[1]: the stream.
-- ARGV[1]: MAXLEN (approximate).
-- ARGV[2..]: triples source, payload (the tool's body as sent), at (ISO time received).
-- Returns: the number of entries added.
for i = 2, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
    'source', ARGV[i], 'payload', ARGV[i + 1], 'at', ARGV[i + 2])
end
return (#ARGV - 1) / 3
"""


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One inbound event read back from the stream."""

    id: str
    source: str
    payload: Any
    """The tool's JSON, decoded."""
    at: datetime


class EventLog(StreamBuffer[tuple[str, bytes, str | bytes]]):
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

    def append_at(self, source: str, body: bytes, at: bytes) -> None:
        """:meth:`append` with the time already written: ``at`` is the ISO time received, as
        ``isoformat`` writes it, in UTF-8 (Redis stores the same bytes either way). The fast
        event route has it from the answer's own encoding, for a fifth of ``isoformat``."""
        self._add((source, body, at))

    def _args(self, chunk: list[tuple[str, bytes, str | bytes]]) -> list[Any]:
        args: list[Any] = [self.maxlen]
        for triple in chunk:
            args.extend(triple)
        return args


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
