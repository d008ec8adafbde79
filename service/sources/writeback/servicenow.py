"""ServiceNow: ``PATCH /api/now/table/incident/{sys_id}`` (Table API) with the USM fields.

ServiceNow computes an incident's own ``priority`` from impact and urgency (Priority Lookup
Rules), so by default usm writes its decision into fields of its own and leaves ``priority``
alone. Settings (``[source.writeback.fields]``):

- ``table``: the table the records live in, default ``incident``;
- ``usm_priority``: the string field receiving our priority name, default ``u_usm_priority``;
- ``priority``: a field receiving the tool priority from ``[source.writeback.priority]``
  (e.g. ``priority`` when the lookup rules are switched off); default none;
- ``due``: the date-time field receiving the resolve-by target, default ``due_date``; ``""``: none;
- ``response_by``: a date-time field receiving the response target; default none.

Date-times go as ``yyyy-MM-dd HH:mm:ss``, the Table API's own form, in UTC: the integration user's
time zone must be UTC (docs/integrations/servicenow.md). Credentials: ``user:password`` is basic
auth, any other token an OAuth bearer token.
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

__all__ = ["ADAPTER", "ServiceNow", "glide_datetime"]


def glide_datetime(moment: datetime) -> str:
    """``2026-03-02 13:00:00``: a GlideDateTime value as the Table API reads it (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class ServiceNow:
    """Builds the Table API update for one record."""

    carries_missed = True

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """The record's fields, for a business rule to set on ``current`` in its transaction."""
        options = settings.fields
        usm_priority = options.get("usm_priority", "u_usm_priority")
        fields: dict[str, Any] = {usm_priority: decision.priority.name}
        priority = tool_priority(decision, settings)
        if options.get("priority") and priority is not None:
            fields[options["priority"]] = priority
        due = options.get("due", "due_date")
        if due:
            fields[due] = glide_datetime(decision.resolve_by)
        if options.get("response_by"):
            fields[options["response_by"]] = glide_datetime(decision.response_by)
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
            headers["Authorization"] = basic(token) if is_basic(token) else f"Bearer {token}"
        table = settings.fields.get("table", "incident")
        url = (
            f"{settings.base_url.rstrip('/')}/api/now/table/{quote(table, safe='')}/"
            f"{quote(ticket_id, safe='')}"
        )
        body = msgspec.json.encode(self.answer(decision, settings, missed))
        return [HttpRequest(method="PATCH", url=url, headers=headers, body=body)]


ADAPTER = ServiceNow()
