"""Handing items out under a lease, and taking back the ones whose holder vanished.

Used by workers (``started``) and by the claim endpoint (``claimed``). The hand-out is one Lua
call (:data:`~service.dispatch.scripts.POP_SCRIPT`): the item leaves its queue and enters the
in-flight set in the same step, so a holder that dies at any moment leaves the item where the
reaper (:func:`reap`) finds it once the lease runs out.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from service.dispatch import keys
from service.dispatch.archive import fold
from service.dispatch.items import ItemState, encode_event, pack_parts, plain
from service.dispatch.scripts import scripts_for
from service.dispatch.wire import Wire, bulk, bulks
from service.errors import ReplicasUnconfirmed

__all__ = [
    "ClaimRecord",
    "KeyReused",
    "Leased",
    "Outcome",
    "Reaped",
    "Take",
    "Taker",
    "expire_registries",
    "extend",
    "finish",
    "pop",
    "reap",
    "rq_time",
    "take_next",
]


class Outcome(enum.StrEnum):
    """How a lease ends."""

    COMPLETED = "completed"
    DEAD = "dead"
    RELEASED = "queued"


@dataclass(frozen=True)
class Leased:
    """An item just handed out, with what a handler needs (no second round trip)."""

    id: str
    team: str
    priority: str
    queued_ms: int
    deliveries: int
    call: bytes
    decision: bytes
    payload: bytes
    source: str
    external_id: str
    queue: str
    lease_until_ms: int
    replayed: bool = False
    """A re-sent claim: the lease its first copy took (see :class:`ClaimRecord`)."""
    history: tuple[bytes, ...] | None = None
    """The item's history as the hand-out left it, when asked for (``with_history``): the
    worker folds the item with it as it completes it, in the same call (see :func:`finish`)."""

    @functools.cached_property
    def call_json(self) -> bytes:
        """The call's JSON (inflated once: the handler's delivery and the fold both use it)."""
        return plain(self.call)

    @functools.cached_property
    def decision_json(self) -> bytes:
        """The decision's JSON (inflated once, as :attr:`call_json`)."""
        return plain(self.decision)

    def record(self, holder: str, now_ms: int, detail: str) -> tuple[bytes, int]:
        """This item folded as it completes now (``usm_record``), and the history length it
        was built from; ``(b"", 0)`` when the hand-out did not return the history."""
        if self.history is None:
            return b"", 0
        last = encode_event("completed", ItemState.COMPLETED, now_ms, detail=detail, holder=holder)
        record = pack_parts(
            team=self.team,
            priority=self.priority,
            source=self.source,
            external_id=self.external_id,
            deliveries=self.deliveries,
            call=self.call_json,
            decision=self.decision_json,
            history=[*self.history, last],
        )
        return record, len(self.history)


@dataclass(frozen=True)
class ClaimRecord:
    """Where a claim's ``Idempotency-Key`` is recorded (:func:`keys.claim_key`), and who sent it.

    The hand-out records item and holder under ``key`` in the same Lua step, for as long as the
    lease lasts; a re-send with the same key gets that lease back while its holder still has it.
    """

    key: str
    requester: str
    """The holder name the claim was sent with: a re-send under another name is refused."""


class KeyReused(Exception):
    """The claim's ``Idempotency-Key`` names a claim sent under another holder name."""


@dataclass(frozen=True)
class Reaped:
    """An item taken back from a holder whose lease expired."""

    id: str
    team: str
    priority: str
    dead: bool


SUSPENDED = "suspended"


_SECOND: tuple[int, str] = (-1, "")
"""The last second :func:`rq_time` formatted, and its text: items come many to a second."""


def rq_time(ms: int) -> str:
    """A timestamp in the format RQ writes into job hashes (its ``utcformat``)."""
    global _SECOND
    second, milli = divmod(ms, 1000)
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{milli:03d}000Z"


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


