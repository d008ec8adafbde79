"""GLPI (legacy REST API, ``apirest.php``): open a session, update the ticket, close the session.

GLPI's legacy API serves nothing without a session: ``GET /apirest.php/initSession`` with
``Authorization: user_token <token>`` (and ``App-Token`` when the API client has one) answers
``{"session_token": "..."}``; every further call carries it as ``Session-Token``. So one write-back
is three requests, the first capturing ``session_token`` for the next two (see
:class:`~service.sources.writeback.base.HttpRequest`). ``PUT /apirest.php/Ticket/{id}`` takes
``{"input": {...}}``; ``GET /apirest.php/killSession`` ends the session. All three can be
repeated: a retry opens a new session and writes the same values.

Settings (``[source.writeback.fields]``):

- ``priority``: the ticket field receiving the tool priority from ``[source.writeback.priority]``
  (GLPI's 1 very low … 5 very high, 6 major), default ``priority``; ``""``: not written;
- ``due``: the field receiving the resolve-by target, default ``time_to_resolve``; ``""``: none;
- ``response_by``: e.g. ``time_to_own``; default none.

Date-times go as ``YYYY-MM-DD HH:MM:SS``, GLPI's database form, in UTC (set GLPI's time zone to
UTC or convert; docs/integrations/glpi.md). GLPI has no free custom fields without its Fields
plugin, so our priority name is not written. Credentials: ``USM_SOURCE_<NAME>_TOKEN`` is the API
user's token, or ``<app_token>:<user_token>`` when the API client requires an App-Token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.targets import Target
from service.sources.writeback.base import HttpRequest, tool_priority

__all__ = ["ADAPTER", "SESSION", "Glpi", "glpi_datetime"]

SESSION = "session_token"
"""The key of initSession's answer, captured and sent on as ``Session-Token``."""


def glpi_datetime(moment: datetime) -> str:
    """``2026-03-02 13:00:00``: a GLPI datetime field as its API takes it (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class Glpi:
    """Builds initSession, the ticket update and killSession for one ticket id."""

    carries_missed = False
    """GLPI has no free field without its Fields plugin; it marks late tickets itself from
    ``time_to_own`` and ``time_to_resolve``, which usm writes."""

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """The ticket's fields (the ``input`` of GLPI's update)."""
        options = settings.fields
        fields: dict[str, Any] = {}
        priority_field = options.get("priority", "priority")
        priority = tool_priority(decision, settings)
        if priority_field and priority is not None:
            fields[priority_field] = int(priority) if priority.isdigit() else priority
        due = options.get("due", "time_to_resolve")
        if due:
            fields[due] = glpi_datetime(decision.resolve_by)
        if options.get("response_by"):
            fields[options["response_by"]] = glpi_datetime(decision.response_by)
        return fields

    def requests(
        self,
        ticket_id: str,
        decision: Decision,
        settings: WriteBackSettings,
        token: str | None,
        missed: tuple[Target, ...] | None = None,
    ) -> list[HttpRequest]:
        api = f"{settings.base_url.rstrip('/')}/apirest.php"
        app: dict[str, str] = {}
        user_token = token or ""
        if ":" in user_token:
            app_token, user_token = user_token.split(":", 1)
            app = {"App-Token": app_token}
        session = {**app, "Session-Token": "{" + SESSION + "}"}
        body = msgspec.json.encode({"input": self.answer(decision, settings, missed)})
        return [
            HttpRequest(
                method="GET",
                url=f"{api}/initSession",
                headers={**app, "Authorization": f"user_token {user_token}"},
                capture={SESSION: SESSION},
            ),
            HttpRequest(
                method="PUT",
                url=f"{api}/Ticket/{quote(ticket_id, safe='')}",
                headers={**session, "Content-Type": "application/json"},
                body=body,
            ),
            HttpRequest(method="GET", url=f"{api}/killSession", headers=session),
        ]


ADAPTER = Glpi()
