"""Items in Redis: enqueue (idempotent), read, re-score and move, cancel, re-queue, list.

Every write is one Lua call (see :mod:`service.dispatch.scripts`). Redis errors surface as
:class:`~service.errors.QueueUnavailable` so the API answers 503 with Retry-After.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import msgspec
import redis

from service.connection import unavailable
from service.core.calls import Call
from service.core.decision import Decision
from service.core.tables import TableSet
from service.dispatch import keys
from service.dispatch.archive import fold
from service.dispatch.config import DispatchConfig
from service.dispatch.items import (
    CURRENT_DECISION,
    HistoryEvent,
    Item,
    ItemState,
    encode_event,
    item_from_hash,
    ms_to_datetime,
    new_item_id,
    pack,
)
from service.dispatch.leases import rq_time
from service.dispatch.scripts import scripts_for
from service.dispatch.wire import Wire, bulk, bulks
from service.errors import InvalidCall, ItemConflict, NotFound
from service.metrics.instruments import ItemEvent, record

__all__ = ["TASK", "Change", "ItemStore", "StaleItem", "hand_out_order", "redis_errors"]

TASK = "worker.tasks.handle_item"
"""The RQ job function recorded in each item, so plain RQ tooling shows what the job does."""

_ID = re.compile(r"^[0-9a-f]{32}$")
_STATE_PLACEHOLDER: Any = "@STATE@"
_ENC = msgspec.json.Encoder()
_CHANGE_ATTEMPTS = 50
"""Compare-and-set rounds :meth:`ItemStore.change` tries before answering 409. Each lost round
means another writer landed a change to the same item in between; 50 in a row is not contention
a ticketing tool produces, so the caller is told to retry instead of being spun on forever."""


class StaleItem(Exception):
    """The item changed between reading it and writing a decision made from that read."""


Change = Callable[[Item], tuple[Decision, Call | None, str]]
"""Given the item as stored now: the new decision, the new call (None keeps it), the reason."""


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis being unreachable or refusing writes (``READONLY``, ``OOM``, ``MISCONF``,
    ``NOREPLICAS``) into :class:`QueueUnavailable` (503 + Retry-After, no internals)."""
    try:
        yield
    except redis.RedisError as exc:
        err = unavailable(exc)
        if err is None:
            raise
        raise err from None


def hand_out_order(tables: TableSet, teams: Sequence[str]) -> list[str]:
    """Queue names of ``teams`` in hand-out order: every P1 queue, then every P2 queue, ..."""
    levels = sorted(tables.levels.priority, key=lambda p: p.level)
    return [keys.queue_name(team, p.name) for p in levels for team in teams]


_RQ_DATA = pickle.dumps((TASK, None, ("@" * 32,), {}), protocol=pickle.HIGHEST_PROTOCOL)
_RQ_DATA_HEAD, _RQ_DATA_TAIL = _RQ_DATA.split(b"@" * 32)


def rq_job_data(item_id: str) -> bytes:
    """RQ's ``data`` field of an item's job: the job function's call pickled as RQ pickles it
    (``(func name, instance, args, kwargs)``), spliced around the id (ids are all 32 characters
    long, so the pickle's length fields hold). Stored uncompressed: RQ reads either form, and
    zlib made them longer (84 bytes for 82: the id is random)."""
    return _RQ_DATA_HEAD + item_id.encode() + _RQ_DATA_TAIL


def compact_call(call: Call) -> bytes:
    """The call as stored in a live item: JSON of the fields it has (every other one is None).

    A few dozen bytes: packing them saved about 10 bytes for 6 us of CPU per item, and an ended
    item's call is folded into its packed record anyway.
    """
    return _ENC.encode({f: v for f in _CALL_FIELDS if (v := getattr(call, f)) is not None})


