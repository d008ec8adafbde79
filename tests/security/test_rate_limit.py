"""Per-key rate limits, counted in the real Redis shared by replicas, in memory while it is down."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aredis
from litestar import Litestar
from litestar.testing import TestClient

from service.security.ratelimit import RETRY_REDIS_AFTER, SYNC_SECONDS, RateLimitStore
from tests.security.conftest import Keys, bearer, keyed_app
from tests.support.redis_server import RedisServer

CALL = {"type": "incident", "impact": "department", "urgency": "high"}


def test_the_request_over_the_limit_gets_429_with_retry_after(keys: Keys, redis_url: str) -> None:
    with TestClient(keyed_app(keys, rate_limit="5/minute", redis_url=redis_url)) as c:
        codes = [c.post("/v1/priority", json=CALL, headers=bearer(keys.score)) for _ in range(6)]
    assert [r.status_code for r in codes] == [200] * 5 + [429]
    assert codes[0].headers["ratelimit-limit"] == "5"
    assert codes[0].headers["ratelimit-remaining"] == "4"
    refused = codes[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.json()["detail"] == (
        "rate limit of 5 requests per minute exceeded for API key 'scorer'"
    )


def test_a_batch_uses_one_unit_of_the_limit_per_call(keys: Keys, redis_url: str) -> None:
    with TestClient(keyed_app(keys, rate_limit="5/minute", redis_url=redis_url)) as c:
        first = c.post("/v1/priority/batch", json={"calls": [CALL] * 3}, headers=bearer(keys.score))
        second = c.post(
            "/v1/priority/batch", json={"calls": [CALL] * 3}, headers=bearer(keys.score)
        )
        single = c.post("/v1/priority", json=CALL, headers=bearer(keys.score))
    assert first.status_code == 200
    assert first.headers["ratelimit-remaining"] == "2"
    assert second.status_code == 429
    assert second.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert second.json()["detail"] == (
        "rate limit of 5 requests per minute exceeded for API key 'scorer': "
        "a batch counts each of its calls (3 here)"
    )
    assert single.status_code == 429


def test_replicas_share_one_count_through_redis(
    keys: Keys, redis_url: str, redis_client: redis.Redis
) -> None:
    a = keyed_app(keys, rate_limit="6/minute", redis_url=redis_url)
    b = keyed_app(keys, rate_limit="6/minute", redis_url=redis_url)
    with TestClient(a) as ca, TestClient(b) as cb:
        first = [ca.post("/v1/priority", json=CALL, headers=bearer(keys.score)) for _ in range(3)]
        second = [cb.post("/v1/priority", json=CALL, headers=bearer(keys.score)) for _ in range(4)]
    assert [r.status_code for r in first + second] == [200] * 6 + [429]
    counters = [k.decode() for k in redis_client.scan_iter("usm:ratelimit:*")]
    assert len(counters) == 1
    assert counters[0].endswith("scorer")
    assert int(redis_client.get(counters[0]) or 0) == 7


def test_each_key_has_its_own_allowance(keys: Keys, redis_url: str) -> None:
    with TestClient(keyed_app(keys, rate_limit="2/minute", redis_url=redis_url)) as c:
        used = [c.post("/v1/priority", json=CALL, headers=bearer(keys.score)) for _ in range(3)]
        other = c.post("/v1/priority", json=CALL, headers=bearer(keys.everything))
    assert [r.status_code for r in used] == [200, 200, 429]
    assert other.status_code == 200


def test_probes_and_refused_keys_do_not_use_up_an_allowance(keys: Keys, redis_url: str) -> None:
    with TestClient(keyed_app(keys, rate_limit="2/minute", redis_url=redis_url)) as c:
        probes = {c.get("/healthz").status_code for _ in range(10)}
        wrong = {c.get("/v1/tables", headers=bearer("usm_wrong")).status_code for _ in range(5)}
        ok = [c.get("/v1/tables", headers=bearer(keys.score)).status_code for _ in range(2)]
    assert (probes, wrong, ok) == ({200}, {401}, [200, 200])


def _clocked(app: Litestar) -> tuple[RateLimitStore, ManualClock]:
    """The app's rate-limit store, now on a clock the test moves by hand."""
    store = app.stores.get("rate_limit")
    assert isinstance(store, RateLimitStore)
    clock = ManualClock()
    store.clock = clock
    return store, clock


