"""What an item is: a scored call, the caller's reference and payload, its state and history.

An item is stored as an RQ job hash (``rq:job:<id>``): RQ's own fields keep `rq info` and
rq-dashboard working, the ``usm_*`` fields hold the item. :func:`item_from_hash` turns that hash
(plus the history list) back into an :class:`Item`.
"""

from __future__ import annotations

import enum
import os
import threading
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from service.core.base import Base
from service.core.calls import Call
from service.core.decision import Decision

__all__ = [
    "CURRENT_DECISION",
    "HOLDING_STATES",
    "WAITING_STATES",
    "HistoryEvent",
    "Item",
    "ItemState",
    "Lease",
    "decode_event",
    "encode_event",
    "id_time_ms",
    "item_from_hash",
    "ms_to_datetime",
    "new_item_id",
    "now_ms",
    "pack",
    "pack_parts",
    "pack_record",
    "plain",
    "unpack_call",
    "unpack_decision",
]


class ItemState(enum.StrEnum):
    """Where an item is in its life. The values are stored in Redis and shown in JSON."""

    QUEUED = "queued"
    """Waiting in its team's queue for its priority."""
    STARTED = "started"
    """A worker is running the team's handler on it (leased)."""
    CLAIMED = "claimed"
    """A person of a pull-mode team claimed it over HTTP (leased)."""
    COMPLETED = "completed"
    FAILED = "failed"
    """Reserved for a failed attempt that will be retried in place; today a handler retries
    inside one delivery (webhook back-off) and a failing item goes straight to ``dead``."""
    DEAD = "dead"
    """Failed after its retries: in the dead-letter registry, can be re-queued."""
    CANCELLED = "cancelled"


WAITING_STATES = frozenset({ItemState.QUEUED})
HOLDING_STATES = frozenset({ItemState.STARTED, ItemState.CLAIMED})


class HistoryEvent(Base):
    """One entry of an item's history: a state change or a new decision."""

    at: datetime
    event: str
    """``enqueued``, ``started``, ``completed``, ``rescored``, ``moved``, ``redelivered``, ..."""
    state: ItemState
    detail: str = ""
    holder: str | None = None
    """The lease holder the event concerns (a worker's name, or a claim's holder)."""
    decision: Decision | None = None
    """Set on ``enqueued`` and ``rescored``: the decision made at that moment."""


class _StoredEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """History as stored: ``at`` in epoch milliseconds (Lua scripts write these too)."""

    at: int
    event: str
    state: ItemState
    detail: str = ""
    holder: str | None = None
    decision: Decision | None = None
    current: bool = False
    """Set in a folded record only: this event's decision is the record's own (the entry named
    the item's current decision, :data:`CURRENT_DECISION`), stored once."""


class _Record(msgspec.Struct, array_like=True):
    """An ended item's call, decision and history folded into one value (``usm_record``): one
    deflate stream sees the decisions of the history and the current one, nearly alike."""

    team: str
    priority: str
    source: str
    external_id: str
    deliveries: int
    call: Call
    decision: Decision
    history: list[_StoredEvent]


class Lease(Base):
    """Who holds a started or claimed item, and until when."""

    holder: str
    """A worker's name, or for a claim the claimer's name plus a random tag: complete and
    release must send it back, so a holder whose lease lapsed cannot end someone else's."""
    until: datetime


class Item(Base):
    """A queued call as the API shows it."""

    id: str
    state: ItemState
    team: str
    priority: str
    queue: str
    """RQ queue name the item waits (or waited) in."""
    source: str
    external_id: str
    call: Call
    decision: Decision
    enqueued_at: datetime
    payload: dict[str, Any] | None = None
    deliveries: int = 0
    """How many times it was handed out (more than one after a crash or a release)."""
    lease: Lease | None = None
    error: str | None = None
    history: list[HistoryEvent] = []


_EVENT = msgspec.json.Decoder(_StoredEvent)
_CALL = msgspec.json.Decoder(Call)
_DECISION = msgspec.json.Decoder(Decision)
_PAYLOAD = msgspec.json.Decoder(dict[str, Any] | None)
_ENCODER = msgspec.json.Encoder()