_CALL_FIELDS = Call.__struct_fields__


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class ItemStore:
    """Item operations on one Redis connection."""

    def __init__(self, conn: redis.Redis, config: DispatchConfig | None = None) -> None:
        self.conn = conn
        self.config = config or DispatchConfig()
        self.scripts = scripts_for(conn)
        self.wire = Wire(conn)
        self._ttls = bulks([self.config.result_ttl, self.config.failure_ttl])

    def enqueue(
        self,
        call: Call,
        decision: Decision,
        source: str,
        external_id: str,
        payload: dict[str, Any] | None,
        now: datetime,
        replaces: str | None = None,
        detail: str = "",
    ) -> tuple[Item, bool]:
        """Store and queue an item; ``(item, created)``. A retry returns the existing item.

        ``replaces``: the id of the ended (completed or cancelled) item that (source, external
        id) names, when the ticket was re-opened: the new item takes its place; if that item is
        live again or already replaced, the one in its place is returned, not created.
        ``detail`` goes into the ``enqueued`` history event.
        """
        body = _ENC.encode(payload)
        limit = self.config.max_payload_bytes
        if len(body) > limit:
            raise InvalidCall(
                "payload", f"payload is {len(body)} bytes encoded; at most {limit} allowed"
            )
        at = _ms(now)
        item_id = new_item_id(at)
        team, priority = decision.team, decision.priority.name
        queue = keys.queue_name(team, priority)
        # The decision is stored once, in the hash; the entry names it until it changes.
        event = encode_event(
            "enqueued", ItemState.QUEUED, at, detail=detail, packed=CURRENT_DECISION
        )
        with redis_errors():
            created, got = self.wire.run(
                self.scripts.enqueue,
                21,
                [
                    b"$1\r\n2\r\n",
                    bulk(keys.idem_key(source, external_id)),
                    bulk(keys.job_key(item_id)),
                    self._ttls,
                    bulk(item_id),
                    bulk(queue),
                    bulk(team),
                    bulk(priority),
                    bulk(source),
                    bulk(external_id),
                    bulk(compact_call(call)),
                    bulk(pack(decision)),
                    bulk(body),
                    bulk(at),
                    bulk(rq_time(at)),
                    bulk(decision.response_by.timestamp()),
                    bulk(event),
                    bulk(rq_job_data(item_id)),
                    bulk(decision.call_type),
                    bulk(replaces or ""),
                ],
            )
        if not created:
            return self.get(got.decode()), False
        record(ItemEvent.ENQUEUED, decision.team, decision.priority.name)
        # Built here rather than read back: one round trip per enqueue, not two.
        item = Item(
            id=item_id,
            state=ItemState.QUEUED,
            team=decision.team,
            priority=decision.priority.name,
            queue=queue,
            source=source,
            external_id=external_id,
            call=call,
            decision=decision,
            enqueued_at=ms_to_datetime(at),
            payload=payload,
            history=[
                HistoryEvent(
                    at=ms_to_datetime(at),
                    event="enqueued",
                    state=ItemState.QUEUED,
                    detail=detail,
                    decision=decision,
                )
            ],
        )
        return item, True

    def get(self, item_id: str) -> Item:
        """The item with its history; :class:`NotFound` naming the id when there is none."""
        return self.get_many([item_id], missing_ok=False)[0]

    def _get_with_revision(self, item_id: str) -> tuple[Item, int]:
        """The item and the revision of its call and decision, read in one round trip."""
        if not _ID.match(item_id):
            raise NotFound(f"unknown item '{item_id}'")
        with redis_errors(), self.conn.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.job_key(item_id))
            pipe.lrange(keys.history_key(item_id), 0, -1)
            raw, history = pipe.execute()
        if b"usm_state" not in raw:
            raise NotFound(f"unknown item '{item_id}'")
        return item_from_hash(item_id, raw, history), int(raw.get(b"usm_rev", b"0"))

    def change(self, item_id: str, now: datetime, decide: Change) -> tuple[Item, bool]:
        """Read the item, let ``decide`` make its new call and decision, store them atomically.

        Compare-and-set: if another writer changed the item in between (two PATCHes at once, a
        re-score), the write is refused and ``decide`` runs again on what is stored now, so no
        change is lost. Returns ``(item, moved)`` as :meth:`rescore` does.
        """
        item, moved, _ = self.change_revised(item_id, now, decide)
        return item, moved

    def change_revised(self, item_id: str, now: datetime, decide: Change) -> tuple[Item, bool, int]:
        """:meth:`change`, plus the revision the stored decision got (write-back orders by it)."""
        for _ in range(_CHANGE_ATTEMPTS):
            item, revision = self._get_with_revision(item_id)
            decision, call, reason = decide(item)
            try:
                return self.rescore_revised(item_id, decision, now, call, reason, expect=revision)
            except StaleItem:
                continue
        raise ItemConflict(
            f"item '{item_id}' changed {_CHANGE_ATTEMPTS} times while this change was being "
            "made; send it again"
        )

    def get_many(self, item_ids: Sequence[str], missing_ok: bool = True) -> list[Item]:
        """Items in the order given, read in one round trip; absent ones are skipped."""
        wanted = [i for i in item_ids if _ID.match(i)]
        if not missing_ok and len(wanted) != len(item_ids):
            raise NotFound(f"unknown item '{item_ids[0]}'")
        with redis_errors(), self.conn.pipeline(transaction=False) as pipe:
            for i in wanted:
                pipe.hgetall(keys.job_key(i))
                pipe.lrange(keys.history_key(i), 0, -1)
            rows = pipe.execute()
        out = []
        for n, i in enumerate(wanted):
            raw, history = rows[2 * n], rows[2 * n + 1]
            if b"usm_state" not in raw:
                if not missing_ok:
                    raise NotFound(f"unknown item '{i}'")
                continue
            out.append(item_from_hash(i, raw, history))
        return out

    def cancel(
        self, item_id: str, now: datetime, reason: str = "", completed: bool = False
    ) -> Item:
        """Cancel the item: it leaves its queue, lease or the dead letters.

        ``completed``: end it as completed instead, wherever it is (its ticket was resolved in
        the tool that raised it, whether or not a team had started on it).
        """
        self.get(item_id)
        outcome = ItemState.COMPLETED if completed else ItemState.CANCELLED
        with redis_errors():
            code, *rest = self.scripts.cancel(
                keys=[keys.job_key(item_id)],
                args=[
                    item_id,
                    _ms(now),
                    rq_time(_ms(now)),
                    self.config.result_ttl,
                    reason,
                    outcome.value,
                ],
            )
        if code == -1:
            raise NotFound(f"unknown item '{item_id}'")
        if code == 0:
            raise ItemConflict(f"item '{item_id}' is already {rest[0].decode()}")
        fold(self.conn, item_id)
        item = self.get(item_id)
        record(ItemEvent.COMPLETED if completed else ItemEvent.CANCELLED, item.team, item.priority)
        return item

    def find(self, source: str, external_id: str) -> Item | None:
        """The item (source, external_id) names, or None when there is none (or it expired)."""
        with redis_errors():
            found = self.conn.get(keys.idem_key(source, external_id))
        if found is None:
            return None
        items = self.get_many([bytes(found).decode()])  # type: ignore[arg-type]
        return items[0] if items else None

    def find_with_revision(self, source: str, external_id: str) -> tuple[Item, int] | None:
        """Like :meth:`find`, with the revision of the item's call and decision (one read).

        A caller that decides from the item can check later that the revision is still the
        same, i.e. that the decision it read is still the item's.
        """
        with redis_errors():
            found = self.conn.get(keys.idem_key(source, external_id))
        if found is None:
            return None
        try:
            return self._get_with_revision(bytes(found).decode())  # type: ignore[arg-type]
        except NotFound:
            return None

    def rescore(
        self,
        item_id: str,
        decision: Decision,
        now: datetime,
        call: Call | None = None,
        reason: str = "",
        expect: int | None = None,
    ) -> tuple[Item, bool]:
        """Store a new decision; a waiting item moves if its team or priority changed.

        Returns ``(item, moved)``; see :meth:`rescore_revised`.
        """
        item, moved, _ = self.rescore_revised(item_id, decision, now, call, reason, expect)
        return item, moved

    def rescore_revised(
        self,
        item_id: str,
        decision: Decision,
        now: datetime,
        call: Call | None = None,
        reason: str = "",
        expect: int | None = None,
    ) -> tuple[Item, bool, int]:
        """Store a new decision; a waiting item moves if its team or priority changed.

        Returns ``(item, moved, revision)``: the item's ``usm_rev`` this decision got, which
        orders its write-back. The decision is recorded in the item's history either way.
        With ``expect`` (the revision the decision was made from), :class:`StaleItem` is raised
        and nothing written when the item's call or decision changed since.
        """
        queue = keys.queue_name(decision.team, decision.priority.name)
        # The script fills in the state the item is in when the decision lands.
        event = encode_event(
            "rescored", _STATE_PLACEHOLDER, _ms(now), detail=reason, decision=decision
        )
        with redis_errors():
            code, *rest = self.scripts.move(
                keys=[keys.job_key(item_id), keys.QUEUES_SET],
                args=[
                    item_id,
                    queue,
                    decision.team,
                    decision.priority.name,
                    pack(decision),
                    decision.response_by.timestamp(),
                    event,
                    pack(call) if call is not None else "",
                    "" if expect is None else expect,
                ],
            )
        if code == -3:
            raise StaleItem(item_id)
        if code == -1:
            raise NotFound(f"unknown item '{item_id}'")
        if code == -2:
            raise ItemConflict(f"item '{item_id}' is {rest[0].decode()}; it cannot change")
        item = self.get(item_id)
        if code == 1:
            record(ItemEvent.MOVED, decision.team, decision.priority.name)
        return item, code == 1, int(rest[1])

    def requeue(self, item_id: str, now: datetime) -> Item:
        """Put a dead-lettered item back at the end of its queue."""
        with redis_errors():
            code, *rest = self.scripts.requeue(
                keys=[keys.job_key(item_id)],
                args=[item_id, _ms(now), "re-queued from dead letters"],
            )
        if code == -1 or not _ID.match(item_id):
            raise NotFound(f"unknown item '{item_id}'")
        if code == 0:
            raise ItemConflict(
                f"item '{item_id}' is {rest[0].decode()}; only dead items can be re-queued"
            )
        item = self.get(item_id)
        record(ItemEvent.RETRIED, item.team, item.priority)
        return item

    def waiting_ids(self, queue_names: Sequence[str], limit: int) -> list[str]:
        """Ids of waiting items in hand-out order, at most ``limit``."""
        with redis_errors(), self.conn.pipeline(transaction=False) as pipe:
            for name in queue_names:
                pipe.lrange(keys.queue_key(name), 0, limit - 1)
            rows = pipe.execute()
        ids = [i.decode() for row in rows for i in row]
        return ids[:limit]

    def dead_letter_ids(self, queue_names: Sequence[str], limit: int) -> list[str]:
        """Ids in the dead-letter registries of ``queue_names``, oldest first."""
        with redis_errors(), self.conn.pipeline(transaction=False) as pipe:
            for name in queue_names:
                pipe.zrange(keys.failed_key(name), 0, limit - 1)
            rows = pipe.execute()
        return sorted(i.decode() for row in rows for i in row)[:limit]