@dataclass(frozen=True)
class Take:
    """What a hand-out looks for: the levels to take from, for whom, under which lease."""

    queue_names: Sequence[str]
    """RQ queue names in hand-out order (highest priority first)."""
    wake_keys: Sequence[str]
    """The teams' wake lists, cleared when every queue is empty."""
    holder: str
    """The lease holder (a worker's name, or a person's name plus a random tag for a claim);
    only this holder may extend or end the lease."""
    lease_ms: int
    state: ItemState = ItemState.STARTED
    """``started`` (a worker) or ``claimed`` (a person)."""
    worker_key: str | None = None
    """RQ worker hash to mark busy (workers only)."""
    honour_suspension: bool = True
    """Return ``"suspended"`` while `rq suspend` is in force."""
    with_history: bool = False
    """Return the item's history too (:attr:`Leased.history`), to fold it on completion."""
    record: ClaimRecord | None = None
    """A claim's idempotency record: a re-send gets the lease it names back (``replayed``),
    even while suspended."""

    def keys(self) -> list[str]:
        """POP_SCRIPT's keys from its fifth on: the queue lists, then the wake lists."""
        return [*(keys.queue_key(n) for n in self.queue_names), *self.wake_keys]

    def args(self, now_ms: int, mark_idle: bool) -> list[Any]:
        """POP_SCRIPT's arguments."""
        return [
            now_ms,
            now_ms + self.lease_ms,
            self.holder,
            self.state.value,
            len(self.queue_names),
            "1" if self.honour_suspension else "0",
            rq_time(now_ms),
            ("2" if mark_idle else "1") if self.worker_key else "0",
            self.record.requester if self.record else "",
            "1" if self.with_history else "0",
        ]

    def leased(self, got: Any, now_ms: int) -> Leased | str | None:
        """POP_SCRIPT's answer as a :class:`Leased` (or ``"suspended"``, or None).

        Raises:
            KeyReused: ``record`` names a claim sent by another requester.
        """
        if got is None:
            return None
        if got == b"reused":
            raise KeyReused(self.record.requester if self.record else "")
        if isinstance(got, bytes):
            if not got[:1].isdigit():
                return got.decode()
            # Framed into one string (a worker's hand-out): the values, then the history.
            got = _unframe(got)
            got = [*got[:14], got[14:]]
        (item_id, team, priority, queued_ms, deliveries, call, decision, payload, source, ext,
         q) = got[:11]  # fmt: skip
        return Leased(
            id=item_id.decode(),
            team=_text(team),
            priority=_text(priority),
            queued_ms=int(queued_ms or 0),
            deliveries=int(deliveries or 0),
            call=call,
            decision=decision,
            payload=payload or b"null",
            source=_text(source),
            external_id=_text(ext),
            queue=_text(q),
            lease_until_ms=int(got[11] or now_ms + self.lease_ms),
            replayed=got[12] == b"1",
            history=tuple(got[14]) if self.with_history and len(got) > 14 else None,
        )


def _unframe(blob: bytes) -> list[bytes]:
    """The values of POP_SCRIPT's framed answer: each was sent as ``<length>:<bytes>``."""
    out = []
    at, end = 0, len(blob)
    while at < end:
        colon = blob.index(b":", at)
        at = colon + 1 + int(blob[at:colon])
        out.append(blob[colon + 1 : at])
    return out


def pop(
    conn: redis.Redis,
    queue_names: Sequence[str],
    wake_keys: Sequence[str],
    holder: str,
    now_ms: int,
    lease_ms: int,
    state: ItemState = ItemState.STARTED,
    worker_key: str | None = None,
    honour_suspension: bool = True,
    record: ClaimRecord | None = None,
    with_history: bool = False,
    mark_idle: bool = False,
) -> Leased | str | None:
    """Lease the next item: the head of the first non-empty queue in ``queue_names``.

    Args are those of :class:`Take`, plus ``mark_idle``: mark the worker (``worker_key``) idle
    when nothing is found; a worker asks after it handled an item, as finishing one leaves it
    marked busy.

    Returns:
        The leased item, ``"suspended"``, or None when every queue is empty.

    Raises:
        KeyReused: ``record`` names a claim sent by another requester.
    """
    take = Take(
        queue_names,
        wake_keys,
        holder,
        lease_ms,
        state,
        worker_key,
        honour_suspension,
        with_history,
        record,
    )
    return take_next(conn, take, now_ms, mark_idle)


