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
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import jmespath.exceptions
import msgspec

from service.core.base import Base
from service.core.calls import Call
from service.core.expressions import FieldPath, compiled, is_plain
from service.core.sources import READ_FIELDS, Reader, Source
from service.errors import InvalidEvent

__all__ = [
    "FieldPath",
    "SourceEvent",
    "SourceMapper",
    "TicketState",
    "compiled",
    "map_event",
    "mapper",
    "reported_time",
    "searcher",
    "tool_text",
]


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


def tool_text(value: object) -> str | None:
    """A scalar as the value maps spell it: strings as they are, numbers and booleans as JSON."""
    if isinstance(value, str):
        return value
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:
        return str(value)  # the JSON text of an int that size, without the encoder's round trip
    if isinstance(value, bool | int | float):
        return msgspec.json.encode(value).decode()
    return None


_INT64 = (-(2**63), 2**64 - 1)


def _search(expression: str, payload: Any) -> Any:
    try:
        return compiled(expression).search(payload)
    except jmespath.exceptions.JMESPathError as exc:
        # e.g. a function applied to a value of the wrong type in this payload
        raise InvalidEvent(expression, f"cannot evaluate the expression: {exc}") from None


def searcher(expression: str) -> Callable[[Any], Any]:
    """The search of ``expression``; one the library interprets refuses like :func:`_search`
    (an :class:`InvalidEvent` naming the expression)."""
    found = compiled(expression)
    if is_plain(found):
        search: Callable[[Any], Any] = found.search
        return search
    return partial(_search, expression)


class _Field:
    """One call field's reader, compiled: where it is read, how its values map, its default."""

    __slots__ = ("default", "key", "keys", "label", "map", "search", "where")

    def __init__(self, name: str, reader: Reader) -> None:
        self.key = "type" if name == "call_type" else name
        self.search = searcher(reader.path) if reader.path is not None else None
        found = compiled(reader.path) if reader.path is not None else None
        self.keys = found.keys if isinstance(found, FieldPath) else None
        """A plain field path's keys: :meth:`SourceMapper.map` walks them itself."""
        self.map = reader.map
        self.default = reader.default
        self.where = reader.path or name
        self.label = name.replace("_", " ")

    def value(self, payload: Any) -> str | int | None:
        return self.value_of(self.search(payload) if self.search is not None else None)

    def value_of(self, raw: Any) -> str | int | None:
        """Our value for what the expression found: mapped, passed on, or the default."""
        if raw is None or raw in ("", []):
            return self.default
        text = tool_text(raw)
        if text is None:
            raise InvalidEvent(
                self.where,
                f"{self.label} must be a single value, got {type(raw).__name__}",
                value=raw,
            )
        if self.map:
            ours = self.map.get(text)
            if ours is not None:
                return ours
            raise InvalidEvent(
                self.where, f"unknown {self.label} '{text}'", value=raw, mapped=list(self.map)
            )
        # No map: the tool already uses our names (or level numbers for the scales).
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        return text