_PACKED = b"\x01"
"""First byte of a packed value (JSON never starts with it). Version 1 = raw deflate with
:data:`_ZDICT`; a new dictionary needs a new mark, as stored items keep the old one."""
_ZDICT = (
    b'{"type":"incident","impact":"organisation","urgency":"immediate","service":"category":'
    b'"reported_at":"2026-11-30T12:00:00Z","likelihood":"proximity":"wish","change","risk",'
    b'"service_request","department","group","user","high","normal","low","P1","P2","P3","P4",'
    b'"P5","critical","planning","proactive","service_desk","infrastructure","application",'
    b'"input":"impact not given","rule":"services.toml: .impact_floor","result":"impact \''
    b'"input":"urgency=\'","rule":"levels.toml: urgency","result":"urgency \'(level 1)"},'
    b'"input":"impact \', urgency \'","rule":"matrix.toml: matrix.","result":"priority P'
    b'"input":"call_type=\', service=\'","rule":"services.toml: .team (no route matched)",'
    b'"result":"team \'"},{"input":"priority P","rule":"levels.toml: P targets",'
    b'"result":"respond within PT15M, resolve within PT4H"}]}'
    b'{"call_type":"incident","workflow":"incident","trigger":"reactive","priority":{"name":'
    b'"P1","level":1,"label":"critical"},"impact":{"name":"department","level":2},"urgency":'
    b'{"name":"immediate","level":1},"team":"infrastructure","reported_at":"2026-11-30T12:'
    b'55.569279Z","response_by":"2026-11-30T12:36:55.569279Z","resolve_by":"2026-11-30T16:'
    b'21:55.569279Z","table_version":"2026.1","table_hash":"sha256:","explanation":[{"input":'
    b'"type=\'incident\'","rule":"call_types.toml: incident","result":"workflow \'incident'
    b'\', reactive"},{"input":'
)
"""Text decisions and calls repeat (field names, rule wording): a preset dictionary lets deflate
refer to it, so even one small decision shrinks to a fraction. Never edit it (see _PACKED)."""


def pack(value: object) -> bytes:
    """``value`` as compact bytes for an opaque hash field: deflated JSON, marked."""
    return _deflate(_ENCODER.encode(value))


def _deflate(body: bytes) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    return _PACKED + deflate.compress(body) + deflate.flush()


def plain(raw: bytes) -> bytes:
    """The JSON of a packed value; plain JSON (items stored before packing) as it is."""
    if raw[:1] != _PACKED:
        return raw
    inflate = zlib.decompressobj(-15, _ZDICT)
    return inflate.decompress(raw[1:]) + inflate.flush()


def unpack_call(raw: bytes) -> Call:
    return _CALL.decode(plain(raw))


