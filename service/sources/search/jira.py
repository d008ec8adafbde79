"""Jira: a JQL search for issues updated in the last N minutes, paged as the API version pages.

- Cloud (``api = "3"``, the default): ``GET /rest/api/3/search/jql`` answers
  ``{"issues": [...], "nextPageToken": "...", "isLast": false}``; the next page is asked for with
  that token (the older ``/rest/api/3/search`` with ``startAt`` is gone from Cloud).
- Data Center (``api = "2"``): ``GET /rest/api/2/search`` with ``startAt``/``maxResults``
  answers ``{"startAt": 0, "maxResults": 100, "total": 7, "issues": [...]}``.

The JQL is ``updated >= "2026/03/02 09:58"``: an absolute moment, so the set of matching issues
can only grow while the sync pages (a relative ``-12m`` would slide forward between pages and drop
issues from under the paging). Jira reads a JQL date in the searching user's time zone, so the
sync first asks ``GET /rest/api/<api>/myself`` for the service account's ``timeZone`` and writes
the moment in it, floored to the minute. ``[source.writeback.fields] jql`` narrows the search
(``project = SD``, as the webhook's own JQL filter). Ordered by creation and key, which never
change. Each issue becomes the admin webhook's payload (``jira:issue_updated``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.sources.search.base import Query, SearchFailed, ToolSearch, page_guard
from service.sources.writeback.base import tool_priority

__all__ = ["SEARCH", "JiraSearch", "jql", "user_zone"]


def jql(settings: WriteBackSettings, since: datetime, zone: tzinfo) -> str:
    """``(<filter>) AND updated >= "<since in zone>" ORDER BY created ASC, key ASC``."""
    moment = since.astimezone(zone).strftime("%Y/%m/%d %H:%M")  # floored to the minute
    clause = f'updated >= "{moment}"'
    extra = settings.fields.get("jql")
    if extra:
        clause = f"({extra}) AND {clause}"
    return f"{clause} ORDER BY created ASC, key ASC"


def user_zone(me: Any) -> tzinfo:
    """The time zone of ``GET /myself``'s answer (``"timeZone": "Europe/Amsterdam"``); UTC when
    it names none or one this machine does not know."""
    name = me.get("timeZone") if isinstance(me, dict) else None
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


class JiraSearch(ToolSearch):
    """JQL search; token paging on Cloud, ``startAt`` paging on Data Center."""

    def found(self, query: Query) -> Iterator[Any]:
        settings = query.settings
        api = settings.fields.get("api", "3")
        base = settings.base_url.rstrip("/")
        zone = user_zone(query.get(f"{base}/rest/api/{api}/myself"))
        jql_query: dict[str, str | int] = {
            "jql": jql(settings, query.since, zone),
            "fields": "*all",
            "maxResults": query.page_size,
        }
        cloud = api != "2"
        path = f"{base}/rest/api/{api}/search/jql" if cloud else f"{base}/rest/api/{api}/search"
        page_token: str | None = None
        start = 0
        for _ in page_guard():
            params = dict(jql_query)
            if cloud and page_token:
                params["nextPageToken"] = page_token
            elif not cloud:
                params["startAt"] = start
            found = query.get(path, params)
            issues = found.get("issues") or []
            for issue in issues:
                yield {"webhookEvent": "jira:issue_updated", "issue": issue}
            if cloud:
                following = found.get("nextPageToken")
                if found.get("isLast", following is None) or not following:
                    return
                if following == page_token:
                    raise SearchFailed(f"GET {path} handed back the same nextPageToken")
                page_token = following
            else:
                start += len(issues)
                if not issues or start >= int(found.get("total") or 0):
                    return

    def shows(self, payload: Any, decision: Decision, settings: WriteBackSettings) -> bool:
        fields = payload["issue"].get("fields") or {}
        usm = settings.fields.get("usm_priority")
        if usm:
            return bool(fields.get(usm) == decision.priority.name)
        shown = (fields.get(settings.fields.get("priority", "priority")) or {}).get("name")
        return shown is not None and shown == tool_priority(decision, settings)


SEARCH = JiraSearch()
