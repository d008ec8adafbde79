"""Source mappings (``sources.toml``): how a ticketing tool's own JSON becomes a :class:`Call`.

A source is one connected tool instance (``rt``, ``jira``, ...). Its mapping says, field by
field, where the tool keeps the value (a JMESPath expression over the tool's payload), how the
tool's values translate to ours (value maps), what to assume when a value is absent (defaults),
which tool states end the work, whether new tickets are queued, and which write-back adapter
pushes decisions back (with its non-secret settings). Secrets never live here: signing keys and
API tokens come from the environment or a secrets file (``service/sources/secrets.py``).

Reviewed like every other table file; :func:`source_problems` checks that each expression
compiles and each mapped value exists in the set's levels, call types and services.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from service.core.base import Base, Name, ShortText, Text

__all__ = [
    "ADAPTERS",
    "READ_FIELDS",
    "SIGNATURE_SCHEMES",
    "Lifecycle",
    "Reader",
    "Source",
    "SourcesFile",
    "WriteBackSettings",
]

SIGNATURE_SCHEMES: tuple[str, ...] = (
    "bearer",
    "basic",
    "hmac-sha256",
    "hmac-sha1",
    "glpi",
)
"""Inbound authentication schemes (``service/sources/signatures.py`` implements each):
``bearer`` and ``basic`` for tools that cannot sign (RT, ServiceNow); ``hmac-sha256`` as Jira
admin webhooks send it (``X-Hub-Signature: sha256=<hex>``); ``hmac-sha1`` as Zammad sends it
(``X-Hub-Signature: sha1=<hex>``); ``glpi`` for GLPI's signed webhooks."""

ADAPTERS: tuple[str, ...] = ("rt", "jira", "servicenow", "zammad", "glpi")
"""Write-back adapters (``service/sources/writeback/<name>.py``)."""

Expression = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=500,
        description="JMESPath expression over the tool's payload (https://jmespath.org).",
        examples=["fields.customfield_10004.value"],
    ),
]
"""A JMESPath expression; validation compiles it."""

ToolValue = Annotated[str, msgspec.Meta(max_length=200)]
"""A value as the tool writes it; numbers and booleans are compared as their JSON text."""


class Reader(Base):
    """Where one call field is in the tool's payload and how its values map to ours."""

    path: Expression | None = None
    """JMESPath expression that reads the value; left out: always the default."""
    map: dict[ToolValue, ShortText] = {}
    """Tool value -> our name (level, call type, service). Empty: the tool's value is ours."""
    default: ShortText | None = None
    """Our value when the expression finds nothing (null or missing)."""


class Lifecycle(Base):
    """Which tool states mean the work is resolved or closed, and what a creation looks like."""

    path: Expression
    """JMESPath expression that reads the ticket's state."""
    resolved: list[ToolValue] = []
    """States in which the item is completed."""
    closed: list[ToolValue] = []
    """States in which the item is cancelled (rejected, deleted, ...)."""
    created: Expression | None = None
    """Expression that is true when the event announces a new ticket; left out: an event for
    a ticket usm does not know yet counts as new."""


class WriteBackSettings(Base):
    """The adapter that writes decisions back into the tool, with its non-secret settings."""

    adapter: Name
    """One of :data:`ADAPTERS`."""
    base_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]+$", max_length=2000)]
    """The tool's base URL, e.g. ``https://rt.example.org`` (its API path is the adapter's)."""
    priority: dict[ShortText, ToolValue] = {}
    """Our priority name -> the tool's own priority value (e.g. ``P1 = "90"``)."""
    fields: dict[Name, ShortText] = {}
    """Adapter settings such as the tool's field names (``usm_priority = "USM Priority"``)."""
    timeout: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    """Seconds one write-back request may wait for the tool (connect, send, each read). The
    sender's lease on the ticket lasts this plus 5 s from the request's start and is renewed
    until the request returns, so no other sender writes a newer decision meanwhile."""
    retries: Annotated[int, msgspec.Meta(ge=0, le=50)] = 8
    """Further attempts after a failed one before the write-back is dead-lettered."""
    backoff: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 1.0
    """Seconds before the first retry; doubles on each further retry (capped at 10 minutes)."""
    events: bool = False
    """Also write back the decisions made on the tool's own events. For tools whose webhook
    cannot apply the event's answer (Jira admin webhooks, Zammad, GLPI, an async ServiceNow
    rule); false where the tool applies the answer itself (an RT scrip, a Jira automation)."""


class Source(Base):
    """One connected ticketing tool: its signature scheme, field readers and write-back."""

    name: Name
    """The source's name: ``POST /v1/sources/<name>/events``, and the ``source`` of its items."""
    signature: ShortText
    """Inbound authentication scheme, one of :data:`SIGNATURE_SCHEMES`."""
    ticket_id: Expression
    """JMESPath expression that reads the tool's ticket id (the item's ``external_id``)."""
    call_type: Reader
    description: Text = ""
    impact: Reader | None = None
    urgency: Reader | None = None
    likelihood: Reader | None = None
    """Risks only."""
    proximity: Reader | None = None
    """Risks only."""
    service: Reader | None = None
    category: Reader | None = None
    reported_at: Expression | None = None
    """JMESPath expression that reads when the ticket was reported (RFC 3339)."""
    status: Lifecycle | None = None
    """Ticket states; without it every event is an open or changed ticket."""
    queue: bool = True
    """Queue new tickets for their team; false: only score and write back."""
    writeback: WriteBackSettings | None = None


class SourcesFile(Base):
    """``sources.toml``: the connected tools. Optional: a set without it connects none."""

    source: list[Source] = []


READ_FIELDS: tuple[str, ...] = (
    "call_type",
    "impact",
    "urgency",
    "likelihood",
    "proximity",
    "service",
    "category",
)
"""Call fields a source reads through a :class:`Reader`, in the order they are mapped."""
