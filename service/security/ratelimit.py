"""Per-key rate limits: litestar's ``RateLimitConfig``, counted in Redis, in memory if it is down.

litestar's stock ``RateLimitMiddleware`` keeps a JSON list of every timestamp in the window and
does a GET then a SET under a process-wide lock: two round trips per request, serialised across
all requests of the process, and racy between replicas. The config stays litestar's (limit,
header names, the ``rate_limit`` store name); the counting is :class:`KeyRateLimiter`, called
from the API's one request layer, with an atomic ``INCRBY`` (:data:`HIT_SCRIPT`) per API key
name. A batch counts each of its calls (:func:`charge_calls`).

Even one round trip per request halved the throughput of ``POST /v1/priority`` (bench/security.py),
so a key far below its limit is counted in process and synced to Redis at most every
:data:`SYNC_SECONDS`; once a key's count reaches half its limit, every request is counted in Redis
itself, so the limit is exact where it matters. Replicas can overshoot only by what each counted
locally within one sync interval while the key was below half its limit. A sync hands the
local count to Redis exactly once, however many requests arrive while it is in flight.

Redis down: a key's count goes on in process from the last count Redis gave for its window (from
zero for a key not seen in this window), and what was counted meanwhile goes to Redis with the
key's next sync; Redis is tried again after a second. So limits still hold per process and
scoring keeps answering; no request waits on a dead Redis longer than the connect timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import redis.asyncio as aredis
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import DURATION_VALUES, DurationUnit, RateLimitConfig
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.types import Scope
from redis.exceptions import RedisError

from service.connection import connect_async
from service.dispatch.keys import PREFIX
from service.security.keys import LOCAL, Principal

__all__ = [
    "ALLOWANCE",
    "HIT_SCRIPT",
    "Allowance",
    "KeyRateLimiter",
    "RateLimitStore",
    "charge_calls",
    "parse_rate",
    "rate_limit_config",
]

log = logging.getLogger("usm.security")

NAMESPACE = f"{PREFIX}:ratelimit"
"""Prefix of the counters in Redis."""
RETRY_REDIS_AFTER = 1.0
"""Seconds the fallback is used after a Redis error before Redis is tried again."""

HIT_SCRIPT = """
-- Count requests in a fixed window.
-- KEYS[1]: the counter of one key's current window
-- ARGV[1]: window length in milliseconds
-- ARGV[2]: requests to add (this one and those counted locally since the last sync)
-- Returns {count in window including these requests, milliseconds until the window resets}
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


def parse_rate(text: str) -> tuple[DurationUnit, int] | None:
    """``"600/minute"`` -> ``("minute", 600)``; ``"off"`` or ``"0"`` -> None (no limit)."""
    if text.strip().lower() in ("off", "0", ""):
        return None
    count, _, unit = text.strip().partition("/")
    if unit not in DURATION_VALUES or not count.isdigit() or int(count) < 1:
        raise ValueError(
            f"rate limit {text!r}: expected COUNT/UNIT with UNIT one of "
            f"{', '.join(DURATION_VALUES)}, or 'off'"
        )
    return unit, int(count)  # type: ignore[return-value]


SYNC_SECONDS = 0.1
"""Far from its limit, a key's count goes to Redis at most this often per process."""


@dataclass
class _Shared:
    """One key's window as last seen in Redis, plus the requests counted here since."""

    seen: int
    """The count Redis returned at the last sync."""
    reset_at: float
    """When the window ends (monotonic seconds)."""
    synced_at: float
    pending: int = 0
    """Requests counted locally and not yet added in Redis."""

    @property
    def count(self) -> int:
        return self.seen + self.pending

    def local_ok(self, now: float, limit: int, amount: int = 1) -> bool:
        """May these hits be counted locally? Only well below the limit and within a sync."""
        return (
            now < self.reset_at
            and now - self.synced_at < SYNC_SECONDS
            and 2 * (self.count + amount) < limit
        )


