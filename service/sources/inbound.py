"""What one inbound event does to the ticket's item: queue, re-score, complete, cancel, or nothing.

The HTTP route (``service/api/sources.py``) authenticates and decodes; this module decides, with
the item store and the scorer passed in. Rules, in order:

1. resolved in the tool: its live item is completed; closed: cancelled; no live item: nothing.
   Either way usm remembers that the tool ended the ticket (for rule 5);
2. otherwise the call is scored; a scoring refusal names the tool's field (422);
3. no item yet: queued when the source says so (idempotent on the ticket id, so a retried or
   doubled webhook gives one item), else only scored;
4. an item already: re-scored and moved only when a mapped field changed; otherwise the item's
   current decision is the answer, so a repeated event changes nothing;
5. an ended item, and the tool had ended the ticket: the ticket was re-opened, and a new item
   takes the old one's place (:func:`_reopen`). An item that ended in usm while the ticket
   stayed open in the tool (a worker completed it, someone cancelled it over the API) is not
   re-queued by the ticket's next comment: the event is only scored.

The answer carries the decision and, when the source has a write-back adapter, the same
decision in the tool's own fields, for the tool to apply within the same request.
"""

from __future__ import annotations

import enum
from datetime import datetime
from functools import cache
from typing import Any

import msgspec

from service.core.base import Base
from service.core.calls import Call
from service.core.decision import Decision
from service.core.mapping import SourceEvent, TicketState
from service.core.scoring import Scorer
from service.core.sources import Source
from service.core.targets import Target
from service.dispatch.items import Item, ItemState
from service.dispatch.rescore import rescore_call
from service.dispatch.store import ItemStore
from service.errors import InvalidCall, InvalidEvent
from service.sources import keys
from service.sources.watch import carries_missed, item_missed, watch_targets
from service.sources.writeback.base import WriteBack, adapter

__all__ = ["REOPENED_FROM", "Action", "SourceAnswer", "handle_event"]

REOPENED_FROM = "reopened_from"
"""Payload key of an item made for a re-opened ticket: the id of the item it replaced."""

_ENDED = (ItemState.COMPLETED, ItemState.CANCELLED)


class Action(enum.StrEnum):
    """What the event did."""

    QUEUED = "queued"
    """A new item for the ticket."""
    RESCORED = "rescored"
    """A mapped field changed: new decision (and queue, when priority or team changed)."""
    UNCHANGED = "unchanged"
    """Nothing usm reads changed; the answer is the item's current decision."""
    SCORED = "scored"
    """Scored only: the source does not queue, or the ticket's item ended in usm."""
    REOPENED = "reopened"
    """The tool re-opened a ticket it had resolved or closed: a new item, queued."""
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    IGNORED = "ignored"
    """Resolved or closed, but usm holds no live item for the ticket."""


class SourceAnswer(Base):
    """The answer to an inbound event."""

    source: str
    ticket_id: str
    action: Action
    item_id: str | None = None
    decision: Decision | None = None
    """The ticket's current decision (absent when the ticket ended)."""
    fields: dict[str, Any] = {}
    """The decision in the tool's own fields (the write-back adapter's form), to apply now."""


def _score(scorer: Scorer, event: SourceEvent, call: Call, now: datetime) -> Decision:
    try:
        return scorer.score(call, now)
    except InvalidCall as exc:
        field = exc.field.split(".", 1)[0]
        value = getattr(call, field, None)
        raise InvalidEvent(
            event.paths.get(field, field),
            exc.reason,
            value=value,
            mapped=exc.allowed,
        ) from None


def _answer(
    source: Source,
    event: SourceEvent,
    action: Action,
    item_id: str | None,
    d: Decision | None,
    missed: tuple[Target, ...] | None = None,
) -> SourceAnswer:
    fields: dict[str, Any] = {}
    if d is not None and source.writeback is not None:
        fields = _adapter(source.writeback.adapter).answer(d, source.writeback, missed)
    return SourceAnswer(
        source=source.name,
        ticket_id=event.ticket_id,
        action=action,
        item_id=item_id,
        decision=d,
        fields=fields,
    )


@cache
def _adapter(name: str) -> WriteBack:
    """The adapter, looked up once: ``adapter`` imports its module by name on every call."""
    return adapter(name)


def _changes(old: Call, new: Call) -> dict[str, Any]:
    """Mapped fields whose value differs; a reported time the tool no longer sends is kept."""
    return {
        f: getattr(new, f)
        for f in Call.__struct_fields__
        if getattr(old, f) != getattr(new, f)
        and not (f == "reported_at" and new.reported_at is None)
    }


