"""The source event log: tool payloads buffered in memory, flushed to a bounded Redis stream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import redis
import redis.asyncio
from prometheus_client import REGISTRY

from service.governance.event_log import FLUSH_CHUNK, EventLog, read_events
from service.governance.keys import SOURCE_EVENTS
from tests.support.redis_server import RedisServer

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _dropped(reason: str) -> float:
    sample = REGISTRY.get_sample_value("usm_source_event_log_dropped_total", {"reason": reason})
    return sample or 0.0


def _flush(log: EventLog, url: str) -> int:
    async def go() -> int:
        client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return await log.flush(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _body(n: int) -> bytes:
    return json.dumps(
        {"issue": {"key": f"SD-{n}", "fields": {"summary": 'Café ☕ "down"'}}}
    ).encode()


def test_a_flush_writes_each_payload_as_sent_with_its_source_and_time(
    redis_url: str, redis_client: redis.Redis
) -> None:
    log = EventLog()
    log.append("jira", _body(1), AT)
    log.append("zammad", b'{"ticket": {"id": 81}}', AT)
    assert _flush(log, redis_url) == 2
    events = read_events(redis_client, 10)
    assert [(e.source, e.payload, e.at) for e in events] == [
        ("jira", json.loads(_body(1)), AT),
        ("zammad", {"ticket": {"id": 81}}, AT),
    ]


def test_the_stream_keeps_about_maxlen_events(redis_url: str, redis_client: redis.Redis) -> None:
    log = EventLog(maxlen=200)
    for round_ in range(6):
        for n in range(500):
            log.append("jira", _body(round_ * 500 + n), AT)
        _flush(log, redis_url)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries each by default), never below maxlen.
    assert 200 <= redis_client.xlen(SOURCE_EVENTS) <= 300
    newest = read_events(redis_client, 1)[0]
    assert newest.payload["issue"]["key"] == "SD-2999"


def test_with_redis_down_a_flush_drops_and_counts_and_recovers(
    redis_server: RedisServer, redis_url: str
) -> None:
    log = EventLog()
    for n in range(3):
        log.append("jira", _body(n), AT)
    before = _dropped("redis_down")
    redis_server.stop()
    try:
        assert _flush(log, redis_url) == 0
    finally:
        redis_server.start()
    assert _dropped("redis_down") == before + 3
    assert log.pending() == 0
    log.append("jira", _body(4), AT)
    assert _flush(log, redis_url) == 1


def test_a_full_buffer_drops_the_oldest_and_counts_them(
    redis_url: str, redis_client: redis.Redis
) -> None:
    log = EventLog(buffer=5)
    before = _dropped("buffer_full")
    for n in range(8):
        log.append("jira", _body(n), AT)
    assert _flush(log, redis_url) == 5
    assert _dropped("buffer_full") == before + 3
    keys = [e.payload["issue"]["key"] for e in read_events(redis_client, 100)]
    assert keys == [f"SD-{n}" for n in range(3, 8)]


def test_a_log_with_maxlen_zero_records_nothing() -> None:
    log = EventLog(maxlen=0)
    log.append("jira", _body(1), AT)
    assert (log.enabled, log.pending()) == (False, 0)


def test_reading_skips_entries_that_do_not_decode(redis_client: redis.Redis) -> None:
    redis_client.xadd(
        SOURCE_EVENTS, {"source": "jira", "payload": b"{not json", "at": AT.isoformat()}
    )
    redis_client.xadd(SOURCE_EVENTS, {"source": "jira", "payload": _body(2), "at": AT.isoformat()})
    assert [e.payload["issue"]["key"] for e in read_events(redis_client, 10)] == ["SD-2"]


def test_more_events_than_one_script_call_takes_are_all_written_in_order(
    redis_url: str, redis_client: redis.Redis
) -> None:
    log = EventLog()
    count = FLUSH_CHUNK * 2 + 7
    for n in range(count):
        log.append("jira", _body(n), AT)
    assert _flush(log, redis_url) == count
    keys = [e.payload["issue"]["key"] for e in read_events(redis_client, count)]
    assert keys == [f"SD-{n}" for n in range(count)]
