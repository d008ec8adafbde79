"""The decision log: buffered in memory, flushed to a bounded Redis stream, never in the way."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
import redis
import redis.asyncio
from prometheus_client import REGISTRY

from service.cli.main import main
from service.core.calls import Call
from service.core.scoring import Scorer
from service.files.loader import LoadedSet
from service.governance.decision_log import FLUSH_CHUNK, DecisionLog, LoggedDecision, read_log
from service.governance.keys import DECISION_LOG, stream_index
from tests.support.redis_server import RedisServer, free_port

TABLES = Path(__file__).resolve().parents[3] / "tables"

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("usm_decision_log_dropped_total", {"reason": reason}) or 0.0


def _flush(log: DecisionLog, url: str) -> int:
    async def go() -> int:
        client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return await log.flush(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _scored(scorer: Scorer, n: int) -> tuple[list[Call], list[object]]:
    calls = [Call(type="incident", impact="user", urgency=1 + i % 4) for i in range(n)]
    return calls, [scorer.score(c, NOW) for c in calls]


def test_a_flush_writes_every_buffered_decision_with_its_call_and_table_version(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    scorer = default_set.scorer()
    log = DecisionLog(maxlen=1000)
    call = Call(type="risk", impact="group", likelihood="likely", proximity="imminent")
    log.append(call, scorer.score(call, NOW))
    assert log.pending() == 1
    assert _flush(log, redis_url) == 1
    assert log.pending() == 0
    [entry] = read_log(redis_client, 10)
    assert entry.call == call
    assert (entry.version, entry.hash) == (default_set.version, default_set.hash)
    assert (entry.priority, entry.team) == ("P3", "service_desk")
    assert entry.at == NOW


def test_a_batch_scored_to_json_is_logged_as_the_single_path_logs_each_call(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    calls = [
        Call(type="incident", impact=1, urgency="high", service="email"),
        Call(type="risk", impact="group", likelihood="likely", proximity=2, category="security"),
        Call(type="wish", impact="user", urgency="low", category='naïve "quoted" \\ 日本'),
        Call(
            type="incident", impact=1, urgency="high", reported_at=datetime(2026, 5, 1, tzinfo=UTC)
        ),
        Call(
            type="change",
            impact=3,
            urgency=3,
            reported_at=datetime(2026, 5, 1, 9, 30, 0, 250, tzinfo=timezone(timedelta(hours=-5))),
        ),
    ]
    scorer = default_set.scorer()
    one_by_one, batched = DecisionLog(maxlen=1000), DecisionLog(maxlen=1000)
    for call in calls:
        one_by_one.append(call, scorer.score(call, NOW))
    batched.append(calls[0], scorer.score(calls[0], NOW))  # one chunk holds both kinds
    batched.extend_batch(scorer.score_encoded(calls, NOW))
    assert _flush(one_by_one, redis_url) == len(calls)
    singles = read_log(redis_client, 100)
    redis_client.delete(DECISION_LOG)
    assert _flush(batched, redis_url) == len(calls) + 1
    logged = read_log(redis_client, 100)
    assert [e.call for e in logged] == [calls[0], *calls]

    def fields(entries: list[LoggedDecision]) -> list[tuple[object, ...]]:
        return [(e.call, e.version, e.hash, e.priority, e.team, e.at) for e in entries]

    assert fields(logged[1:]) == fields(singles)
    [(_, stored)] = redis_client.xrange(DECISION_LOG)  # one flush, one entry
    at = [row[-1] for row in json.loads(stored[b"rows"])]
    assert at[:2] == [NOW.isoformat()] * 2  # isoformat, as ever
    assert at[-1] == "2026-05-01T09:30:00.000250-05:00"


def test_a_batch_is_logged_call_by_call_in_order(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    calls, decisions = _scored(default_set.scorer(), 6)
    log = DecisionLog(maxlen=1000)
    log.extend(calls, decisions)  # type: ignore[arg-type]
    assert _flush(log, redis_url) == 6
    assert [e.call for e in read_log(redis_client, 100)] == calls


def test_the_stream_keeps_the_newest_maxlen_decisions_a_flush_at_a_time(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    scorer = default_set.scorer()
    log = DecisionLog(maxlen=1200)
    logged: list[Call] = []
    for n in range(10):
        calls = [
            Call(type="incident", impact="user", urgency=1 + i % 4, category=f"{n}")
            for i in range(500)
        ]
        log.extend(calls, [scorer.score(c, NOW) for c in calls])
        logged += calls
        assert _flush(log, redis_url) == 500
    # Whole entries (a flush each) go once the newer ones hold 1,200: three of 500 stay.
    assert redis_client.xlen(DECISION_LOG) == 3
    assert [e.call for e in read_log(redis_client, 10_000)] == logged[-1500:]
    assert [e.call for e in read_log(redis_client, 700)] == logged[-700:]


def test_entries_of_the_release_before_are_read_and_go_once_newer_ones_hold_maxlen(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    scorer = default_set.scorer()
    old = [Call(type="wish", impact="user", urgency="low", category=f"old {i}") for i in range(3)]
    for call in old:  # one XADD per decision, as written before chunked entries
        d = scorer.score(call, NOW)
        redis_client.xadd(
            DECISION_LOG,
            {
                "call": msgspec.json.encode(call),
                "version": d.table_version,
                "hash": d.table_hash,
                "priority": d.priority.name,
                "team": d.team,
                "at": d.reported_at.isoformat(),
            },
        )
    log = DecisionLog(maxlen=4)
    calls, decisions = _scored(scorer, 2)
    log.extend(calls, decisions)  # type: ignore[arg-type]
    _flush(log, redis_url)
    assert [e.call for e in read_log(redis_client, 10)] == [*old, *calls]
    assert [e.priority for e in read_log(redis_client, 10)][:3] == ["P5"] * 3
    log.extend(calls, decisions)  # type: ignore[arg-type]
    _flush(log, redis_url)  # 4 new decisions: the old entries are beyond what is kept
    assert [e.call for e in read_log(redis_client, 10)] == [*calls, *calls]


def test_a_lost_index_starts_again_and_the_stream_stays_bounded(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    scorer = default_set.scorer()
    log = DecisionLog(maxlen=10)
    for _ in range(3):
        calls, decisions = _scored(scorer, 10)
        log.extend(calls, decisions)  # type: ignore[arg-type]
        _flush(log, redis_url)
    redis_client.delete(stream_index(DECISION_LOG))
    log.extend(calls, decisions)  # type: ignore[arg-type]
    _flush(log, redis_url)
    assert redis_client.xlen(DECISION_LOG) == 1
    assert [e.call for e in read_log(redis_client, 100)] == calls


def test_with_redis_down_a_flush_drops_and_counts_and_never_raises(
    redis_server: RedisServer, redis_url: str, default_set: LoadedSet
) -> None:
    calls, decisions = _scored(default_set.scorer(), 3)
    log = DecisionLog(maxlen=1000)
    log.extend(calls, decisions)  # type: ignore[arg-type]
    before = _dropped("redis_down")
    redis_server.stop()
    try:
        assert _flush(log, redis_url) == 0
    finally:
        redis_server.start()
    assert _dropped("redis_down") == before + 3
    assert log.pending() == 0
    log.extend(calls, decisions)  # type: ignore[arg-type]
    assert _flush(log, redis_url) == 3  # recovers by itself


def test_a_full_buffer_drops_the_oldest_and_counts_them(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    calls, decisions = _scored(default_set.scorer(), 8)
    log = DecisionLog(maxlen=1000, buffer=5)
    before = _dropped("buffer_full")
    for c, d in zip(calls, decisions, strict=True):
        log.append(c, d)  # type: ignore[arg-type]
    assert _flush(log, redis_url) == 5
    assert _dropped("buffer_full") == before + 3
    assert [e.call for e in read_log(redis_client, 100)] == calls[3:]


def test_a_log_with_maxlen_zero_collects_nothing(default_set: LoadedSet) -> None:
    calls, decisions = _scored(default_set.scorer(), 2)
    log = DecisionLog(maxlen=0)
    log.extend(calls, decisions)  # type: ignore[arg-type]
    assert (log.enabled, log.pending()) == (False, 0)


def test_read_log_skips_entries_it_cannot_decode(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    redis_client.xadd(DECISION_LOG, {"call": b"not json"})
    calls, decisions = _scored(default_set.scorer(), 1)
    log = DecisionLog(maxlen=1000)
    log.extend(calls, decisions)  # type: ignore[arg-type]
    _flush(log, redis_url)
    assert [e.call for e in read_log(redis_client, 10)] == calls


def test_calls_with_quotes_and_non_ascii_text_come_back_exactly(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    call = Call(type="incident", impact="user", urgency="low", category='naïve "quoted" \\ 日本')
    log = DecisionLog(maxlen=1000)
    log.append(call, default_set.scorer().score(call, NOW))
    assert _flush(log, redis_url) == 1
    assert read_log(redis_client, 1)[0].call == call


def test_more_decisions_than_one_script_call_takes_are_all_written_in_order(
    redis_url: str, redis_client: redis.Redis, default_set: LoadedSet
) -> None:
    calls, decisions = _scored(default_set.scorer(), FLUSH_CHUNK * 2 + 500)
    log = DecisionLog(maxlen=100_000)
    log.extend(calls, decisions)  # type: ignore[arg-type]
    assert _flush(log, redis_url) == len(calls)
    assert [e.call for e in read_log(redis_client, len(calls))] == calls


def test_replay_from_the_log_scores_the_logged_calls_under_both_sets(
    redis_url: str, default_set: LoadedSet, capsys: pytest.CaptureFixture[str]
) -> None:
    scorer = default_set.scorer()
    calls = [
        Call(type="incident", impact="group", urgency="high"),  # P3 -> P2 in 2027.1
        Call(type="incident", impact="organisation", urgency="immediate"),  # P1 in both
        Call(type="change", impact="user", urgency="normal"),  # P4 -> P5
    ]
    log = DecisionLog(maxlen=1000)
    log.extend(calls, [scorer.score(c, NOW) for c in calls])
    _flush(log, redis_url)
    args = ["tables", "replay", "--from-log", redis_url, "--old", f"{TABLES}@2026.1"]
    assert main([*args, "--new", f"{TABLES}@2027.1", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["calls"], report["changed"], report["priority_changed"]) == (3, 2, 2)
    assert report["by_call_type"]["change"]["lowered"] == 1


def test_replay_from_an_unreachable_log_exits_1_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["tables", "replay", "--from-log", url, "--new", str(TABLES)]) == 1
    assert capsys.readouterr().err.startswith(f"error: decision log at {url}: ")


def test_run_ends_when_cancelled_even_if_the_cancel_is_swallowed_inside_a_flush(
    redis_url: str,
) -> None:
    """A cancel that lands inside a Redis command can come out of the client as a plain
    return (its read timeout is itself a cancel); the app's shutdown still waits for this task,
    so ``run`` must end rather than go back to sleep for ever (a test client hung on it)."""

    class SwallowingFlush(DecisionLog):
        in_flush = asyncio.Event()

        async def flush(self, client: redis.asyncio.Redis) -> int:
            self.in_flush.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                return 0  # swallowed, as a client's timeout handling can
            return 0

    async def go() -> None:
        client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=1)
        log = SwallowingFlush(maxlen=10)
        task = asyncio.create_task(log.run(client, interval=0.01))
        try:
            await asyncio.wait_for(log.in_flush.wait(), 60)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=30)
            assert task in done, "the decision log went on after it was cancelled"
        finally:
            task.cancel()
            await client.aclose()

    asyncio.run(go())
