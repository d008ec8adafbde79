"""Request Tracker 5 (REST2): ``PUT /REST/2.0/ticket/{id}`` with Priority, Due and custom fields.

RT's REST2 accepts dates on PUT only as ``YYYY-MM-DD HH:MM:SS`` in UTC (an ISO 8601 string with a
``T`` or an offset is silently misread), so targets are written that way. Credentials: a token
``user:password`` is sent as HTTP basic auth, any other token as ``Authorization: token <t>``
(RT's auth tokens). The custom fields are the ones ``[source.writeback.fields]`` names
(:mod:`~service.sources.writeback.common`): ``usm_priority`` (default ``USM Priority``),
``response_by``, and ``missed`` (the targets missed; ``null`` deletes the value when none is).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.targets import Target
from service.sources.writeback.base import tool_priority
from service.sources.writeback.common import ToolAdapter, number, segment

__all__ = ["ADAPTER", "RequestTracker", "auth_header", "rt_date"]

DEFAULT_PRIORITY_FIELD = "USM Priority"


class RequestTracker(ToolAdapter):
    """Builds the REST2 update for one ticket."""

    api_token = "token {}"
    defaults = {"usm_priority": DEFAULT_PRIORITY_FIELD}
    cleared = None  # REST2 deletes a custom field's value on null

    def path(self, ticket_id: str, settings: WriteBackSettings) -> str:
        return f"/REST/2.0/ticket/{segment(ticket_id)}"

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """REST2's own field names (what the USM scrip applies to the ticket it runs for): Due
        and Priority are the ticket's, the named fields are custom fields."""
        fields: dict[str, Any] = {"Due": self.when(decision.resolve_by)}
        priority = tool_priority(decision, settings)
        if priority is not None:
            fields["Priority"] = number(priority)
        fields["CustomFields"] = self.fields(decision, settings, missed)
        return fields


ADAPTER = RequestTracker()


def rt_date(moment: datetime) -> str:
    """``2026-12-24 17:00:00``: the only date form RT's REST2 PUT reads reliably (UTC)."""
    return ADAPTER.when(moment)


def auth_header(token: str) -> str:
    """Basic auth for ``user:password``, else RT's ``token`` scheme."""
    return ADAPTER.authorization(token)
