"""Zammad: ``PUT /api/v1/tickets/{id}`` with the priority and the USM ticket attributes.

Zammad's priorities are records (``1 low``, ``2 normal``, ``3 high``), set by id
(``priority_id``) or by name (``priority``). Settings (``[source.writeback.fields]``):

- ``priority``: ``priority_id`` (default; the values in ``[source.writeback.priority]`` are ids)
  or ``priority`` (the values are names); ``""``: not written;
- ``usm_priority``: the text ticket attribute receiving our priority name, default
  ``usm_priority`` (docs/integrations/zammad.md adds it in the object manager); ``""``: none;
- ``resolve_by`` / ``response_by``: date-time ticket attributes receiving the targets (RFC 3339,
  UTC); default ``usm_resolve_by`` and none.

Credentials: an access token goes as ``Authorization: Token token=<token>`` (Zammad's API docs,
"Authentication"); ``user:password`` is basic auth.
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

__all__ = ["ADAPTER", "Zammad", "zammad_datetime"]


def zammad_datetime(moment: datetime) -> str:
    """``2026-03-02T13:00:00Z``: RFC 3339 in UTC, as Zammad's API writes date-times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Zammad:
    """Builds the ticket update for one ticket id."""

    carries_missed = True

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """The ticket's attributes, as ``PUT /api/v1/tickets/{id}`` takes them."""
        options = settings.fields
        fields: dict[str, Any] = {}
        priority_field = options.get("priority", "priority_id")
        priority = tool_priority(decision, settings)
        if priority_field and priority is not None:
            by_id = priority_field.endswith("_id") and priority.isdigit()
            fields[priority_field] = int(priority) if by_id else priority
        usm_priority = options.get("usm_priority", "usm_priority")
        if usm_priority:
            fields[usm_priority] = decision.priority.name
        resolve_by = options.get("resolve_by", "usm_resolve_by")
        if resolve_by:
            fields[resolve_by] = zammad_datetime(decision.resolve_by)
        if options.get("response_by"):
            fields[options["response_by"]] = zammad_datetime(decision.response_by)
        flag = missed_field(settings, missed)
        if flag is not None:
            fields[flag[0]] = flag[1]
        return fields

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
            headers["Authorization"] = basic(token) if is_basic(token) else f"Token token={token}"
        url = f"{settings.base_url.rstrip('/')}/api/v1/tickets/{quote(ticket_id, safe='')}"
        body = msgspec.json.encode(self.answer(decision, settings, missed))
        return [HttpRequest(method="PUT", url=url, headers=headers, body=body)]


ADAPTER = Zammad()
