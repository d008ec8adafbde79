"""GLPI (legacy REST API): a session, ``GET /apirest.php/search/Ticket`` on the last update, done.

GLPI serves nothing without a session (see the write-back adapter): ``initSession`` with the
user token, the searches with ``Session-Token``, ``killSession`` at the end. The search names
fields by search option id (Ticket: 2 id, 12 status, 10 urgency, 11 impact, 3 priority, 14 type,
7 category, 15 opening date, 19 last update); the criterion is ``19 morethan <since>`` in GLPI's
time zone (UTC, docs/integrations/glpi.md), sorted by id (2), paged with ``range=<start>-<end>``
until ``totalcount`` is reached. Each row becomes the webhook's payload, the ticket as GLPI's
high-level API shows it: ``{"event": "update", "item": {"id": 42, "status": {"id": 2}, ...}}``.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.sources.search.base import Query, SearchFailed, ToolSearch, get_json, page_guard
from service.sources.writeback.base import HttpRequest, tool_priority
from service.sources.writeback.glpi import GlpiSession

__all__ = ["OPTIONS", "SEARCH", "GlpiSearch", "search_params"]

log = logging.getLogger("usm.sources.search.glpi")

OPTIONS = {
    "id": 2,
    "status": 12,
    "urgency": 10,
    "impact": 11,
    "priority": 3,
    "type": 14,
    "category": 7,
    "date": 15,
    "date_mod": 19,
}
"""Ticket search option ids read (GLPI's ``Ticket::rawSearchOptions``)."""


RANGE_PAST_END = b"ERROR_RANGE_EXCEED_TOTAL"
"""GLPI's refusal of a ``range`` starting past the last matching row."""


def _glpi_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: Any) -> Any:
    """``2026-03-02 09:00:00`` (GLPI, UTC) -> ``2026-03-02T09:00:00+00:00``."""
    if isinstance(value, str) and len(value) == 19 and value[10] == " ":
        return value.replace(" ", "T") + "+00:00"
    return value


def search_params(since: datetime, start: int, page_size: int) -> str:
    params: list[tuple[str, str | int]] = [
        ("criteria[0][field]", OPTIONS["date_mod"]),
        ("criteria[0][searchtype]", "morethan"),
        ("criteria[0][value]", _glpi_date(since)),
    ]
    params += [(f"forcedisplay[{i}]", n) for i, n in enumerate(OPTIONS.values())]
    params += [
        ("sort", OPTIONS["id"]),
        ("order", "ASC"),
        ("range", f"{start}-{start + page_size - 1}"),
    ]
    return urllib.parse.urlencode(params)


def webhook_item(row: dict[str, Any]) -> dict[str, Any]:
    """A search row in the webhook's ``item`` form."""

    def get(name: str) -> Any:
        return row.get(str(OPTIONS[name]))

    category = get("category")
    return {
        "id": get("id"),
        "status": {"id": get("status")},
        "urgency": get("urgency"),
        "impact": get("impact"),
        "priority": get("priority"),
        "type": get("type"),
        # The search shows the complete name (``Software > ERP``); the webhook the name.
        "category": {"name": category.rsplit(" > ", 1)[-1]} if isinstance(category, str) else None,
        "date": _iso(get("date")),
        "date_mod": _iso(get("date_mod")),
    }


class GlpiSearch(ToolSearch):
    """Search engine query on the last update, in one session."""

    def headers(self, settings: WriteBackSettings, token: str | None) -> dict[str, str]:
        return {}  # a session's token, not the source's, goes with the searches

    def found(self, query: Query) -> Iterator[Any]:
        fetch = query.fetch
        glpi = GlpiSession(query.settings.base_url, query.token)
        api = glpi.api
        session = get_json(fetch, glpi.login())
        if not isinstance(session, dict) or not session.get("session_token"):
            raise SearchFailed(f"GET {api}/initSession answered no session_token")
        headers = {**glpi.headers(str(session["session_token"])), "Accept": "application/json"}
        try:
            start = 0
            for _ in page_guard():
                url = f"{api}/search/Ticket?{search_params(query.since, start, query.page_size)}"
                try:
                    found = get_json(fetch, HttpRequest(method="GET", url=url, headers=headers))
                except SearchFailed as exc:
                    # Fewer tickets match than a page ago (one went to the trash): GLPI
                    # refuses a range past the end; what was before it has been read.
                    if start and exc.status == 400 and RANGE_PAST_END in exc.answer:
                        return
                    raise
                rows = found.get("data") or []
                for row in rows:
                    yield {"event": "update", "item": webhook_item(row)}
                start += len(rows)
                if not rows or start >= int(found.get("totalcount") or 0):
                    return
        finally:
            try:
                fetch(HttpRequest(method="GET", url=f"{api}/killSession", headers=headers))
            except OSError as exc:  # the search is complete; GLPI expires the session itself
                log.warning("GLPI killSession failed: %s", exc)

    def shows(self, payload: Any, decision: Decision, settings: WriteBackSettings) -> bool:
        field = settings.fields.get("priority", "priority")
        wanted = tool_priority(decision, settings)
        shown = payload["item"].get(field)
        return wanted is not None and shown is not None and str(shown) == wanted


SEARCH = GlpiSearch()
