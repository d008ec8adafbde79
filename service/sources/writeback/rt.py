"""Request Tracker 5 (REST2): ``PUT /REST/2.0/ticket/{id}`` with Priority, Due and custom fields.

RT's REST2 accepts dates on PUT only as ``YYYY-MM-DD HH:MM:SS`` in UTC (an ISO 8601 string with a
``T`` or an offset is silently misread), so targets are written that way. Credentials: a token
``user:password`` is sent as HTTP basic auth, any other token as ``Authorization: token <t>``
(RT's auth tokens).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import msgspec

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.targets import Target
from service.sources.writeback.base import HttpRequest, missed_field, tool_priority

__all__ = ["ADAPTER", "RequestTracker", "rt_date"]

DEFAULT_PRIORITY_FIELD = "USM Priority"


def rt_date(moment: datetime) -> str:
    """``2026-12-24 17:00:00``: the only date form RT's REST2 PUT reads reliably (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def auth_header(token: str) -> str:
    """Basic auth for ``user:password``, else RT's ``token`` scheme."""
    if ":" in token:
        return "Basic " + base64.b64encode(token.encode()).decode()
    return f"token {token}"


class RequestTracker:
    """Builds the REST2 update for one ticket."""

    carries_missed = True

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """REST2's own field names: what the USM scrip applies to the ticket it is running for."""
        fields: dict[str, Any] = {"Due": rt_date(decision.resolve_by)}
        priority = tool_priority(decision, settings)
        if priority is not None:
            fields["Priority"] = int(priority) if priority.lstrip("-").isdigit() else priority
        custom: dict[str, str | None] = {
            settings.fields.get("usm_priority", DEFAULT_PRIORITY_FIELD): decision.priority.name
        }
        if "response_by" in settings.fields:
            custom[settings.fields["response_by"]] = rt_date(decision.response_by)
        flag = missed_field(settings, missed)
        if flag is not None:
            custom[flag[0]] = flag[1] or None  # REST2 deletes a custom field's value on null
        fields["CustomFields"] = custom
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
            headers["Authorization"] = auth_header(token)
        url = f"{settings.base_url.rstrip('/')}/REST/2.0/ticket/{ticket_id}"
        body = msgspec.json.encode(self.answer(decision, settings, missed))
        return [HttpRequest(method="PUT", url=url, headers=headers, body=body)]


ADAPTER = RequestTracker()