class RateLimitStore(Store):
    """A litestar store on Redis that falls back to process memory while Redis fails."""

    def __init__(
        self, client: aredis.Redis | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.clock = clock
        """Monotonic seconds; tests put a clock they move by hand here."""
        self.redis = RedisStore(client, namespace=NAMESPACE) if client is not None else None
        self.memory = MemoryStore()
        self._counts: dict[str, tuple[int, float]] = {}
        self._shared: dict[str, _Shared] = {}
        self._redis_back_at = 0.0
        self._hit = client.register_script(HIT_SCRIPT) if client is not None else None

    @classmethod
    def for_url(
        cls, url: str | None, clock: Callable[[], float] = time.monotonic
    ) -> RateLimitStore:
        """A store on the Redis at ``url`` with short timeouts and no retries (or memory only)."""
        if not url:
            return cls(None, clock)
        client = connect_async(url, timeout=0.25, health_check_interval=0)
        return cls(client, clock)

    @property
    def using_redis(self) -> bool:
        return self._hit is not None and self.clock() >= self._redis_back_at

    def _redis_failed(self, exc: Exception) -> None:
        if self.clock() >= self._redis_back_at:
            log.warning("rate limits counted in process memory: Redis unavailable (%s)", exc)
        self._redis_back_at = self.clock() + RETRY_REDIS_AFTER

    async def hit(
        self, key: str, window: int, limit: int | None = None, amount: int = 1
    ) -> tuple[int, float]:
        """Count ``amount`` hits (requests or calls) of ``key``: (count so far, seconds to reset).

        With ``limit`` given, hits far from the limit are counted locally and sent to Redis
        with the next sync (see :class:`_Shared`); near the limit every hit goes to Redis.
        """
        if self._hit is not None and self.using_redis:
            now = self.clock()
            shared = self._shared.get(key)
            if shared is not None and limit is not None and shared.local_ok(now, limit, amount):
                shared.pending += amount
                return shared.count, shared.reset_at - now
            pending = amount
            if shared is not None and shared.reset_at > now:
                # Hand the local count to this sync alone: requests that go to Redis while it
                # is in flight must add only themselves, or each re-adds the same pending hits.
                pending += shared.pending
                shared.pending = 0
            try:
                n, ttl_ms = await self._hit(
                    keys=[f"{NAMESPACE}:{key}"], args=[window * 1000, pending]
                )
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
                # This hit and the local ones handed to the failed sync: sent with the next one.
                # Read again: a concurrent sync may have replaced the view while this one waited.
                return self._hit_local(key, window, pending, amount)
            else:
                return self._synced(key, int(n), int(ttl_ms) / 1000, window)
        if self._hit is None:  # no Redis configured: this process's count is the count
            return self._hit_memory(key, window, amount)
        return self._hit_local(key, window, amount, amount)

    def _hit_local(self, key: str, window: int, pending: int, amount: int) -> tuple[int, float]:
        """Redis is away: count on from the key's last view of its window (or a new one).

        Restarting the count at zero let a key run up to twice its limit: a burst of requests
        whose rate-limit connects timed out on a loaded machine fell back mid-window (issue 12
        #11, found through the fast path). The hits counted here go to Redis with its next
        sync.
        """
        now = self.clock()
        shared = self._shared.get(key)
        if shared is None or shared.reset_at <= now:
            # No view of this key's window yet (Redis failed at first contact): start one here.
            # Counted apart, in memory, these hits were forgotten once Redis answered again,
            # and a burst whose first connects timed out ran past the limit.
            shared = self._shared[key] = _Shared(0, now + window, float("-inf"))
            pending = amount
        shared.pending += pending
        return shared.count, shared.reset_at - now

    def _synced(self, key: str, n: int, ttl: float, window: int) -> tuple[int, float]:
        """Take Redis's answer ``n`` into the local view of ``key``'s window."""
        now = self.clock()
        reset_at = now + ttl
        seen = n
        current = self._shared.get(key)
        pending = 0
        if current is not None and current.reset_at > now:
            # Concurrent syncs answer in any order: within one window the count only grows, and
            # hits counted locally since another sync are still to be sent.
            pending = current.pending
            if reset_at < current.reset_at + window / 2:
                seen = max(seen, current.seen)
        self._shared[key] = _Shared(seen, reset_at, now, pending)
        if len(self._shared) > 10_000:  # forget finished windows: memory stays bounded
            self._shared = {k: v for k, v in self._shared.items() if v.reset_at > now}
        return n, ttl

    def _hit_memory(self, key: str, window: int, amount: int = 1) -> tuple[int, float]:
        now = self.clock()
        count, reset_at = self._counts.get(key, (0, 0.0))
        if reset_at <= now:
            count, reset_at = 0, now + window
            if len(self._counts) > 10_000:  # drop finished windows so memory stays bounded
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._counts[key] = (count + amount, reset_at)
        return count + amount, reset_at - now

    def _store(self) -> Store:
        return self.redis if self.redis is not None and self.using_redis else self.memory

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        try:
            await self._store().set(key, value, expires_in)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            await self.memory.set(key, value, expires_in)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        try:
            return await self._store().get(key, renew_for)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return await self.memory.get(key, renew_for)

    async def delete(self, key: str) -> None:
        await self.memory.delete(key)
        self._counts.pop(key, None)
        if self.redis is not None:
            try:
                await self.redis.delete(key)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)

    async def delete_all(self) -> None:
        await self.memory.delete_all()
        self._counts.clear()
        if self.redis is not None:
            await self.redis.delete_all()

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        return await self._store().expires_in(key)

    async def close(self) -> None:
        """Close the Redis connections (app shutdown)."""
        if self.client is not None:
            await self.client.aclose()


