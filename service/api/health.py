"""Liveness and readiness probes."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import get
from litestar.datastructures import State
from litestar.response import Response

from service.files.store import TableStore

__all__ = ["healthz", "readyz"]


@get("/healthz", tags=["health"], summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@get("/readyz", tags=["health"], summary="Readiness")
async def readyz(state: State) -> Response[dict[str, object]]:
    """Ready when a table set is in force; reports its version and content hash.

    Scoring needs nothing else, so readiness does not wait for Redis: with Redis down the
    service still answers ``/v1/priority``.
    """
    tables: TableStore = state.tables
    active = tables.active(datetime.now(UTC))
    return Response({"status": "ready", "table_version": active.version, "table_hash": active.hash})
