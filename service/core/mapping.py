"""Turn a tool's own payload into a :class:`SourceEvent`: a ticket id, a call, a lifecycle step.

Pure: a source mapping and a decoded JSON payload in, an event out; no I/O. Steps, in order:

1. the ticket id (required: without it nothing can be idempotent);
2. the lifecycle: resolved or closed when the state is listed so (then nothing else is read),
   else open (new) or changed;
3. each call field the source reads (call type, impact, urgency, likelihood, proximity, service,
   category): the expression's value, through the value map, else the default;
4. the reported time (RFC 3339).

Every refusal is an :class:`~service.errors.InvalidEvent` naming the tool's field path, the value
and what is mapped, so the person wiring the tool sees what to fix on which side.
"""

from __future__ import annotations

import enum
from datetime import datetime
from functools import lru_cache
from typing import Any

import jmespath
import jmespath.exceptions
import msgspec
from jmespath.visitor import _equals as _jmespath_equals  # type: ignore[attr-defined]

from service.core.base import Base
from service.core.calls import Call
from service.core.sources import READ_FIELDS, Reader, Source
from service.errors import InvalidEvent

__all__ = ["FieldPath", "SourceEvent", "TicketState", "compiled", "map_event", "tool_text"]


class TicketState(enum.StrEnum):
    """Where the ticket is in its life, as the tool says it."""

    OPEN = "open"
    """A new ticket (or one usm has not seen yet)."""
    CHANGED = "changed"
    RESOLVED = "resolved"
    """Solved in the tool: its item is completed."""
    CLOSED = "closed"
    """Ended without a solution (rejected, deleted): its item is cancelled."""


class SourceEvent(Base):
    """What one payload says: which ticket, the call it is now, and its lifecycle step."""

    source: str
    ticket_id: str
    call: Call | None
    """None when the ticket is resolved or closed: its fields no longer matter."""
    state: TicketState
    paths: dict[str, str]
    """Call field -> the tool field path it was read from (to locate scoring errors)."""


class FieldPath:
    """A JMESPath expression made only of field names (``ticket.custom_fields.Impact``).

    Evaluated as a plain walk through dicts, with JMESPath's meaning (a field of anything but an
    object is null): most mappings are such paths, and the general interpreter costs about
    17 us per search, several per event (bench/http.py, the source endpoint).
    """

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    def search(self, value: Any) -> Any:
        for key in self.keys:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value


def _field_keys(node: Any) -> tuple[str, ...] | None:
    if node.get("type") == "field":
        return (str(node["value"]),)
    if node.get("type") == "subexpression":
        keys: tuple[str, ...] = ()
        for child in node.get("children", []):
            more = _field_keys(child)
            if more is None:
                return None
            keys += more
        return keys
    return None


class FieldEquals:
    """``path == 'literal'`` or ``path != 'literal'`` (either side first), a field path against a
    literal: how sources tell a new ticket from a changed one (``event == 'create'``).

    Evaluated as a plain walk and JMESPath's own equality (``jmespath.visitor._equals``: 0 and 1
    never equal false and true); the interpreter spent about 5 % of an RT event's time in
    ``visit_comparator`` (bench/http.py under py-spy).
    """

    __slots__ = ("literal", "negate", "path")

    def __init__(self, path: FieldPath, literal: Any, negate: bool) -> None:
        self.path = path
        self.literal = literal
        self.negate = negate

    def search(self, value: Any) -> bool:
        equal: bool = _jmespath_equals(self.path.search(value), self.literal)
        return not equal if self.negate else equal


def _field_equals(node: Any) -> FieldEquals | None:
    if node.get("type") != "comparator" or node.get("value") not in ("eq", "ne"):
        return None
    left, right = node["children"]
    if left.get("type") == "literal":
        left, right = right, left
    keys = _field_keys(left)
    if not keys or right.get("type") != "literal":
        return None
    return FieldEquals(FieldPath(keys), right["value"], node["value"] == "ne")


@lru_cache(maxsize=2048)
def compiled(expression: str) -> Any:
    """The compiled JMESPath expression (cached: sources are few, events many).

    A plain field path becomes a :class:`FieldPath`, a field path compared with a literal a
    :class:`FieldEquals`; anything else JMESPath's own interpreter.

    Raises:
        jmespath.exceptions.JMESPathError: the expression does not compile.
    """
    parsed = jmespath.compile(expression)
    keys = _field_keys(parsed.parsed)
    if keys:
        return FieldPath(keys)
    return _field_equals(parsed.parsed) or parsed