def take_next(
    conn: redis.Redis, take: Take, now_ms: int, mark_idle: bool = False
) -> Leased | str | None:
    """:func:`pop` with its arguments in a :class:`Take`."""
    try:
        got = scripts_for(conn).pop(
            keys=[
                keys.INFLIGHT,
                keys.SUSPENDED,
                take.worker_key or keys.INFLIGHT,
                take.record.key if take.record else keys.INFLIGHT,
                *take.keys(),
            ],
            args=take.args(now_ms, mark_idle),
        )
    except ReplicasUnconfirmed as exc:
        _give_back(conn, exc.result, take.holder, now_ms)
        raise
    return take.leased(got, now_ms)


def extend(conn: redis.Redis, item_id: str, holder: str, now_ms: int, lease_ms: int) -> bool:
    """Renew a lease; False when the holder lost it (re-delivered, cancelled, finished)."""
    done = scripts_for(conn).extend(
        keys=[keys.job_key(item_id), keys.INFLIGHT],
        args=[item_id, holder, now_ms + lease_ms, rq_time(now_ms)],
    )
    return bool(done)


def _give_back(conn: redis.Redis, result: object, holder: str, now_ms: int) -> None:
    """Release a hand-out no replica confirmed: the caller gets a 503 and will never finish
    it, so it goes back to the front of its queue now rather than after its lease (a claim's is
    15 minutes). Best effort: if a failover dropped the hand-out, the item is queued anyway."""
    if not isinstance(result, list) or not result or not isinstance(result[0], bytes):
        return
    with contextlib.suppress(ReplicasUnconfirmed, redis.RedisError):
        finish(conn, result[0].decode(), holder, Outcome.RELEASED, now_ms, 0, "not confirmed")


def _finish_args(
    item_id: str,
    holder: str,
    outcome: Outcome,
    now_ms: int,
    ttl_seconds: int,
    detail: str,
    worker_key: str | None,
    leased: Leased | None,
) -> list[Any]:
    """FINISH_SCRIPT's arguments; with the item folded when ``leased`` has its history."""
    record, seen = b"", 0
    if outcome is Outcome.COMPLETED and leased is not None:
        record, seen = leased.record(holder, now_ms, detail)
    return [
        item_id,
        holder,
        outcome.value,
        now_ms,
        rq_time(now_ms),
        ttl_seconds,
        detail,
        "1" if worker_key else "0",
        record,
        seen,
    ]


def finish(
    conn: redis.Redis,
    item_id: str,
    holder: str,
    outcome: Outcome,
    now_ms: int,
    ttl_seconds: int,
    detail: str = "",
    worker_key: str | None = None,
    leased: Leased | None = None,
) -> bool:
    """End a lease: complete, dead-letter, or release the item (front of its level).

    Only the current ``holder`` may end the lease. Returns False when the caller does not hold
    the item, e.g. its lease expired and it was handed out again: a stale holder is fenced off.

    A completed item is folded (:mod:`service.dispatch.archive`): in the same call when
    ``leased`` carries the history its hand-out returned and nothing was added to it since,
    else with a read and a second call afterwards.
    """
    done = scripts_for(conn).finish(
        keys=[keys.job_key(item_id), keys.INFLIGHT, worker_key or keys.INFLIGHT],
        args=_finish_args(
            item_id, holder, outcome, now_ms, ttl_seconds, detail, worker_key, leased
        ),
    )
    if done == 1 and outcome is Outcome.COMPLETED:
        fold(conn, item_id)
    return bool(done)


