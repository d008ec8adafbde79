"""ServiceNow: ``PATCH /api/now/table/incident/{sys_id}`` (Table API) with the USM fields.

ServiceNow computes an incident's own ``priority`` from impact and urgency (Priority Lookup
Rules), so by default usm writes its decision into fields of its own and leaves ``priority``
alone. Settings (``[source.writeback.fields]``):

- ``table``: the table the records live in, default ``incident``;
- ``usm_priority``: the string field receiving our priority name, default ``u_usm_priority``;
- ``priority``: a field receiving the tool priority from ``[source.writeback.priority]``
  (e.g. ``priority`` when the lookup rules are switched off); default none;
- ``due``: the date-time field receiving the resolve-by target, default ``due_date``; ``""``: none;
- ``response_by``: a date-time field receiving the response target; default none;
- ``missed``: a string field receiving the targets missed (``response, resolve``; ``""``: none).

Date-times go as ``yyyy-MM-dd HH:mm:ss``, the Table API's own form, in UTC: the integration user's
time zone must be UTC (docs/integrations/servicenow.md). Credentials: ``user:password`` is basic
auth, any other token an OAuth bearer token.
"""

from __future__ import annotations

from service.core.sources import WriteBackSettings
from service.sources.writeback.common import ToolAdapter, segment

__all__ = ["ADAPTER", "ServiceNow"]


class ServiceNow(ToolAdapter):
    """Builds the Table API update for one record (its fields, for a business rule to set on
    ``current`` in its transaction, are the event's answer)."""

    method = "PATCH"
    defaults = {"usm_priority": "u_usm_priority", "due": "due_date"}

    def path(self, ticket_id: str, settings: WriteBackSettings) -> str:
        table = settings.fields.get("table", "incident")
        return f"/api/now/table/{segment(table)}/{segment(ticket_id)}"


ADAPTER = ServiceNow()
