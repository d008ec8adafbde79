"""ServiceNow (Table API): ``GET /api/now/table/incident?sysparm_query=sys_updated_on>=...``.

The encoded query is
``sys_updated_on>=javascript:gs.dateGenerate('2026-03-02','08:58:00')^ORDERBYsys_id``: an
absolute moment, so the matching records can only grow while the sync pages (a relative
``minutesAgoStart`` would slide between pages and drop records from under the offset), in UTC,
the integration user's time zone (docs/integrations/servicenow.md; ``dateGenerate`` reads the
user's zone). ``sys_id`` never changes, so offset paging (``sysparm_offset``/``sysparm_limit``)
cannot skip a record that another record's update moved. ``[source.writeback.fields] query``
adds an encoded query of your own (``assignment_group.name=Service Desk``); ``table`` is the
table (default ``incident``).

``sysparm_display_value=all`` gives each field as ``{"value": ..., "display_value": ...}``: codes
(impact, urgency, state, ...) are taken as values, references (business service, CI) as display
values, date-times as their UTC value turned into RFC 3339 — the body the business rule in
docs/integrations/servicenow.md posts.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.sources.search.base import Query, ToolSearch, page_guard

__all__ = ["CODES", "DATES", "REFERENCES", "SEARCH", "ServiceNowSearch", "encoded_query"]

CODES = (
    "number",
    "short_description",
    "impact",
    "urgency",
    "priority",
    "state",
    "category",
    "subcategory",
)
"""Fields the business rule sends as their stored value."""
REFERENCES = ("business_service", "cmdb_ci")
"""Fields it sends as their display value."""
DATES = ("opened_at", "sys_updated_on")
"""GlideDateTime fields it sends as RFC 3339 (UTC)."""


def encoded_query(settings: WriteBackSettings, since: datetime) -> str:
    day, time = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S").split(" ")
    query = f"sys_updated_on>=javascript:gs.dateGenerate('{day}','{time}')"
    extra = settings.fields.get("query")
    if extra:
        query = f"{extra}^{query}"
    return f"{query}^ORDERBYsys_id"


def _iso(glide: str) -> str:
    return glide.replace(" ", "T") + "Z" if glide else ""


class ServiceNowSearch(ToolSearch):
    """Table API query, offset paging ordered by sys_id."""

    def found(self, query: Query) -> Iterator[Any]:
        settings = query.settings
        table = settings.fields.get("table", "incident")
        usm = settings.fields.get("usm_priority", "u_usm_priority")
        wanted = ["sys_id", *CODES, *REFERENCES, *DATES, *([usm] if usm else [])]
        url = f"{settings.base_url.rstrip('/')}/api/now/table/{urllib.parse.quote(table, safe='')}"
        offset = 0
        for _ in page_guard():
            params: dict[str, str | int] = {
                "sysparm_query": encoded_query(settings, query.since),
                "sysparm_fields": ",".join(wanted),
                "sysparm_display_value": "all",
                "sysparm_exclude_reference_link": "true",
                "sysparm_limit": query.page_size,
                "sysparm_offset": offset,
            }
            records = query.get(url, params).get("result") or []
            for record in records:
                yield self._payload(table, record, usm)
            offset += len(records)
            if len(records) < query.page_size:
                return

    @staticmethod
    def _payload(table: str, record: dict[str, Any], usm: str) -> dict[str, Any]:
        def value(name: str, key: str = "value") -> Any:
            field = record.get(name)
            return field.get(key) if isinstance(field, dict) else field

        body: dict[str, Any] = {"table": table, "operation": "update", "sys_id": value("sys_id")}
        body.update({name: value(name) for name in CODES})
        body.update({name: value(name, "display_value") for name in REFERENCES})
        body.update({name: _iso(value(name) or "") for name in DATES})
        if usm:
            body[usm] = value(usm)
        return body

    def shows(self, payload: Any, decision: Decision, settings: WriteBackSettings) -> bool:
        usm = settings.fields.get("usm_priority", "u_usm_priority")
        return bool(usm) and payload.get(usm) == decision.priority.name


SEARCH = ServiceNowSearch()
