"""Request Tracker 5 (REST2): ``GET /REST/2.0/tickets?query=LastUpdated > '...'``, then each ticket.

RT's search answers ids only (``{"items": [{"id": ...}], "page": 1, "pages": 3}``), so every
ticket found is read with ``GET /REST/2.0/ticket/{id}`` and turned into the payload the USM scrip
posts (integrations/rt/initialdata.pm). Ordered by id: a ticket that changes while the sync pages
keeps its place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.sources.search.base import Query, ToolSearch, page_guard
from service.sources.writeback.rt import DEFAULT_PRIORITY_FIELD, rt_date

__all__ = ["SEARCH", "RtSearch", "scrip_payload"]

_UNSET = (None, "", "1970-01-01T00:00:00Z")
"""RT's ways of saying a date is not set."""


def scrip_payload(ticket: dict[str, Any]) -> dict[str, Any]:
    """A REST2 ticket in the shape the USM scrip posts."""
    fields: dict[str, Any] = {}
    for cf in ticket.get("CustomFields") or []:
        values = cf.get("values") or []
        fields[cf.get("name")] = values[0] if len(values) == 1 else (values or None)
    created = ticket.get("Created")
    return {
        "event": "update",
        "ticket": {
            "id": int(ticket["id"]),
            "status": ticket.get("Status"),
            "created": None if created in _UNSET else created,
            "custom_fields": fields,
        },
    }


class RtSearch(ToolSearch):
    """TicketSQL on ``LastUpdated``, paged by page number, ordered by id."""

    def found(self, query: Query) -> Iterator[Any]:
        base = query.settings.base_url.rstrip("/") + "/REST/2.0"
        sql = f"LastUpdated > '{rt_date(query.since)}'"
        for n in page_guard():
            params: dict[str, str | int] = {
                "query": sql,
                "page": n + 1,
                "per_page": query.page_size,
                "orderby": "id",
            }
            found = query.get(f"{base}/tickets", params)
            items = found.get("items") or []
            for entry in items:
                yield scrip_payload(query.get(f"{base}/ticket/{int(entry['id'])}"))
            if not items or n + 1 >= int(found.get("pages") or 1):
                return

    def shows(self, payload: Any, decision: Decision, settings: WriteBackSettings) -> bool:
        field = settings.fields.get("usm_priority", DEFAULT_PRIORITY_FIELD)
        return bool(payload["ticket"]["custom_fields"].get(field) == decision.priority.name)


SEARCH = RtSearch()
