"""Re-score open work under a new table set: waiting items move, items in hand keep their lease.

The governance layer calls :func:`rescore_all` once per fleet when a new table set version comes
into force (``service/governance/activation.py``). It is linear in the number of open items and
works in batches, so no Redis call grows with the size of a queue:

1. Scan every queue's due zset (its waiting items) and the in-flight set (items in hand),
   :data:`BATCH` ids at a time, and score each item's call under the new set.
2. Store the changed decisions, one script call per batch
   (:data:`~service.dispatch.scripts.RETARGET_SCRIPT`); a waiting item whose queue changed is
   appended to its new queue, an item in hand gets its new queue for when it is given back.
3. Rebuild the order of every queue that gained or lost items
   (:mod:`service.dispatch.rebuild`), so moved items keep their seniority.

``fence`` is called before each write step; the activation passes one that renews its lock
and raises once the lock is someone else's, so two replicas never re-score at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis

from service.core.calls import Call
from service.core.decision import Decision
from service.core.scoring import Scorer
from service.dispatch import keys
from service.dispatch.items import encode_event, now_ms, pack, unpack_call, unpack_decision
from service.dispatch.rebuild import Fence, rebuild_pending
from service.dispatch.scripts import scripts_for
from service.errors import InvalidCall
from service.metrics.instruments import ItemEvent, record

__all__ = ["BATCH", "STORE_BATCH", "Changed", "rescore_all", "rescore_call"]

log = logging.getLogger("usm.dispatch.rescore")

_ENC = msgspec.json.Encoder()
_STATE_PLACEHOLDER: Any = "@STATE@"

BATCH = 200
"""Items per scoring read (one pipeline of HMGETs)."""
STORE_BATCH = 20
"""Changed items per decision-storing script call. Each item costs about 15 commands and two
copies of its decision (about 37 us of Redis time); 20 keep one call under 1 ms, so even on a
CPU-starved host, where a call's wall time stretches, it stays far from 50 ms
(``bench/rescore.py`` measures it)."""
_STALE_ROUNDS = 10
"""Times an item changed by someone else meanwhile (a PATCH) is read and scored again."""


def rescore_call(scorer: Scorer, call: Call, previous: Decision, now: datetime) -> Decision:
    """Score ``call`` again; targets keep counting from when it was first reported."""
    if call.reported_at is None:
        call = msgspec.structs.replace(call, reported_at=previous.reported_at)
    return scorer.score(call, now)


def _changed(old: Decision, new: Decision) -> bool:
    return (
        old.priority.name != new.priority.name
        or old.team != new.team
        or old.response_by != new.response_by
        or old.resolve_by != new.resolve_by
    )


def _nothing() -> None:
    return None


Changed = Callable[[str, str, Decision, str, int], None]
"""Told ``(source, external_id, new decision, item id, revision)`` of every item whose decision
was stored; the revision is the item's ``usm_rev`` the decision got (write-back orders by it)."""


def _open_items(conn: redis.Redis) -> Iterator[list[str]]:
    """Ids of every waiting item (each queue's due zset) and every item in hand, in batches.

    ``ZSCAN`` returns every member present for the whole scan at least once, and each call
    reads a bounded slice whatever the zset's size. An id seen twice (it moved meanwhile) is
    handed out once.
    """
    members: set[bytes] = conn.smembers(keys.QUEUES_SET)  # type: ignore[assignment]
    names = sorted(q.decode()[len(keys.QUEUE_PREFIX) :] for q in members)
    zsets = [keys.due_key(n) for n in names if keys.parse_queue_name(n) is not None]
    seen: set[str] = set()
    batch: list[str] = []
    for zset in [*zsets, keys.INFLIGHT]:
        for member, _ in conn.zscan_iter(zset, count=BATCH):
            item_id = member.decode()
            if item_id in seen:
                continue
            seen.add(item_id)
            batch.append(item_id)
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


