"""Source events answered straight to JSON: :class:`EventPrototype`, one per distinct mapped input.

An event of a source that only scores (``queue = false``) is answered with
``{"source":...,"ticket_id":...,"action":"scored","item_id":null,"decision":{...},"fields":{...}}``
and recorded in the event log, the decision log and the counts. All of it is the same for every
event with the same mapped values under the same table set, except the ticket id, the decision's
three timestamps and the tool's fields that carry them (RT's ``Due``). So each distinct input gets
its answer encoded once, by msgspec from a real :class:`SourceAnswer`, and cut around those; with
it the decision-log row's start and the call's JSON up to ``reported_at``, as
:mod:`service.core.encoded` does for batches. An event then costs a few joins and encoding its
three timestamps; the tool's fields are remembered per second of the targets when the adapter
reads no finer (:attr:`~service.sources.writeback.common.ToolAdapter.to_the_second`).

Why: scoring the event, building the adapter's fields (a date formatted per event), encoding the
answer and, in the log flush, the call and an ``isoformat`` cost about 5 us of the 12 us an RT
event took in the API process against 4 us for all of ``POST /v1/priority`` (bench/http.py holds
the route to 0.85x of that endpoint). Every byte is still msgspec's:
``tests/integration/sources/test_source_fast_path.py`` compares the answers and records with the
fast path on and off, and ``tests/unit/sources/test_event_answers.py`` holds the prototypes to
the plain route's answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from service.core.calls import Call
from service.core.decision import Decision
from service.core.encoded import Times
from service.core.sources import Source
from service.sources.inbound import Action, SourceAnswer
from service.sources.writeback.base import WriteBack, adapter

if TYPE_CHECKING:
    from service.core.scoring import Resolved

__all__ = ["EventPrototype", "times_of"]

_encode = msgspec.json.Encoder().encode


_START = len(b'{"reported_at":"')
"""Where the ``reported_at`` text starts in an encoded :class:`Times`."""

_FIELDS_KEPT = 16
"""Tool fields remembered per prototype: one per second of the clock (only the current one is
asked for again) or per reported time (a ticket's events repeat its own)."""


class EventPrototype:
    """One distinct mapped input of one source under one table set: its answer's bytes, cut.

    Args:
        source: The source (its name and write-back settings are in the answer).
        call: The validated call of the input, without a reported time.
        r: The scorer's resolution of the call (everything in a decision but the times).
        version: The table set's version, copied into the decision.
        table_hash: The table set's content hash, copied into the decision.
    """

    __slots__ = (
        "adapter",
        "call",
        "call_head",
        "call_now",
        "closing",
        "decision",
        "fields",
        "head",
        "log",
        "opening",
        "resolve",
        "resolved",
        "response",
        "settings",
        "table_hash",
        "version",
    )

    def __init__(
        self, source: Source, call: Call, r: Resolved, version: str, table_hash: str
    ) -> None:
        self.call = call
        self.resolved = r
        self.response = r.response
        self.resolve = r.resolve
        self.version = version
        self.table_hash = table_hash
        when = datetime(2000, 1, 1, tzinfo=UTC)
        self.decision: Decision = r.decision(when, when, when, version, table_hash)
        """A real decision of this input (its times are placeholders): what the counts read."""
        # Encoded by msgspec from a real answer, so the bytes cannot drift from the struct.
        whole = _encode(
            SourceAnswer(
                source=source.name,
                ticket_id="",
                action=Action.SCORED,
                item_id=None,
                decision=self.decision,
                fields={},
            )
        )
        ticket = whole.index(b'"ticket_id":""') + len(b'"ticket_id":')
        self.head = whole[:ticket]
        """``{"source":"rt","ticket_id":``."""
        self.opening = whole[ticket + 2 : whole.index(b'"reported_at":')]
        """From after the ticket id to the decision's timestamps."""
        if not whole.endswith(b',"fields":{}}'):  # a field after fields: cut nothing wrongly
            raise ValueError("SourceAnswer no longer ends with its fields")
        self.closing = whole[whole.index(b',"table_version":') : -3]
        """From after the timestamps to ``"fields":``."""
        own = _encode(call)
        # reported_at is the call's last field; inside a string value its quotes are escaped.
        self.call_head = own[: own.rindex(b'"reported_at":') + len(b'"reported_at":')]
        """The call's JSON up to its ``reported_at`` value."""
        self.call_now = self.call_head + b"null}"
        """The call's JSON when it gives no ``reported_at``."""
        self.log = _encode([version, table_hash, r.priority.name, r.team])[:-1] + b","
        """A decision-log row without its time: ``["version","hash","P3","team",``."""
        settings = source.writeback
        self.settings = settings
        self.adapter: WriteBack | None = adapter(settings.adapter) if settings else None
        whole_seconds = not (r.response.microseconds or r.resolve.microseconds)
        self.fields: dict[Any, bytes] | None = (
            {}
            if self.adapter is None
            or (whole_seconds and getattr(self.adapter, "to_the_second", False))
            else None
        )
        """The tool's fields' JSON by the second of the targets (None: made per event)."""

    def fields_json(self, times: bytes, reported: datetime | None, at: datetime) -> bytes:
        """The answer's ``fields`` for targets counted from ``at``, encoded by :func:`times_of`
        as ``times``; ``reported`` is the event's own reported time, None when ``at`` is now
        (UTC: its text to the second keys the memo; a reported time keys it as itself)."""
        cache = self.fields
        key: Any = None
        if cache is not None:
            if self.adapter is None:
                return b"{}"
            key = times[_START : _START + 19] if reported is None else reported
            known = cache.get(key)
            if known is not None:
                return known
        d = self.decision_at(at)
        assert self.adapter is not None and self.settings is not None
        encoded = _encode(self.adapter.answer(d, self.settings, None))
        if cache is not None:
            if len(cache) >= _FIELDS_KEPT:
                cache.clear()
            cache[key] = encoded
        return encoded

    def decision_at(self, at: datetime) -> Decision:
        """The real decision for targets counted from ``at``."""
        return self.resolved.decision(
            at, at + self.response, at + self.resolve, self.version, self.table_hash
        )


def times_of(p: EventPrototype, at: datetime) -> bytes:
    """``{"reported_at":...,"response_by":...,"resolve_by":...}`` of the decision counted from
    ``at``, as msgspec encodes them.

    Raises:
        OverflowError: a target past what a datetime holds (a reported time near year 9999).
    """
    return _encode(Times(at, at + p.response, at + p.resolve))
