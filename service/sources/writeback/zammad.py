"""Zammad: ``PUT /api/v1/tickets/{id}`` with the priority and the USM ticket attributes.

Zammad's priorities are records (``1 low``, ``2 normal``, ``3 high``), set by id
(``priority_id``) or by name (``priority``). Settings (``[source.writeback.fields]``):

- ``priority``: ``priority_id`` (default; the values in ``[source.writeback.priority]`` are ids)
  or ``priority`` (the values are names); ``""``: not written;
- ``usm_priority``: the text ticket attribute receiving our priority name, default
  ``usm_priority`` (docs/integrations/zammad.md adds it in the object manager); ``""``: none;
- ``resolve_by`` / ``response_by``: date-time ticket attributes receiving the targets (RFC 3339,
  UTC); default ``usm_resolve_by`` and none;
- ``missed``: a text ticket attribute receiving the targets missed (``response, resolve``;
  ``""``: none); default none.

Credentials: an access token goes as ``Authorization: Token token=<token>`` (Zammad's API docs,
"Authentication"); ``user:password`` is basic auth.
"""

from __future__ import annotations

from service.core.sources import WriteBackSettings
from service.sources.writeback.common import ToolAdapter, number, segment

__all__ = ["ADAPTER", "Zammad"]


class Zammad(ToolAdapter):
    """Builds the ticket update for one ticket id."""

    moment = "%Y-%m-%dT%H:%M:%SZ"
    api_token = "Token token={}"
    defaults = {
        "priority": "priority_id",
        "usm_priority": "usm_priority",
        "resolve_by": "usm_resolve_by",
    }

    def path(self, ticket_id: str, settings: WriteBackSettings) -> str:
        return f"/api/v1/tickets/{segment(ticket_id)}"

    def priority(self, value: str, field: str) -> int | str:
        """An id for ``priority_id``, a name (``3 high``) for ``priority``."""
        return number(value) if field.endswith("_id") else value


ADAPTER = Zammad()