def unpack_decision(raw: bytes) -> Decision:
    return _DECISION.decode(plain(raw))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms_to_datetime(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


_last_id_ms = 0
_id_sequence = 0
_id_lock = threading.Lock()


def new_item_id(at_ms: int | None = None) -> str:
    """32 hex digits: 12 of milliseconds, 4 of a sequence, 16 random. Sorting ids sorts them by
    the time they name, and ids one process makes in the same millisecond by creation.

    The time prefix lets queue statistics read the oldest item's age from the head id alone; the
    sequence keeps a moved item's seniority exact among items enqueued in the same millisecond.
    """
    global _last_id_ms, _id_sequence
    ms = now_ms() if at_ms is None else at_ms
    with _id_lock:
        if ms == _last_id_ms and _id_sequence < 0xFFFF:
            _id_sequence += 1
        else:
            _last_id_ms, _id_sequence = ms, 0
        sequence = _id_sequence
    return f"{ms:012x}{sequence:04x}{os.urandom(8).hex()}"


def id_time_ms(item_id: str) -> int:
    """Creation time encoded in an item id (0 if it is not one of ours)."""
    try:
        return int(item_id[:12], 16)
    except ValueError:
        return 0


CURRENT_DECISION = b"="
"""Stands for an entry's packed decision while it is the item's current one (``usm_decision``):
a new item's ``enqueued`` entry, so a waiting item does not hold its decision twice. Scripts
that change ``usm_decision`` first copy the old one into that entry (``keep_first_decision``
in :mod:`service.dispatch.scripts`)."""


def encode_event(
    event: str,
    state: ItemState,
    at_ms: int,
    detail: str = "",
    holder: str | None = None,
    decision: Decision | None = None,
    packed: bytes | None = None,
) -> bytes:
    """One stored history entry: the event's JSON, then (after a newline, which compact JSON
    never holds) its decision packed, or ``packed`` as given (:data:`CURRENT_DECISION`). Lua
    scripts write entries without a decision as JSON and fill in ``state`` of a re-score's JSON
    head, so the head stays JSON."""
    head = _ENCODER.encode(
        _StoredEvent(at=at_ms, event=event, state=state, detail=detail, holder=holder)
    )
    if packed is not None:
        return head + b"\n" + packed
    return head if decision is None else head + b"\n" + pack(decision)


def decode_event(raw: bytes, current: Decision | None = None) -> _StoredEvent:
    """One stored history entry, either form (see :func:`encode_event`); ``current`` is the
    item's decision, which :data:`CURRENT_DECISION` stands for."""
    head, _, packed = raw.partition(b"\n")
    stored = _EVENT.decode(head)
    if packed == CURRENT_DECISION:
        if current is None:
            raise ValueError("a history entry names the current decision; none given")
        stored.decision = current
    elif packed:
        stored.decision = unpack_decision(packed)
    return stored


_RECORD = msgspec.json.Decoder(_Record)


def pack_record(raw: dict[bytes, bytes], history: list[bytes]) -> bytes:
    """The ``usm_record`` of an item stored as ``raw`` (its job hash) and ``history``."""
    return pack_parts(
        team=_text(raw, "usm_team"),
        priority=_text(raw, "usm_priority"),
        source=_text(raw, "usm_source"),
        external_id=_text(raw, "usm_external_id"),
        deliveries=int(_text(raw, "usm_deliveries", "0")),
        call=raw[b"usm_call"],
        decision=raw[b"usm_decision"],
        history=history,
    )


def pack_parts(
    *,
    team: str,
    priority: str,
    source: str,
    external_id: str,
    deliveries: int,
    call: bytes,
    decision: bytes,
    history: Sequence[bytes],
) -> bytes:
    """The ``usm_record`` of an item from its parts as stored (call and decision packed or
    JSON, history entries as :func:`encode_event` writes them).

    The record's JSON is put together from the stored JSON as it is, not decoded and encoded
    again (a worker folds every item it completes: this took 45 us an item, now about 15). An
    entry that names the current decision gets ``"current":true`` instead of a second copy.
    """
    events = []
    for entry in history:
        head, _, packed = entry.partition(b"\n")
        if not packed:
            events.append(head)
        elif packed == CURRENT_DECISION:
            events.append(head[:-1] + b',"current":true}')
        else:
            events.append(head[:-1] + b',"decision":' + plain(packed) + b"}")
    body = b"[%s,%s,%s,%s,%d,%s,%s,[%s]]" % (
        _ENCODER.encode(team),
        _ENCODER.encode(priority),
        _ENCODER.encode(source),
        _ENCODER.encode(external_id),
        deliveries,
        plain(call),
        plain(decision),
        b",".join(events),
    )
    return _deflate(body)


def _text(raw: dict[bytes, bytes], field: str, default: str = "") -> str:
    value = raw.get(field.encode())
    return value.decode() if value is not None else default


def _unfolded(raw: dict[bytes, bytes], history: list[bytes]) -> _Record:
    """The parts a record folds, read from a job hash that is not folded, and its history."""
    current = unpack_decision(raw[b"usm_decision"])
    return _Record(
        team=_text(raw, "usm_team"),
        priority=_text(raw, "usm_priority"),
        source=_text(raw, "usm_source"),
        external_id=_text(raw, "usm_external_id"),
        deliveries=int(_text(raw, "usm_deliveries", "0")),
        call=unpack_call(raw[b"usm_call"]),
        decision=current,
        history=[decode_event(h, current) for h in history],
    )


def item_from_hash(item_id: str, raw: dict[bytes, bytes], history: list[bytes]) -> Item:
    """The :class:`Item` stored in an RQ job hash and its history list (or, for an ended item,
    its ``usm_record``)."""
    folded = raw.get(b"usm_record")
    record = _unfolded(raw, history) if folded is None else _RECORD.decode(plain(folded))
    lease_ms = _text(raw, "usm_lease_ms")
    state = ItemState(_text(raw, "usm_state"))
    lease = None
    if lease_ms and state in HOLDING_STATES:
        lease = Lease(holder=_text(raw, "usm_holder"), until=ms_to_datetime(int(lease_ms)))
    return Item(
        id=item_id,
        state=state,
        team=record.team,
        priority=record.priority,
        queue=_text(raw, "usm_queue"),
        source=record.source,
        external_id=record.external_id,
        call=record.call,
        decision=record.decision,
        payload=_PAYLOAD.decode(raw.get(b"usm_payload", b"null")),
        enqueued_at=ms_to_datetime(id_time_ms(item_id)),
        deliveries=record.deliveries,
        lease=lease,
        error=_text(raw, "usm_error") or None,
        history=[
            HistoryEvent(
                at=ms_to_datetime(e.at),
                event=e.event,
                state=e.state,
                detail=e.detail,
                holder=e.holder,
                decision=record.decision if e.current else e.decision,
            )
            for e in record.history
        ],
    )