ALLOWANCE = "usm.rate_limit"
"""Key in the request's scope state of the caller's :class:`Allowance` (limited requests only)."""


class Allowance:
    """Where a limited request stands: its rate-limit headers, and more calls to charge."""

    __slots__ = ("counter", "limiter", "name", "refused", "remaining", "reset")

    def __init__(
        self, limiter: KeyRateLimiter, counter: str, name: str, remaining: int, reset: int
    ) -> None:
        self.limiter = limiter
        self.counter = counter
        self.name = name
        self.remaining = remaining
        """Requests left in the window; a charge lowers it."""
        self.reset = reset
        """Seconds until the window resets, rounded up."""
        self.refused = False
        """True once a charge raised its 429: that answer carries the headers itself."""

    def headers(self) -> dict[str, str]:
        """The four rate-limit headers (litestar's names, from the config)."""
        limiter = self.limiter
        config = limiter.config
        return {
            config.rate_limit_policy_header_key: limiter.policy,
            config.rate_limit_limit_header_key: str(limiter.max_requests),
            config.rate_limit_remaining_header_key: str(self.remaining),
            config.rate_limit_reset_header_key: str(self.reset),
        }

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """:meth:`headers` as raw ASGI headers, for the answer's ``http.response.start``."""
        names = self.limiter.raw_names
        return [
            (names[0], self.limiter.raw_policy),
            (names[1], self.limiter.raw_limit),
            (names[2], str(self.remaining).encode()),
            (names[3], str(self.reset).encode()),
        ]

    async def charge(self, calls: int) -> None:
        """Count ``calls`` more (a batch's other calls).

        Raises:
            TooManyRequestsException: the key is now over its limit (429 with ``Retry-After``).
        """
        limiter = self.limiter
        limit = limiter.max_requests
        count, reset = await limiter.store.hit(self.counter, limiter.window, limit, calls)
        self.remaining = max(limit - count, 0)
        if count > limit:
            self.refused = True
            retry = str(max(int(reset + 0.999), 1))
            raise TooManyRequestsException(
                f"rate limit of {limit} requests per {limiter.unit} exceeded for API key "
                f"'{self.name}': a batch counts each of its calls ({calls + 1} here)",
                headers={**self.headers(), "Retry-After": retry},
            )