def handle_event(
    source: Source,
    event: SourceEvent,
    scorer: Scorer,
    store: ItemStore | None,
    now: datetime,
) -> tuple[SourceAnswer, Call | None, int | None]:
    """Apply ``event``; returns the answer, the call when a new decision was made, and the
    revision the answer's item stored that decision at (None: not stored on an item), which
    orders its write-back.

    ``store`` None (no Redis configured) scores only. Raises
    :class:`~service.errors.InvalidEvent` (422) and
    :class:`~service.errors.QueueUnavailable` (503) before anything is written.
    """
    if event.call is None:  # resolved or closed
        item = store.find(source.name, event.ticket_id) if store is not None else None
        if store is not None and item is not None:
            store.conn.set(_ended_key(source, event), event.state.value, ex=_ended_ttl(store))
        if store is None or item is None or item.state in _ENDED:
            answer = _answer(source, event, Action.IGNORED, item.id if item else None, None)
            return answer, None, None
        resolved = event.state is TicketState.RESOLVED
        reason = f"{event.state.value} in {source.name} (ticket {event.ticket_id})"
        store.cancel(item.id, now, reason=reason, completed=resolved)
        action = Action.COMPLETED if resolved else Action.CANCELLED
        return _answer(source, event, action, item.id, None), None, None
    call = event.call
    decision = _score(scorer, event, call, now)
    if store is None or not source.queue:
        # A source that never queues holds no items: no Redis round trip per event.
        return _answer(source, event, Action.SCORED, None, decision), call, None
    item = store.find(source.name, event.ticket_id)
    if item is not None and item.payload and item.payload.get(REOPENED_FROM):
        # Its targets count from the re-opening, whatever creation time the tool sends.
        call = msgspec.structs.replace(call, reported_at=item.call.reported_at)
    if item is None:
        created_item, created = store.enqueue(
            call, decision, source.name, event.ticket_id, {"ticket_id": event.ticket_id}, now
        )
        if not created:  # a concurrent event queued it first
            return (
                _judged(
                    source, event, Action.UNCHANGED, created_item, created_item.decision, store, now
                ),
                None,
                None,
            )
        # A new item has no revision yet: its first stored decision is revision 0.
        return _judged(source, event, Action.QUEUED, created_item, decision, store, now), call, 0
    if item.state in _ENDED:
        if store.conn.get(_ended_key(source, event)) is None:
            return _answer(source, event, Action.SCORED, item.id, decision), call, None
        return _reopen(source, event, scorer, store, item, call, now)
    changes = _changes(item.call, call)
    if not changes:
        return _judged(source, event, Action.UNCHANGED, item, item.decision, store, now), None, None
    decision = rescore_call(scorer, call, item.decision, now)
    what = ", ".join(f"{k}={v!r}" for k, v in changes.items())
    _, _, revision = store.rescore_revised(
        item.id, decision, now, call=call, reason=f"changed in {source.name}: {what}"
    )
    return _judged(source, event, Action.RESCORED, item, decision, store, now), call, revision


def _ended_key(source: Source, event: SourceEvent) -> str:
    return keys.ended_key(keys.ref(source.name, event.ticket_id))


def _ended_ttl(store: ItemStore) -> int:
    """As long as an ended item is kept: once it expired, a re-opened ticket is simply new."""
    return max(store.config.result_ttl, 1)


def _reopen(
    source: Source,
    event: SourceEvent,
    scorer: Scorer,
    store: ItemStore,
    ended: Item,
    call: Call,
    now: datetime,
) -> tuple[SourceAnswer, Call | None, int | None]:
    """A new item for a re-opened ticket, in the ended item's place.

    A new item rather than the old one revived: the old one's completion stays true (counted,
    in its team's finished registry, with its history), and the re-opened work is new work for
    the team, whose targets count from the re-opening (the tool's creation time would make it
    late at once). The new item's history and payload name the old one.
    """
    call = msgspec.structs.replace(call, reported_at=now)
    decision = _score(scorer, event, call, now)
    detail = f"re-opened in {source.name} (ticket {event.ticket_id}); previous item {ended.id}"
    payload = {"ticket_id": event.ticket_id, REOPENED_FROM: ended.id}
    item, created = store.enqueue(
        call, decision, source.name, event.ticket_id, payload, now, replaces=ended.id, detail=detail
    )
    store.conn.delete(_ended_key(source, event))
    if not created:  # a concurrent event re-opened it first
        return _judged(source, event, Action.UNCHANGED, item, item.decision, store, now), None, None
    return _judged(source, event, Action.REOPENED, item, decision, store, now), call, 0


def _judged(
    source: Source,
    event: SourceEvent,
    action: Action,
    item: Item,
    decision: Decision,
    store: ItemStore,
    now: datetime,
) -> SourceAnswer:
    """The answer for a live item: its decision with the targets missed so far; the ticket is
    noted for the target watch, which tells the tool when a target passes later."""
    missed = None
    if carries_missed(source):
        missed = item_missed(item, decision, now)
        watch_targets(store.conn, source, event.ticket_id, decision, now)
    return _answer(source, event, action, item.id, decision, missed)
