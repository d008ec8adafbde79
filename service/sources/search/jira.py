"""Jira: a JQL search for issues updated in the last N minutes, paged as the API version pages.

- Cloud (``api = "3"``, the default): ``GET /rest/api/3/search/jql`` answers
  ``{"issues": [...], "nextPageToken": "...", "isLast": false}``; the next page is asked for with
  that token (the older ``/rest/api/3/search`` with ``startAt`` is gone from Cloud).
- Data Center (``api = "2"``): ``GET /rest/api/2/search`` with ``startAt``/``maxResults``
  answers ``{"startAt": 0, "maxResults": 100, "total": 7, "issues": [...]}``.

The JQL is ``updated >= "-<N>m"``: relative minutes mean the same whatever time zone the service
account has (an absolute JQL date is read in the user's zone). ``[source.writeback.fields]
jql`` narrows it (``project = SD``, as the webhook's own JQL filter). Ordered by creation and key,
which never change. Each issue becomes the admin webhook's payload (``jira:issue_updated``).
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.sources.search.base import (
    PAGE_SIZE,
    Fetch,
    SearchFailed,
    api_headers,
    get_json,
    page_guard,
)
from service.sources.writeback.base import HttpRequest, tool_priority

__all__ = ["SEARCH", "JiraSearch", "jql"]


def jql(settings: WriteBackSettings, since: datetime, now: datetime) -> str:
    """``(<filter>) AND updated >= "-<N>m" ORDER BY created ASC, key ASC``."""
    minutes = max(1, math.ceil((now - since).total_seconds() / 60))
    clause = f'updated >= "-{minutes}m"'
    extra = settings.fields.get("jql")
    if extra:
        clause = f"({extra}) AND {clause}"
    return f"{clause} ORDER BY created ASC, key ASC"


class JiraSearch:
    """JQL search; token paging on Cloud, ``startAt`` paging on Data Center."""

    def tickets(
        self,
        fetch: Fetch,
        settings: WriteBackSettings,
        token: str | None,
        since: datetime,
        now: datetime,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Any]:
        headers = api_headers(settings, token)
        api = settings.fields.get("api", "3")
        query = {"jql": jql(settings, since, now), "fields": "*all", "maxResults": page_size}
        base = settings.base_url.rstrip("/")
        cloud = api != "2"
        path = f"{base}/rest/api/{api}/search/jql" if cloud else f"{base}/rest/api/{api}/search"
        page_token: str | None = None
        start = 0
        for _ in page_guard():
            params = dict(query)
            if cloud and page_token:
                params["nextPageToken"] = page_token
            elif not cloud:
                params["startAt"] = start
            url = f"{path}?{urllib.parse.urlencode(params)}"
            found = get_json(fetch, HttpRequest(method="GET", url=url, headers=headers))
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