async def charge_calls(request: Any, calls: int) -> None:
    """Count ``calls`` more against the caller's rate limit: one request carrying many calls
    (a batch) uses as much of the limit as that many single requests.

    Raises:
        TooManyRequestsException: the key is now over its limit (429 with ``Retry-After``).
    """
    allowance = request.scope.get("state", {}).get(ALLOWANCE)
    if allowance is not None and calls > 0:
        await allowance.charge(calls)


class KeyRateLimiter:
    """Per-key limit counted with one atomic hit; 429 carries ``Retry-After``.

    Built from litestar's ``RateLimitConfig`` (limit, header names) and the
    :class:`RateLimitStore`; called by the API's one request layer (``service.api.guard``) once
    the key is known. litestar's ``RateLimitMiddleware`` builds a ``Request`` and a
    ``MutableScopeHeaders`` per request, which cost more than the counting itself
    (bench/http.py, cProfile).
    """

    COUNTER = "KeyRateLimitMiddleware"
    """First part of each key's counter name (``usm:ratelimit:KeyRateLimitMiddleware::<name>``),
    the name of the middleware class this once was: counters survive upgrades."""

    def __init__(self, config: RateLimitConfig, store: RateLimitStore) -> None:
        self.config = config
        self.store = store
        self.unit, self.max_requests = config.rate_limit
        self.window = DURATION_VALUES[self.unit]
        self.policy = f"{self.max_requests}; w={self.window}"
        self.raw_policy = self.policy.encode()
        self.raw_limit = str(self.max_requests).encode()
        self.raw_names = tuple(
            name.lower().encode("latin-1")
            for name in (
                config.rate_limit_policy_header_key,
                config.rate_limit_limit_header_key,
                config.rate_limit_remaining_header_key,
                config.rate_limit_reset_header_key,
            )
        )
        self._counters: dict[str, str] = {}

    def limits(self, user: object) -> bool:
        """Whether requests of ``user`` (``scope["user"]``) are limited.

        Only requests made with a real key are: open routes (probes, metrics) never, and the
        keyless loopback mode (LOCAL) is a developer's own machine.
        """
        return isinstance(user, Principal) and user is not LOCAL

    async def admit(self, scope: Scope, user: Principal) -> Allowance | None:
        """Count this request of ``user``; what its answer's rate-limit headers come from
        (None when the config sends none).

        Raises:
            TooManyRequestsException: the key is over its limit (429 with ``Retry-After``).
        """
        counter = self._counters.get(user.name)
        if counter is None:  # one string per key name, not one per request
            counter = self._counters[user.name] = f"{self.COUNTER}::{user.name}"
        count, reset = await self.store.hit(counter, self.window, self.max_requests)
        allowance = Allowance(
            self, counter, user.name, max(self.max_requests - count, 0), max(int(reset + 0.999), 1)
        )
        if count > self.max_requests:
            headers = allowance.headers()
            raise TooManyRequestsException(
                f"rate limit of {self.max_requests} requests per {self.unit} exceeded "
                f"for API key '{user.name}'",
                headers={"Retry-After": str(allowance.reset)} | headers,
            )
        state: dict[str, Any] = cast(dict[str, Any], scope).setdefault("state", {})
        state[ALLOWANCE] = allowance
        return allowance if self.config.set_rate_limit_headers else None


def rate_limit_config(rate: tuple[DurationUnit, int]) -> RateLimitConfig:
    """litestar's config for ``rate`` per key: its limit, header names and store name.

    Who is limited and by which name is :class:`KeyRateLimiter`'s own rule (a real key, by its
    name), so the config's ``identifier_for_request``, ``check_throttle_handler`` and
    ``middleware_class`` are not used.
    """
    return RateLimitConfig(rate_limit=rate, store="rate_limit")