class _Run:
    """One re-score: the scorer, the moment, and what it did."""

    def __init__(
        self, conn: redis.Redis, scorer: Scorer, fence: Fence, on_change: Changed | None = None
    ) -> None:
        self.conn = conn
        self.on_change = on_change
        self.refs: dict[str, tuple[str, str]] = {}
        """Item id -> (source, external id) of the items scored in this batch."""
        self.scorer = scorer
        self.fence = fence
        self.now = datetime.now(UTC)
        self.reason = f"table set {scorer.version} came into force"
        self.moved = 0
        self.in_hand = 0
        self.unscorable = 0

    def batch(self, ids: Sequence[str]) -> None:
        """Score ``ids`` and store what changed; items changed meanwhile are read again."""
        todo = list(ids)
        for _ in range(_STALE_ROUNDS):
            if not todo:
                return
            changes = self._score(todo)
            todo = []
            for start in range(0, len(changes), STORE_BATCH):
                todo += self._store(changes[start : start + STORE_BATCH])
        log.warning(
            "re-score under %s: %d items kept changing; skipped", self.scorer.version, len(todo)
        )

    def _score(self, ids: Sequence[str]) -> list[tuple[str, int, str, Decision, Decision]]:
        """``(id, revision, state, old, new)`` of the open items whose decision changes."""
        with self.conn.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hmget(
                    keys.job_key(item_id),
                    "usm_call",
                    "usm_decision",
                    "usm_state",
                    "usm_rev",
                    "usm_source",
                    "usm_external_id",
                )
            rows = pipe.execute()
        out = []
        for item_id, row in zip(ids, rows, strict=True):
            call_raw, decision_raw, state, rev, source, external_id = row
            if source and external_id:
                self.refs[item_id] = (source.decode(), external_id.decode())
            if call_raw is None or state not in (b"queued", b"started", b"claimed"):
                continue
            old = unpack_decision(decision_raw)
            try:
                new = rescore_call(self.scorer, unpack_call(call_raw), old, self.now)
            except InvalidCall as exc:
                self.unscorable += 1
                log.warning(
                    "item %s cannot be re-scored under %s: %s", item_id, self.scorer.version, exc
                )
                continue
            if _changed(old, new):
                out.append((item_id, int(rev or 0), state.decode(), old, new))
        return out

    def _store(self, changes: list[tuple[str, int, str, Decision, Decision]]) -> list[str]:
        """Store the new decisions in one script call; the ids that changed meanwhile."""
        if not changes:
            return []
        at = now_ms()
        args: list[Any] = []
        for item_id, rev, _, old, new in changes:
            detail = (
                f"{self.reason}: {old.priority.name}/{old.team} -> {new.priority.name}/{new.team}"
            )
            args += [
                item_id,
                rev,
                keys.queue_name(new.team, new.priority.name),
                new.team,
                new.priority.name,
                pack(new),
                new.response_by.timestamp(),
                encode_event("rescored", _STATE_PLACEHOLDER, at, detail=detail, decision=new),
            ]
        self.fence()
        codes = scripts_for(self.conn).retarget(keys=[keys.QUEUES_SET], args=args)
        stale = []
        for (item_id, rev, state, _, new), code in zip(changes, codes, strict=True):
            if code == -3:
                stale.append(item_id)
                continue
            if code in (1, 2) and self.on_change is not None and item_id in self.refs:
                # Stored at the revision read (compare-and-set), so it now has the next one.
                self.on_change(*self.refs[item_id], new, item_id, rev + 1)
            if code == 1:
                self.moved += 1
                record(ItemEvent.MOVED, new.team, new.priority.name)
            elif code == 2 and state != "queued":
                self.in_hand += 1
        return stale


def rescore_all(
    conn: redis.Redis,
    scorer: Scorer,
    fence: Fence | None = None,
    on_change: Changed | None = None,
) -> int:
    """Re-score every open item with ``scorer``; move the waiting ones whose queue changed.

    An item whose priority, team or targets change gets the new decision,
    recorded in its history (``rescored``). A waiting item moves to its new queue, placed by
    its original enqueue time. An item in hand (started by a worker, claimed by a person)
    keeps its lease and holder and goes to its new queue if it is given back or its lease
    expires. An item the new set cannot score (say, its service was removed) keeps its old
    decision and is logged. Dead letters are left as they are.

    Args:
        conn: Redis connection.
        scorer: scorer of the table set now in force.
        fence: called before each write step; raises to stop the run (lock lost).
        on_change: told of each item whose new decision was stored (the sources layer writes
            it back into the ticketing tool the item came from).

    Returns:
        The number of waiting items moved to another queue.
    """
    run = _Run(conn, scorer, fence or _nothing, on_change)
    for ids in _open_items(conn):
        run.batch(ids)
    rebuilt = rebuild_pending(conn, run.fence)
    log.info(
        "re-scored open items under %s: %d moved, %d in hand re-decided, %d not scorable, "
        "%d queues rebuilt",
        scorer.version,
        run.moved,
        run.in_hand,
        run.unscorable,
        rebuilt,
    )
    return run.moved
