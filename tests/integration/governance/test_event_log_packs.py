"""The source event log sends a chunk's payloads packed into few script arguments
(``service/governance/event_log.py``): every payload comes back byte for byte, in order, with
its source and time, whether a chunk fits one pack, spans several or holds a payload larger
than a pack."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import redis
import redis.asyncio

from service.governance.event_log import PACK_BYTES, EventLog
from service.governance.keys import SOURCE_EVENTS

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _flush(log: EventLog, url: str) -> int:
    async def go() -> int:
        client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            return await log.flush(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _body(n: int, size: int) -> bytes:
    # Multi-byte UTF-8, quotes and backslashes: a payload is cut by bytes, never re-encoded.
    text = ('Café ☕ "down" \\ ' * (size // 20 + 1))[: max(size - 40, 1)]
    return msgspec.json.encode({"n": n, "text": text})


@pytest.mark.parametrize(
    "sizes",
    [
        [200] * 50,  # one pack
        [PACK_BYTES // 3] * 7 + [300] * 3,  # several packs
        [100, PACK_BYTES + 5000, 100, PACK_BYTES // 2, PACK_BYTES // 2, 100],  # one too big
    ],
    ids=["one pack", "several packs", "a payload larger than a pack"],
)
def test_every_payload_comes_back_as_sent(
    redis_url: str, redis_client: redis.Redis, sizes: list[int]
) -> None:
    log = EventLog()
    sent = []
    for n, size in enumerate(sizes):
        body, source, at = _body(n, size), ("jira", "rt", "glpi")[n % 3], AT + timedelta(seconds=n)
        sent.append((source, body, at.isoformat()))
        log.append(source, body, at)
    assert _flush(log, redis_url) == len(sizes)
    entries = redis_client.xrange(SOURCE_EVENTS)
    got = [(f[b"source"].decode(), f[b"payload"], f[b"at"].decode()) for _, f in entries]
    assert got == sent
