"""Zammad: ``GET /api/v1/tickets/search?query=updated_at:[<since> TO *]&expand=true``.

The search (Elasticsearch's query string; ``[source.writeback.fields] query`` adds a clause of
your own, e.g. ``group.name:"Service Desk"``) is sorted by id and paged with ``page`` and
``per_page``; a page shorter than asked for is the last. ``expand=true`` answers the tickets
themselves, associations by name (``"priority": "3 high"``, ``"state": "new"``); the webhook
payload holds the priority as an object, so it is rebuilt that way:
``{"ticket": {..., "priority": {"id": 3, "name": "3 high"}}}``.

Zammad indexes changes a moment after they happen; the sync's margin covers that.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.sources.search.base import Query, SearchFailed, ToolSearch, page_guard

__all__ = ["ASSOCIATIONS", "SEARCH", "ZammadSearch", "search_query"]

ASSOCIATIONS = ("priority", "group", "organization", "owner", "customer")
"""Associations the webhook sends as ``{"id": ..., "name": ...}`` objects."""


def search_query(settings: WriteBackSettings, since: datetime) -> str:
    moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = f"updated_at:[{moment} TO *]"
    extra = settings.fields.get("query")
    return f"({extra}) AND {query}" if extra else query


def webhook_ticket(ticket: dict[str, Any]) -> dict[str, Any]:
    """An expanded search hit in the webhook's form."""
    shaped = dict(ticket)
    for name in ASSOCIATIONS:
        label = ticket.get(name)
        if isinstance(label, str):
            shaped[name] = {"id": ticket.get(f"{name}_id"), "name": label}
    return shaped


class ZammadSearch(ToolSearch):
    """Ticket search by update time, sorted by id, page-numbered."""

    def found(self, query: Query) -> Iterator[Any]:
        url = f"{query.settings.base_url.rstrip('/')}/api/v1/tickets/search"
        for n in page_guard():
            params: dict[str, str | int] = {
                "query": search_query(query.settings, query.since),
                "expand": "true",
                "sort_by": "id",
                "order_by": "asc",
                "page": n + 1,
                "per_page": query.page_size,
            }
            found = query.get(url, params)
            if not isinstance(found, list):
                raise SearchFailed(f"GET {url} answered no list of tickets (expand=true)")
            for ticket in found:
                yield {"ticket": webhook_ticket(ticket)}
            if len(found) < query.page_size:
                return

    def shows(self, payload: Any, decision: Decision, settings: WriteBackSettings) -> bool:
        usm = settings.fields.get("usm_priority", "usm_priority")
        return bool(usm) and payload["ticket"].get(usm) == decision.priority.name


SEARCH = ZammadSearch()