def test_with_redis_down_scoring_answers_and_limits_hold_per_process(
    keys: Keys, redis_url: str, redis_server: RedisServer
) -> None:
    app = keyed_app(keys, rate_limit="4/minute", redis_url=redis_url)
    store, clock = _clocked(app)
    with TestClient(app) as c:
        assert c.post("/v1/priority", json=CALL, headers=bearer(keys.score)).status_code == 200
        redis_server.stop()
        try:
            down = [c.post("/v1/priority", json=CALL, headers=bearer(keys.score)) for _ in range(5)]
            counted_in_memory = not store.using_redis
        finally:
            redis_server.start()
        clock.now += RETRY_REDIS_AFTER  # the fallback tries Redis again after this long
        back = c.post("/v1/priority", json=CALL, headers=bearer(keys.everything))
    # The count goes on from the one Redis gave (1 of 4): restarting it at zero in memory let
    # the key run to 5 (and to twice its limit after a burst whose connects timed out).
    assert [r.status_code for r in down] == [200] * 3 + [429] * 2
    assert down[2].headers["ratelimit-remaining"] == "0"
    assert counted_in_memory
    assert back.status_code == 200
    client = redis.Redis.from_url(redis_url)
    counters = {k.decode() for k in client.scan_iter("usm:ratelimit:*")}
    assert "usm:ratelimit:KeyRateLimitMiddleware::root" in counters  # counted in Redis again
    client.close()


def test_far_below_the_limit_hits_are_synced_to_redis_in_bulk_and_none_is_lost(
    keys: Keys, redis_url: str, redis_client: redis.Redis
) -> None:
    app = keyed_app(keys, rate_limit="1000/minute", redis_url=redis_url)
    _, clock = _clocked(app)
    with TestClient(app) as c:
        for _ in range(10):
            assert c.get("/v1/tables", headers=bearer(keys.score)).status_code == 200
        counter = "usm:ratelimit:KeyRateLimitMiddleware::scorer"
        in_redis = int(redis_client.get(counter) or 0)
        clock.now += SYNC_SECONDS + 0.01
        last = c.get("/v1/tables", headers=bearer(keys.score))
    assert in_redis == 1, "only the first hit goes to Redis before the next sync"
    assert int(redis_client.get(counter) or 0) == 11, "a locally counted hit was lost"
    assert last.headers["ratelimit-remaining"] == str(1000 - 11)


class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _store(redis_url: str, clock: ManualClock) -> RateLimitStore:
    # The client's default timeouts, not the service's 0.25 s: on a loaded machine a reply can
    # take longer, and a timeout would move the count to process memory, which is another test.
    return RateLimitStore(aredis.Redis.from_url(redis_url), clock=clock)


def test_concurrent_hits_after_a_sync_pause_add_each_request_once(
    redis_url: str, redis_client: redis.Redis
) -> None:
    clock = ManualClock()
    key, window, limit = "concurrent", 60, 100_000

    async def run() -> list[int]:
        store = _store(redis_url, clock)
        try:
            for _ in range(100):
                await store.hit(key, window, limit)
            clock.now += SYNC_SECONDS + 0.02  # the next hits must sync with Redis
            burst = await asyncio.gather(*(store.hit(key, window, limit) for _ in range(20)))
            return [n for n, _ in burst]
        finally:
            await store.close()

    counts = asyncio.run(run())
    assert int(redis_client.get(f"usm:ratelimit:{key}") or 0) == 120
    assert max(counts) <= 120


def test_a_key_under_its_limit_is_never_refused(redis_url: str, redis_client: redis.Redis) -> None:
    clock = ManualClock()
    key, window, limit = "under", 60, 1000

    async def run() -> list[int]:
        store = _store(redis_url, clock)
        seen: list[int] = []
        try:
            for _ in range(limit // 20):  # bursts of 20 concurrent requests, a sync pause apart
                burst = await asyncio.gather(*(store.hit(key, window, limit) for _ in range(20)))
                seen += [n for n, _ in burst]
                clock.now += SYNC_SECONDS + 0.02
            return seen
        finally:
            await store.close()

    seen = asyncio.run(run())
    assert len(seen) == limit
    assert max(seen) == limit, "a request within the limit was counted past it"
    assert int(redis_client.get(f"usm:ratelimit:{key}") or 0) == limit


def test_hits_counted_while_redis_is_away_reach_redis_once_it_is_back(
    redis_url: str, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    """A key whose first requests find Redis away (a burst's connects timing out on a loaded
    machine): they count in process and go to Redis with the next sync, so the key never gets
    its limit twice (it did: counted in memory, then from zero in Redis)."""
    clock = ManualClock()
    key, window, limit = "away-first", 60, 4

    async def run() -> list[int]:
        store = RateLimitStore.for_url(redis_url, clock=clock)
        seen: list[int] = []
        try:
            redis_server.stop()
            try:
                seen += [(await store.hit(key, window, limit))[0] for _ in range(3)]
            finally:
                redis_server.start()
            clock.now += RETRY_REDIS_AFTER  # the fallback tries Redis again after this long
            seen += [(await store.hit(key, window, limit))[0] for _ in range(2)]
            return seen
        finally:
            await store.close()

    assert asyncio.run(run()) == [1, 2, 3, 4, 5]
    assert int(redis_client.get(f"usm:ratelimit:{key}") or 0) == 5