def tool_text(value: object) -> str | None:
    """A scalar as the value maps spell it: strings as they are, numbers and booleans as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return msgspec.json.encode(value).decode()
    return None


def _search(expression: str, payload: Any) -> Any:
    try:
        return compiled(expression).search(payload)
    except jmespath.exceptions.JMESPathError as exc:
        # e.g. a function applied to a value of the wrong type in this payload
        raise InvalidEvent(expression, f"cannot evaluate the expression: {exc}") from None


def _mapped(field: str, reader: Reader, payload: Any) -> str | int | None:
    path = reader.path
    raw = _search(path, payload) if path is not None else None
    if raw is None or raw in ("", []):
        return reader.default
    text = tool_text(raw)
    where = path or field
    label = field.replace("_", " ")
    if text is None:
        raise InvalidEvent(
            where, f"{label} must be a single value, got {type(raw).__name__}", value=raw
        )
    if reader.map:
        if text in reader.map:
            return reader.map[text]
        raise InvalidEvent(where, f"unknown {label} '{text}'", value=raw, mapped=list(reader.map))
    # No map: the tool already uses our names (or level numbers for the scales).
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    return text


def _reported_at(expression: str, payload: Any) -> datetime | None:
    raw = _search(expression, payload)
    if raw is None or raw == "":
        return None
    try:
        return msgspec.convert(raw, datetime, strict=False)
    except msgspec.ValidationError:
        raise InvalidEvent(
            expression,
            f"reported time '{raw}' is not an RFC 3339 date-time with a timezone",
            value=raw,
        ) from None


def map_event(source: Source, payload: Any) -> SourceEvent:
    """The event ``payload`` (the tool's decoded JSON) describes under ``source``'s mapping.

    Raises:
        InvalidEvent: a field is missing, unmapped or malformed; names the tool's field path,
            the value and the mapped values.
    """
    raw_id = _search(source.ticket_id, payload)
    ticket_id = tool_text(raw_id)
    if ticket_id is None or ticket_id == "":
        raise InvalidEvent(source.ticket_id, "missing ticket id", value=raw_id)
    state = _state(source, payload)
    if state in (TicketState.RESOLVED, TicketState.CLOSED):
        # Ending work must not depend on the ticket's other fields still being mappable.
        return SourceEvent(
            source=source.name, ticket_id=ticket_id, call=None, state=state, paths={}
        )
    fields: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for name in READ_FIELDS:
        reader: Reader | None = getattr(source, name)
        if reader is None:
            continue
        key = "type" if name == "call_type" else name
        paths[key] = reader.path or f"(default of {name})"
        value = _mapped(name, reader, payload)
        if value is not None:
            fields[key] = value
    if "type" not in fields:
        path = source.call_type.path or "call_type"
        raise InvalidEvent(
            path, "missing call type and no default", mapped=list(source.call_type.map)
        )
    if source.reported_at is not None:
        paths["reported_at"] = source.reported_at
        fields["reported_at"] = _reported_at(source.reported_at, payload)
    try:
        call = msgspec.convert(fields, Call)
    except msgspec.ValidationError as exc:
        raise _located(exc, paths) from None
    return SourceEvent(
        source=source.name,
        ticket_id=ticket_id,
        call=call,
        state=state,
        paths=paths,
    )


def _located(exc: msgspec.ValidationError, paths: dict[str, str]) -> InvalidEvent:
    """A Call shape error (say, a value too long) located at the tool field it came from."""
    text = str(exc)
    reason, _, at = text.rpartition(" - at `$.")
    field = at.rstrip("`")
    return InvalidEvent(paths.get(field, field or "(payload)"), reason or text)


def _state(source: Source, payload: Any) -> TicketState:
    life = source.status
    if life is None:
        return TicketState.OPEN
    state = tool_text(_search(life.path, payload))
    if state is not None and state in life.resolved:
        return TicketState.RESOLVED
    if state is not None and state in life.closed:
        return TicketState.CLOSED
    if life.created is not None and not _search(life.created, payload):
        return TicketState.CHANGED
    return TicketState.OPEN