class SourceMapper:
    """One source's mapping compiled for its events: each expression and value map looked up
    once, the field paths that locate errors written once. Holds nothing that changes an
    answer: it is built from the frozen :class:`Source` alone (:func:`mapper`).
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self._ticket = searcher(source.ticket_id)
        life = source.status
        self._state = searcher(life.path) if life is not None else None
        self._resolved = frozenset(life.resolved) if life is not None else frozenset()
        self._closed = frozenset(life.closed) if life is not None else frozenset()
        self._created = searcher(life.created) if life is not None and life.created else None
        self.fields: list[_Field] = []
        """The call fields' readers, in :data:`READ_FIELDS` order."""
        self._paths: dict[str, str] = {}
        for name in READ_FIELDS:
            reader: Reader | None = getattr(source, name)
            if reader is not None:
                field = _Field(name, reader)
                self.fields.append(field)
                self._paths[field.key] = reader.path or f"(default of {name})"
        self._reported: tuple[str, Callable[[Any], Any]] | None = None
        if source.reported_at is not None:
            self._reported = (source.reported_at, searcher(source.reported_at))
            self._paths["reported_at"] = source.reported_at
        self._calls: dict[tuple[str | int | None, ...], Call] = {}

    def map(self, payload: Any) -> SourceEvent:
        """See :func:`map_event`."""
        source = self.source
        raw_id = self._ticket(payload)
        ticket_id = raw_id if type(raw_id) is str else tool_text(raw_id)
        if ticket_id is None or ticket_id == "":
            raise InvalidEvent(source.ticket_id, "missing ticket id", value=raw_id)
        state = self._lifecycle(payload)
        if state is TicketState.RESOLVED or state is TicketState.CLOSED:
            # Ending work must not depend on the ticket's other fields still being mappable.
            return SourceEvent(
                source=source.name, ticket_id=ticket_id, call=None, state=state, paths={}
            )
        fields: dict[str, Any] = {}
        values: list[str | int | None] = []  # in field order: the key of a known combination
        for field in self.fields:
            keys = field.keys
            if keys is None:
                value = field.value(payload)
            else:
                # The common case inline (a plain path to a non-empty string): a call per
                # field and step showed in the event's cost; anything else takes value_of.
                raw = payload
                try:
                    for key in keys:
                        raw = raw.get(key)
                except AttributeError:
                    raw = None
                value = None
                if type(raw) is str and raw:
                    value = field.map.get(raw) if field.map else raw
                if value is None:
                    value = field.value_of(raw)
            values.append(value)
            if value is not None:
                fields[field.key] = value
        if "type" not in fields:
            path = source.call_type.path or "call_type"
            raise InvalidEvent(
                path, "missing call type and no default", mapped=list(source.call_type.map)
            )
        paths = dict(self._paths)  # the event's own: a caller may keep or change it
        reported = (
            reported_time(self._reported[0], self._reported[1](payload))
            if self._reported is not None
            else None
        )
        call = self._call(tuple(values), fields, reported, paths)
        return SourceEvent(
            source=source.name, ticket_id=ticket_id, call=call, state=state, paths=paths
        )

    def _call(
        self,
        key: tuple[str | int | None, ...],
        fields: dict[str, Any],
        reported: datetime | None,
        paths: dict[str, str],
    ) -> Call:
        """The validated call of ``fields`` (``key``: their values in field order, None where
        absent; str and int only, bools and floats become text). Tickets repeat the same few
        combinations of mapped values, so a combination validated once is remembered (without
        its reported time, which differs per ticket and is checked here: the only rule on it is
        a timezone)."""
        known = self._calls.get(key)
        if known is not None and (reported is None or reported.tzinfo is not None):
            return (
                known if reported is None else msgspec.structs.replace(known, reported_at=reported)
            )
        if self._reported is not None:
            fields["reported_at"] = reported
        try:
            call = msgspec.convert(fields, Call)
        except msgspec.ValidationError as exc:
            raise _located(exc, paths) from None
        if len(self._calls) >= _CALLS_KEPT:
            self._calls.clear()
        self._calls[key] = (
            call if reported is None else msgspec.structs.replace(call, reported_at=None)
        )
        return call

    def _lifecycle(self, payload: Any) -> TicketState:
        if self._state is None:
            return TicketState.OPEN
        found = self._state(payload)
        state = found if type(found) is str else tool_text(found)
        if state is not None and state in self._resolved:
            return TicketState.RESOLVED
        if state is not None and state in self._closed:
            return TicketState.CLOSED
        if self._created is not None and not self._created(payload):
            return TicketState.CHANGED
        return TicketState.OPEN


def reported_time(expression: str, raw: Any) -> datetime | None:
    """The reported time ``raw`` (what ``expression`` found) names; None when it is absent.

    Raises:
        InvalidEvent: not an RFC 3339 date-time.
    """
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


_CALLS_KEPT = 4096
"""Validated combinations of mapped values remembered per source."""

_MAPPERS: dict[int, SourceMapper] = {}
_MAPPERS_LIMIT = 256
"""Sources are a few per table set and sets few per process; a reload makes new ones."""


def mapper(source: Source) -> SourceMapper:
    """The compiled mapping of ``source``, built once per source object.

    Keyed by identity, and the mapper keeps its source alive, so an id is never reused for
    another source while its entry lives; the cache is cleared when it outgrows a process's
    few table sets (reloads make new source objects).
    """
    found = _MAPPERS.get(id(source))
    if found is None or found.source is not source:
        if len(_MAPPERS) >= _MAPPERS_LIMIT:
            _MAPPERS.clear()
        found = _MAPPERS[id(source)] = SourceMapper(source)
    return found


def map_event(source: Source, payload: Any) -> SourceEvent:
    """The event ``payload`` (the tool's decoded JSON) describes under ``source``'s mapping.

    Raises:
        InvalidEvent: a field is missing, unmapped or malformed; names the tool's field path,
            the value and the mapped values.
    """
    return mapper(source).map(payload)


def _located(exc: msgspec.ValidationError, paths: dict[str, str]) -> InvalidEvent:
    """A Call shape error (say, a value too long) located at the tool field it came from."""
    text = str(exc)
    reason, _, at = text.rpartition(" - at `$.")
    field = at.rstrip("`")
    return InvalidEvent(paths.get(field, field or "(payload)"), reason or text)
