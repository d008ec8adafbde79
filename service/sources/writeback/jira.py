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
  Jira writes date-times (``2026-03-02T13:00:00.000+0000``);
- ``missed``: a text custom field receiving the targets missed (``response, resolve``), set to
  ``null`` (cleared) when none is.

Credentials: ``email:api_token`` (Cloud) is basic auth; any other token is a Data Center personal
access token, sent as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.targets import Target
from service.sources.writeback.common import ToolAdapter, segment

__all__ = ["ADAPTER", "Jira"]


class Jira(ToolAdapter):
    """Builds the issue edit for one issue key."""

    moment = "%Y-%m-%dT%H:%M:%S.000+0000"
    defaults = {"priority": "priority", "due": "duedate"}
    cleared = None  # Jira clears a text field set to null

    def path(self, ticket_id: str, settings: WriteBackSettings) -> str:
        return f"/rest/api/{settings.fields.get('api', '3')}/issue/{segment(ticket_id)}"

    def due(self, moment: datetime) -> str:
        return moment.astimezone(UTC).date().isoformat()

    def priority(self, value: str, field: str) -> dict[str, str]:
        return {"name": value}

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """``{"fields": {...}}``: the body of Jira's "Edit issue", ready for an automation rule."""
        return {"fields": self.fields(decision, settings, missed)}


ADAPTER = Jira()
