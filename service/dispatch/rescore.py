"""Re-score waiting items under a new table set and move the ones whose queue changed.

The governance layer calls :func:`rescore_all` once per fleet when a new table set version comes
into force (``service/governance/activation.py``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import msgspec
import redis

from service.core.calls import Call
from service.core.decision import Decision
from service.core.scoring import Scorer
from service.dispatch import keys
from service.dispatch.store import ItemStore
from service.errors import InvalidCall

__all__ = ["rescore_all", "rescore_call"]

log = logging.getLogger("usm.dispatch.rescore")

_CALL = msgspec.json.Decoder(Call)
_DECISION = msgspec.json.Decoder(Decision)
_CHUNK = 500


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


def rescore_all(conn: redis.Redis, scorer: Scorer) -> int:
    """Re-score every waiting item with ``scorer``; move those whose priority or team changed.

    Every queue of ours listed in RQ's queue set is read in chunks. An item whose priority,
    team or targets change gets the new decision, recorded in its history (``rescored``); it
    moves to its new queue, placed by its original enqueue time. Items being handled or
    claimed keep their lease and only get the new decision. An item the new set cannot score
    (say, its service was removed) keeps its old decision and is logged.

    Args:
        conn: Redis connection.
        scorer: scorer of the table set now in force.

    Returns:
        The number of items moved to another queue.
    """
    store = ItemStore(conn)
    now = datetime.now(UTC)
    moved = 0
    members: set[bytes] = conn.smembers(keys.QUEUES_SET)  # type: ignore[assignment]
    names = sorted(q.decode()[len(keys.QUEUE_PREFIX) :] for q in members)
    reason = f"table set {scorer.version} came into force"
    for name in names:
        if keys.parse_queue_name(name) is None:
            continue
        ids = [i.decode() for i in conn.lrange(keys.queue_key(name), 0, -1)]  # type: ignore[union-attr]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            with conn.pipeline(transaction=False) as pipe:
                for item_id in chunk:
                    pipe.hmget(keys.job_key(item_id), "usm_call", "usm_decision", "usm_state")
                rows = pipe.execute()
            for item_id, (call_raw, decision_raw, state) in zip(chunk, rows, strict=True):
                if call_raw is None or state != b"queued":
                    continue
                old = _DECISION.decode(decision_raw)
                try:
                    new = rescore_call(scorer, _CALL.decode(call_raw), old, now)
                except InvalidCall as exc:
                    log.warning(
                        "item %s cannot be re-scored under %s: %s", item_id, scorer.version, exc
                    )
                    continue
                if not _changed(old, new):
                    continue
                detail = (
                    f"{reason}: {old.priority.name}/{old.team} -> {new.priority.name}/{new.team}"
                )
                _, did_move = store.rescore(item_id, new, now, reason=detail)
                moved += did_move
    return moved
