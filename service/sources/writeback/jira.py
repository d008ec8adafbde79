"""Jira Cloud / Data Center: ``PUT /rest/api/3/issue/{key}`` with priority, due date, USM fields.

Jira's "Edit issue" takes ``{"fields": {...}}`` and answers 204; setting a field to the value it
already holds is a no-op, so the request can be repeated. Settings (``[source.writeback.fields]``):

- ``api``: REST API version in the path, ``3`` (Cloud, default) or ``2`` (Data Center);
- ``priority``: the field receiving the tool priority from ``[source.writeback.priority]``, set by
  name (``{"name": "Highest"}``); default the system ``priority`` field; ``""``: not written;
- ``usm_priority``: a text custom field (``customfield_10060``) receiving our priority name;
- ``due``: the date field receiving the resolve-by date (``YYYY-MM-DD``, UTC); default the system
  ``duedate``; ``""``: not written;
- ``resolve_by`` / ``response_by``: date-time custom fields receiving the targets, written as
  Jira writes date-times (``2026-03-02T13:00:00.000+0000``).

Credentials: ``email:api_token`` (Cloud) is basic auth; any other token is a Data Center personal
access token, sent as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.targets import Target
from service.sources.writeback.auth import basic, is_basic
from service.sources.writeback.base import HttpRequest, missed_field, tool_priority

__all__ = ["ADAPTER", "Jira", "jira_datetime"]


def jira_datetime(moment: datetime) -> str:
    """``2026-03-02T13:00:00.000+0000``: the form Jira's REST API reads and writes date-times in."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class Jira:
    """Builds the issue edit for one issue key."""

    carries_missed = True

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """``{"fields": {...}}``: the body of Jira's "Edit issue", ready for an automation rule."""
        options = settings.fields
        fields: dict[str, Any] = {}
        priority_field = options.get("priority", "priority")
        priority = tool_priority(decision, settings)
        if priority_field and priority is not None:
            fields[priority_field] = {"name": priority}
        due = options.get("due", "duedate")
        if due:
            fields[due] = decision.resolve_by.astimezone(UTC).date().isoformat()
        if options.get("usm_priority"):
            fields[options["usm_priority"]] = decision.priority.name
        if options.get("resolve_by"):
            fields[options["resolve_by"]] = jira_datetime(decision.resolve_by)
        if options.get("response_by"):
            fields[options["response_by"]] = jira_datetime(decision.response_by)
        flag = missed_field(settings, missed)
        if flag is not None:
            fields[flag[0]] = flag[1] or None  # Jira clears a text field set to null
        return {"fields": fields}

    def requests(
        self,
        ticket_id: str,
        decision: Decision,
        settings: WriteBackSettings,
        token: str | None,
        missed: tuple[Target, ...] | None = None,
    ) -> list[HttpRequest]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = basic(token) if is_basic(token) else f"Bearer {token}"
        api = settings.fields.get("api", "3")
        url = f"{settings.base_url.rstrip('/')}/rest/api/{api}/issue/{quote(ticket_id, safe='')}"
        body = msgspec.json.encode(self.answer(decision, settings, missed))
        return [HttpRequest(method="PUT", url=url, headers=headers, body=body)]


ADAPTER = Jira()
