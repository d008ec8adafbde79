"""What a worker holds right now, read from Redis: lets kill tests strike mid-item by condition."""

from __future__ import annotations

import redis

from service.dispatch import keys

__all__ = ["in_hand"]


def in_hand(conn: redis.Redis, holder: str) -> list[str]:
    """Ids of the items ``holder`` (a worker's ``--name``) has in hand now."""
    ids = [raw.decode() for raw in conn.zrange(keys.INFLIGHT, 0, -1)]
    pipe = conn.pipeline(transaction=False)
    for item_id in ids:
        pipe.hmget(keys.job_key(item_id), "usm_state", "usm_holder")
    held = []
    for item_id, (state, who) in zip(ids, pipe.execute(), strict=True):
        if state == b"started" and who == holder.encode():
            held.append(item_id)
    return held
