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

import msgspec

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.targets import Target
from service.sources.writeback.base import HttpRequest
from service.sources.writeback.common import ToolAdapter, number, segment

__all__ = ["ADAPTER", "SESSION", "Glpi", "GlpiSession", "credentials"]

SESSION = "session_token"
"""The key of initSession's answer, captured and sent on as ``Session-Token``."""


def credentials(token: str | None) -> tuple[dict[str, str], str]:
    """``(App-Token header or none, Authorization of initSession)`` of the source's token."""
    user_token = token or ""
    if ":" in user_token:
        app_token, user_token = user_token.split(":", 1)
        return {"App-Token": app_token}, f"user_token {user_token}"
    return {}, f"user_token {user_token}"


class GlpiSession:
    """The legacy API's session: where it lives, how to open it, what later requests carry.

    ``token`` is the API user's token, or ``<app_token>:<user_token>`` when the API client
    requires an App-Token (sent on every request)."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.api = f"{base_url.rstrip('/')}/apirest.php"
        self.app, self.authorization = credentials(token)

    def login(self, **capture: str) -> HttpRequest:
        """``initSession``; its answer's ``session_token`` opens the session."""
        headers = {**self.app, "Authorization": self.authorization}
        return HttpRequest(
            method="GET", url=f"{self.api}/initSession", headers=headers, capture=capture
        )

    def headers(self, session_token: str) -> dict[str, str]:
        """What every request in the session carries."""
        return {**self.app, "Session-Token": session_token}


class Glpi(ToolAdapter):
    """Builds initSession, the ticket update and killSession for one ticket id; the ticket's
    fields (the ``input`` of GLPI's update) are the event's answer."""

    defaults = {"priority": "priority", "due": "time_to_resolve"}
    carries_missed = False
    """GLPI has no free field without its Fields plugin; it marks late tickets itself from
    ``time_to_own`` and ``time_to_resolve``, which usm writes."""

    def priority(self, value: str, field: str) -> int | str:
        return number(value)

    def requests(
        self,
        ticket_id: str,
        decision: Decision,
        settings: WriteBackSettings,
        token: str | None,
        missed: tuple[Target, ...] | None = None,
    ) -> list[HttpRequest]:
        glpi = GlpiSession(settings.base_url, token)
        session = glpi.headers("{" + SESSION + "}")  # filled in from initSession's answer
        body = msgspec.json.encode({"input": self.answer(decision, settings, missed)})
        return [
            glpi.login(**{SESSION: SESSION}),
            HttpRequest(
                method="PUT",
                url=f"{glpi.api}/Ticket/{segment(ticket_id)}",
                headers={**session, "Content-Type": "application/json"},
                body=body,
            ),
            HttpRequest(method="GET", url=f"{glpi.api}/killSession", headers=session, closes=True),
        ]

    def authorization(self, token: str) -> str:
        return credentials(token)[1]


ADAPTER = Glpi()