class Taker:
    """A worker's hand-out calls, :meth:`take` and :meth:`finish_and_take`, on a
    :class:`~service.dispatch.wire.Wire`, with every argument that stays the same from one item
    to the next (keys, holder, lease kind) packed once: a busy worker makes one such call per
    item. Build a new one when ``take`` changes (a new table set)."""

    def __init__(self, conn: redis.Redis, take: Take, wire: Wire | None = None) -> None:
        self.conn = conn
        self.take = take
        self.wire = wire if wire is not None else Wire(conn)
        self._scripts = scripts_for(conn)
        levels = take.keys()
        worker = take.worker_key or keys.INFLIGHT
        # POP_SCRIPT: KEYS in-flight, suspension flag, worker hash, claim record (none), levels;
        # ARGV now, deadline | holder, state, n, suspension | now (RQ) | idle mark, requester,
        # history.
        self._pop_count = 1 + 4 + len(levels) + 10
        self._pop_keys = bulks([4 + len(levels), keys.INFLIGHT, keys.SUSPENDED, worker,
                                keys.INFLIGHT, *levels])  # fmt: skip
        self._pop_mid = bulks([take.holder, take.state.value, len(take.queue_names),
                               "1" if take.honour_suspension else "0"])  # fmt: skip
        # A worker's hand-outs answer in one framed string (see POP_SCRIPT).
        history = "2" if take.with_history else "0"
        self._pop_tail = {
            idle: bulks([("2" if idle else "1") if take.worker_key else "0", "", history])
            for idle in (False, True)
        }
        # FINISH_POP_SCRIPT: KEYS job hash | in-flight, suspension flag, worker hash, levels;
        # ARGV FINISH_SCRIPT's (id | holder | outcome, now, now (RQ), TTL, detail | worker |
        # record, seen), then POP_SCRIPT's as above.
        self._step_count = 1 + 4 + len(levels) + 20
        self._step_head = bulk(4 + len(levels))
        self._step_keys = bulks([keys.INFLIGHT, keys.SUSPENDED, worker, *levels])
        self._holder = bulk(take.holder)
        self._worker = bulk("1" if take.worker_key else "0")

    def take_next(self, now_ms: int, mark_idle: bool = False) -> Leased | str | None:
        """:func:`take_next` with this taker's ``take``."""
        now = bulk(now_ms)
        try:
            got = self.wire.run(
                self._scripts.pop,
                self._pop_count,
                [self._pop_keys, now, bulk(now_ms + self.take.lease_ms), self._pop_mid,
                 bulk(rq_time(now_ms)), self._pop_tail[mark_idle]],
            )  # fmt: skip
        except ReplicasUnconfirmed as exc:
            _give_back(self.conn, exc.result, self.take.holder, now_ms)
            raise
        return self.take.leased(got, now_ms)

    def finish_and_take(
        self, leased: Leased, outcome: Outcome, now_ms: int, ttl_seconds: int, detail: str
    ) -> tuple[bool, Leased | str | None]:
        """A worker's step to its next item in one call: :func:`finish` ``leased`` (held by
        ``take.holder``), then :func:`take_next`. Returns what each returns."""
        record, seen = b"", 0
        if outcome is Outcome.COMPLETED:
            record, seen = leased.record(self.take.holder, now_ms, detail)
        now, now_rq = bulk(now_ms), bulk(rq_time(now_ms))
        done, got = self.wire.run(
            self._scripts.finish_pop,
            self._step_count,
            [self._step_head, bulk(keys.job_key(leased.id)), self._step_keys,
             bulk(leased.id), self._holder, bulk(outcome.value), now, now_rq, bulk(ttl_seconds),
             bulk(detail), self._worker, bulk(record), bulk(seen),
             now, bulk(now_ms + self.take.lease_ms), self._pop_mid, now_rq, self._pop_tail[True]],
        )  # fmt: skip
        if done == 1 and outcome is Outcome.COMPLETED:
            fold(self.conn, leased.id)
        return bool(done), self.take.leased(got, now_ms)


def reap(
    conn: redis.Redis, now_ms: int, max_deliveries: int, failure_ttl: int, limit: int = 500
) -> list[Reaped]:
    """Take back every item whose lease ran out: to the front of its queue, or dead letters."""
    rows = scripts_for(conn).reap(
        keys=[keys.INFLIGHT], args=[now_ms, limit, max_deliveries, failure_ttl]
    )
    return [
        Reaped(id=r[0].decode(), team=_text(r[1]), priority=_text(r[2]), dead=r[3] == b"dead")
        for r in rows
    ]


def expire_registries(conn: redis.Redis, queue_names: Sequence[str], now_s: float) -> None:
    """Drop entries past their expiry from the queues' finished and dead-letter registries.

    What RQ's own worker maintenance does every 10 minutes; the item hashes themselves expire
    by TTL. One pipeline, whatever the number of entries.
    """
    with conn.pipeline(transaction=False) as pipe:
        for name in queue_names:
            pipe.zremrangebyscore(keys.finished_key(name), 0, now_s)
            pipe.zremrangebyscore(keys.failed_key(name), 0, now_s)
        pipe.execute()
