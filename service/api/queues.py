"""What the item and team routes read from app state: the item store and the tables in force.

Read from state rather than injected, like the priority routes (one dependency resolution less
per request); :class:`service.api.dispatch.DispatchPlugin` puts the store there when the app starts.
"""

from __future__ import annotations

from datetime import UTC, datetime

from litestar.datastructures import State

from service.core.tables import TableSet
from service.dispatch.store import ItemStore
from service.errors import QueueUnavailable
from service.files.store import TableStore

__all__ = ["active_tables", "item_store", "table_store"]


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
