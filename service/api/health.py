"""Liveness and readiness probes."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio.to_thread
import redis
from litestar import get
from litestar.datastructures import State
from litestar.response import Response

from service.files.store import TableStore
from service.settings import Settings

__all__ = ["healthz", "readyz"]


@get("/healthz", tags=["health"], summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


def _redis_up(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False


@get("/readyz", tags=["health"], summary="Readiness")
async def readyz(state: State) -> Response[dict[str, object]]:
    """Ready when a table set is in force; reports its version and content hash.

    Scoring needs nothing else, so by default readiness does not wait for Redis: with Redis down
    the service still answers ``/v1/priority``. Under ``usm serve`` (``ready_needs_redis``) its
    one Redis is part of the service: while Redis does not answer, this is 503.
    """
    tables: TableStore = state.tables
    active = tables.active(datetime.now(UTC))
    body: dict[str, object] = {
        "status": "ready",
        "table_version": active.version,
        "table_hash": active.hash,
    }
    settings: Settings = state.settings
    if settings.ready_needs_redis and settings.redis_url:
        store = state.get("items")
        up = store is not None and await anyio.to_thread.run_sync(_redis_up, store.conn)
        body["redis"] = "up" if up else "down"
        if not up:
            return Response({**body, "status": "not ready"}, status_code=503)
    return Response(body)
