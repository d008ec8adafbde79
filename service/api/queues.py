"""What the item and team routes read from app state: the item store and the tables in force.

Read from state rather than injected, like the priority routes (one dependency resolution less
per request); :class:`service.api.dispatch.DispatchPlugin` puts the store there when the app starts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from service.core.base import Base
from service.core.tables import TableSet
from service.dispatch.store import ItemStore
from service.errors import QueueUnavailable
from service.files.store import TableStore

__all__ = ["Problem", "active_tables", "item_store", "problems", "table_store"]


class Problem(Base):
    """A refusal (``application/problem+json``), as service/api/errors.py writes it."""

    status: int
    title: str
    detail: str
    field: str | None = None
    allowed: list[str] | None = None


_WHY = {
    400: "Malformed body or parameter: names the field and the allowed values.",
    404: "No such item or team: names it (and the known teams).",
    409: "The item's state does not allow this (e.g. already cancelled, not held by you).",
    422: "A call field names something the tables do not know: names it and the allowed values.",
    503: "Redis is unreachable or refuses writes (failover, out of memory, storage full), or too "
    "few replicas confirmed the write: retry after the Retry-After header's seconds.",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the refusals a route can answer with."""
    return {
        code: ResponseSpec(
            data_container=Problem, description=_WHY[code], media_type="application/problem+json"
        )
        for code in codes
    }


def item_store(state: State) -> ItemStore:
    """The app's item store; 503 when the service runs without Redis."""
    store: ItemStore | None = state.get("items")
    if store is None:
        raise QueueUnavailable("queues are not configured: set REDIS_URL (or run `usm serve`)")
    return store


def table_store(state: State) -> TableStore:
    tables: TableStore = state.tables
    return tables


def active_tables(state: State) -> TableSet:
    """The table set in force now."""
    return table_store(state).active(datetime.now(UTC)).tables
