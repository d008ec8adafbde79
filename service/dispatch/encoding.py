"""Is the Redis we use set up to keep items compact? A warning when it is not.

Redis keeps a hash as one listpack only while every value is at most ``hash-max-listpack-value``
bytes (``hash-max-ziplist-value`` before Redis 7, still accepted as its alias). An item's job
hash holds values of a few hundred bytes (its packed decision and call, an ended item's record),
so under Redis's default of 64 every item hash becomes a hash table: about 1.5x the bytes per
queued item and 1.6x per finished one (docs/benchmarks.md, "Redis memory per item"). The
embedded Redis of ``usm serve`` and ``deploy/`` set 1024; a Redis run by hand needs it too.
"""

from __future__ import annotations

import logging

import redis

from service.embedded_redis import HASH_MAX_LISTPACK_VALUE

__all__ = ["SETTING", "check_hash_encoding"]

log = logging.getLogger("usm.dispatch")

SETTING = "hash-max-ziplist-value"
"""Read under its old name: Redis 7 answers it as the alias of ``hash-max-listpack-value``,
Redis 6 knows only this one."""


def check_hash_encoding(conn: redis.Redis) -> int | None:
    """The setting's value, after a warning when it is below what items need; None when Redis
    does not let us read it (``CONFIG`` renamed or refused, as some hosted Redis do).

    Raises the Redis errors of a Redis that is away, so the caller can try again later.
    """
    try:
        got = conn.config_get(SETTING)
    except redis.ResponseError as exc:
        log.info(
            "could not read Redis' %s (%s); items need %d", SETTING, exc, HASH_MAX_LISTPACK_VALUE
        )
        return None
    raw = got.get(SETTING)
    if raw is None:
        return None
    value = int(raw)
    if value < HASH_MAX_LISTPACK_VALUE:
        log.warning(
            "Redis has hash-max-listpack-value %d: item hashes are stored as hash tables, about "
            "1.5x the memory per item. Set it to %d (redis.conf `hash-max-listpack-value %d`, or "
            "`CONFIG SET hash-max-listpack-value %d` then `CONFIG REWRITE`); see docs/deploy.md",
            value,
            HASH_MAX_LISTPACK_VALUE,
            HASH_MAX_LISTPACK_VALUE,
            HASH_MAX_LISTPACK_VALUE,
        )
    return value
