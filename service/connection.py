"""How every process reaches Redis: one URL, plain (``redis://``) or through Sentinel.

``REDIS_URL`` takes either form; every process (API, workers, metrics collector, activation
re-score, CLI) builds its clients here, so they all follow a failover the same way::

    redis://[:password@]host:port/db
    redis+sentinel://[:password@]host:port[,host:port...]/service_name[?db=0&sentinel_password=…]

Through Sentinel, each new connection asks the sentinels where the primary is (redis-py's
``Sentinel.master_for``), so after a failover the next connection reaches the new primary and a
``READONLY`` answer from a demoted primary drops the connection: no restart needed.

Clients built here never re-send a command on their own (``retries`` defaults to 0): a Lua script
that timed out may still run when Redis resumes, and running it twice claims a second item or
turns a 201 into a 200 (issue 12, #4). A stale pooled connection is still replaced before use
(redis-py checks a connection for unread data or EOF when it leaves the pool), so no retry is
needed for that. Every command is bounded by ``timeout`` seconds, so a frozen Redis gives a
prompt 503 rather than a hung request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.errors import QueueUnavailable

__all__ = [
    "SENTINEL_SCHEME",
    "SentinelTarget",
    "connect",
    "connect_async",
    "is_sentinel",
    "parse_sentinel_url",
    "redacted",
    "unavailable",
]

log = logging.getLogger("usm.redis")

SENTINEL_SCHEME = "redis+sentinel"
_FORMAT = "redis+sentinel://[:password@]host:port[,host:port...]/service_name[?db=N]"


@dataclass(frozen=True)
class SentinelTarget:
    """A primary found through Sentinel: where the sentinels are and the name they know it by."""

    sentinels: tuple[tuple[str, int], ...]
    """Sentinel addresses, asked in order."""
    service: str
    """The primary's name in the sentinels' configuration (``sentinel monitor <name> …``)."""
    db: int = 0
    """Database number on the primary."""
    username: str | None = None
    """ACL user on the primary and replicas."""
    password: str | None = None
    """Password of the primary and replicas."""
    sentinel_password: str | None = None
    """Password of the sentinels themselves, when they require one."""


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names a primary through Sentinel."""
    return url.startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL.

    Raises:
        ValueError: Not that form; the message shows the expected one.
    """
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a Sentinel URL: expected {_FORMAT}")
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels: list[tuple[str, int]] = []
    for entry in hosts.split(","):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address '{entry}' needs host:port; expected {_FORMAT}")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"the Sentinel URL names no service; expected {_FORMAT}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    db = path[1] if len(path) > 1 else query.get("db", "0")
    if not db.isdigit():
        raise ValueError(f"database '{db}' is not a number; expected {_FORMAT}")
    username = password = None
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    return SentinelTarget(
        sentinels=tuple(sentinels),
        service=unquote(path[0]),
        db=int(db),
        username=username,
        password=password,
        sentinel_password=query.get("sentinel_password"),
    )


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[-1]).geturl()


def _options(timeout: float, connect_timeout: float | None, retries: int) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout if connect_timeout is not None else timeout,
        "retry": Retry(NoBackoff(), retries),
    }


def connect(
    url: str,
    *,
    timeout: float,
    connect_timeout: float | None = None,
    retries: int = 0,
    **options: Any,
) -> redis.Redis:
    """A client for the primary ``url`` names (plain or Sentinel).

    Args:
        url: ``redis://…`` or ``redis+sentinel://…``.
        timeout: Seconds any one command may take (and, by default, a connect).
        connect_timeout: Seconds a TCP connect may take; ``timeout`` when None.
        retries: Re-sends after a connection error or timeout. Keep 0 for clients that run
            the dispatch scripts: a re-sent script may run twice.
        **options: Further ``redis.Redis`` options (``health_check_interval``, …).
    """
    opts = {**_options(timeout, connect_timeout, retries), **options}
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **opts)
    target = parse_sentinel_url(url)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={
            **_options(min(timeout, 1.0), connect_timeout, 0),
            "password": target.sentinel_password,
        },
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service,
        redis_class=redis.Redis,
        db=target.db,
        username=target.username,
        password=target.password,
        **opts,
    )
    return client


def connect_async(
    url: str,
    *,
    timeout: float,
    connect_timeout: float | None = None,
    retries: int = 0,
    **options: Any,
) -> redis.asyncio.Redis:
    """The asyncio twin of :func:`connect` (rate limits, decision log)."""
    from redis.asyncio.retry import Retry as AsyncRetry

    opts: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout if connect_timeout is not None else timeout,
        "retry": AsyncRetry(NoBackoff(), retries),
        **options,
    }
    if not is_sentinel(url):
        return redis.asyncio.Redis.from_url(url, **opts)
    target = parse_sentinel_url(url)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": min(timeout, 1.0),
            "socket_connect_timeout": min(timeout, 1.0),
            "retry": AsyncRetry(NoBackoff(), 0),
            "password": target.sentinel_password,
        },
    )
    aclient: redis.asyncio.Redis = sentinel.master_for(
        target.service,
        redis_class=redis.asyncio.Redis,
        db=target.db,
        username=target.username,
        password=target.password,
        **opts,
    )
    return aclient


_REFUSALS = {
    "READONLY": ("the queue store is failing over to a new primary; retry", 1),
    "MASTERDOWN": ("the queue store is failing over to a new primary; retry", 1),
    "OOM": ("the queue store is out of memory and refuses writes; retry later", 5),
    "MISCONF": ("the queue store cannot persist writes (storage full or failing); retry later", 5),
    "NOREPLICAS": ("not enough queue store replicas are connected to confirm writes; retry", 1),
    "BUSY": ("the queue store is busy; retry", 1),
}
_UNREACHABLE = ("the queue store is unreachable; retry later", 5)
_LOGGED: dict[str, float] = {}


def unavailable(exc: redis.RedisError) -> QueueUnavailable | None:
    """The 503 for a Redis that is unreachable or refuses writes; None for any other error.

    The answer names the kind of trouble only; the Redis text (addresses, ports) goes to the
    log, at most once per kind every 5 s.
    """
    # redis-py strips the error code it maps to a class (OOM, READONLY) and keeps it apart.
    kind = getattr(exc, "status_code", None) or str(exc).split(" ", 1)[0]
    if isinstance(exc, redis.ResponseError) and kind in _REFUSALS:
        detail, retry_after = _REFUSALS[kind]
    elif isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        kind = type(exc).__name__
        failing_over = isinstance(exc, redis.sentinel.MasterNotFoundError) or (
            "previous master" in str(exc)  # redis-py's word for a READONLY through Sentinel
        )
        detail, retry_after = _REFUSALS["READONLY"] if failing_over else _UNREACHABLE
    else:
        return None
    now = time.monotonic()
    if now - _LOGGED.get(kind, -10.0) >= 5.0:
        _LOGGED[kind] = now
        log.warning("redis unavailable (answering 503): %s: %s", type(exc).__name__, exc)
    err = QueueUnavailable(detail)
    err.retry_after = retry_after
    return err
