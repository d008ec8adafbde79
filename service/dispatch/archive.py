"""Fold an ended item into its compact form: the memory a completed item holds until it expires.

A completed or cancelled item never changes again, but it stays (``result_ttl``, a week by
default) for GET and RQ's registries. Its call, decision and history then go into one packed
field (:func:`service.dispatch.items.pack_record`) and its history list and lease fields go.
GET shows the same document either way.
"""

from __future__ import annotations

import logging

import redis

from service.dispatch import keys
from service.dispatch.items import ItemState, pack_record
from service.dispatch.scripts import scripts_for
from service.errors import QueueUnavailable

__all__ = ["ENDED", "fold"]

log = logging.getLogger(__name__)

ENDED = frozenset({ItemState.COMPLETED.value.encode(), ItemState.CANCELLED.value.encode()})


def fold(conn: redis.Redis, item_id: str) -> bool:
    """Fold ``item_id`` if it has ended; True when folded. Never raises on Redis trouble: the
    unfolded form is complete, folding only saves memory."""
    job, history_key = keys.job_key(item_id), keys.history_key(item_id)
    try:
        with conn.pipeline(transaction=False) as pipe:
            pipe.hgetall(job)
            pipe.lrange(history_key, 0, -1)
            raw, history = pipe.execute()
        state = raw.get(b"usm_state")
        if state not in ENDED or b"usm_record" in raw or b"usm_call" not in raw:
            return False
        record = pack_record(raw, history)
        done = scripts_for(conn).archive(keys=[job], args=[item_id, state, len(history), record])
    except (redis.RedisError, QueueUnavailable) as exc:
        log.warning("item %s stays unfolded: %s", item_id, exc)
        return False
    return bool(done)
