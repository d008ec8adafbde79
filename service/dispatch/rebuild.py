"""Put a queue's items back in seniority order after a mass re-score, in bounded steps.

A Redis list cannot take an item in the middle cheaply (``LINSERT`` walks the list), so a mass
re-score that placed each moved item by walking its new queue cost O(moved x length) inside
Lua, blocking Redis. Instead, :data:`~service.dispatch.scripts.RETARGET_SCRIPT` appends a moved
item to its new queue at once (so it is never in no queue) and notes it; then each noted queue
is rebuilt here, linearly, while workers keep taking items from it:

1. Take the queue's rebuild lock (a token). From now on every script that adds an id to the
   queue also appends it to the rebuild log (``F<id>`` at the front, ``B<id>`` at the back).
2. Copy the list in overlapping chunks; scan its due zset (every waiting item of the queue) to
   find any entry the copy missed while the head moved.
3. Keep the entries still waiting in this queue (handed-out, cancelled or moved-away ones are
   dropped), and merge the noted items in by id, i.e. by enqueue time: each goes before the
   first item that is younger, as a single re-score places it.
4. Write that order to a new list in chunks, add what the log gathered meanwhile (each id
   once), and swap it in with one short script that first adds the last few logged ids.

No step reads or writes more than :data:`CHUNK` entries, except the swap, which adds only the
ids logged since the last catch-up and frees the old list. An entry that went stale between
the copy and the swap stays in the list and is skipped by the hand-out, which checks state and
queue of every id it pops. A rebuilder that dies leaves the queue as it was (moved items at its
tail, in hand-out order among themselves) and the queue still noted, so the next re-score
rebuilds it. An item a PATCH moves into the queue during its rebuild lands at the back rather
than at its seniority place.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence

import redis

from service.dispatch import keys
from service.dispatch.scripts import scripts_for

__all__ = ["CHUNK", "Fence", "merge_by_seniority", "rebuild_pending", "rebuild_queue"]

log = logging.getLogger("usm.dispatch.rebuild")

CHUNK = 1000
"""Most list entries one Redis call reads or writes during a rebuild."""
_SCAN_COUNT = 200
"""``COUNT`` of the set and zset scans: members come with more work per entry than list
entries (scores, hashing), so fewer per call."""
_OVERLAP = 64
"""Entries each copy chunk re-reads from the previous one, so up to this many items taken
from the head between two reads cannot make the copy skip one (the due-zset scan catches
the rest)."""
_LOCK_MS = 600_000
"""Life of a rebuild lock, log and list: a rebuilder that died stops costing anything then."""
_CATCH_UP_ROUNDS = 20
_FEW_LATE = 50
"""Swap once fewer than this many ids were added since the last catch-up."""

Fence = Callable[[], None]
"""Called before every write step; raises to stop (the caller's activation lock was lost)."""


def _nothing() -> None:
    return None


def merge_by_seniority(rest: Sequence[str], placed: Sequence[str]) -> list[str]:
    """``rest`` in its order, with each of the sorted ``placed`` ids before the first younger one.

    Ids start with their creation time, so comparing ids compares enqueue times. The result is
    what inserting each placed id alone would give, in one linear pass.
    """
    out: list[str] = []
    j = 0
    for item_id in rest:
        while j < len(placed) and placed[j] < item_id:
            out.append(placed[j])
            j += 1
        out.append(item_id)
    out.extend(placed[j:])
    return out


def _copy(conn: redis.Redis, list_key: str) -> list[str]:
    """The list's entries in order, each id once, read :data:`CHUNK` at a time."""
    seen: set[str] = set()
    out: list[str] = []
    start = 0
    while True:
        chunk: list[bytes] = conn.lrange(list_key, start, start + CHUNK - 1)  # type: ignore[assignment]
        for raw in chunk:
            item_id = raw.decode()
            if item_id not in seen:
                seen.add(item_id)
                out.append(item_id)
        if len(chunk) < CHUNK:
            return out
        start += CHUNK - _OVERLAP


def _members(found: Iterable[bytes | tuple[bytes, float]]) -> set[str]:
    return {(m[0] if isinstance(m, tuple) else m).decode() for m in found}


def _waiting_here(conn: redis.Redis, ids: Sequence[str], name: str) -> set[str]:
    """Which of ``ids`` wait in queue ``name`` now (as the hand-out would judge them)."""
    out: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with conn.pipeline(transaction=False) as pipe:
            for item_id in chunk:
                pipe.hmget(keys.job_key(item_id), "usm_state", "usm_queue", "status")
            rows = pipe.execute()
        for item_id, (state, queue, status) in zip(chunk, rows, strict=True):
            waiting = state == b"queued" or (state == b"dead" and status == b"queued")
            if waiting and queue is not None and queue.decode() == name:
                out.add(item_id)
    return out


def _catch_up(conn: redis.Redis, tmp: str, log_key: str, present: set[str], fence: Fence) -> int:
    """Add to the rebuilt list what the log gathered; the number of log entries applied.

    An id logged while the list was copied may be in the copy already: a back add of it is
    skipped, a front add (the item was handed out and given back) moves it to the front, so
    no id is listed twice. Reads until fewer than :data:`_FEW_LATE` new entries arrived; the
    swap adds those arriving after the last read.
    """
    applied = 1  # the placeholder
    for _ in range(_CATCH_UP_ROUNDS):
        fence()
        late: list[bytes] = conn.lrange(log_key, applied, -1)  # type: ignore[assignment]
        with conn.pipeline(transaction=False) as pipe:
            for entry in late:
                front, item_id = entry[:1] == b"F", entry[1:].decode()
                if item_id in present:
                    if not front:
                        continue
                    pipe.lrem(tmp, 0, item_id)  # rare: walks the list once
                present.add(item_id)
                (pipe.lpush if front else pipe.rpush)(tmp, item_id)
            pipe.execute()
        applied += len(late)
        if len(late) < _FEW_LATE:
            break
    return applied


def rebuild_queue(conn: redis.Redis, name: str, fence: Fence = _nothing) -> bool:
    """Rebuild queue ``name``'s order (see the module docstring); False if another took over."""
    qkey, lock, log_key = (
        keys.queue_key(name),
        keys.rebuild_lock_key(name),
        keys.rebuild_log_key(name),
    )
    token = os.urandom(8).hex()
    tmp = keys.rebuild_list_key(name, token)
    fence()
    with conn.pipeline(transaction=True) as pipe:
        # A fresh log with a placeholder first entry, so it carries a TTL before any writer
        # appends to it; then the lock that makes writers log.
        pipe.delete(log_key)
        pipe.rpush(log_key, "-")
        pipe.pexpire(log_key, _LOCK_MS)
        pipe.set(lock, token, px=_LOCK_MS)
        pipe.execute()
    fence()
    copy = _copy(conn, qkey)
    noted = _members(conn.sscan_iter(keys.rebuild_in_key(name), count=_SCAN_COUNT))
    due = _members(conn.zscan_iter(keys.due_key(name), count=_SCAN_COUNT))
    missed = sorted(due.difference(copy))
    waiting = _waiting_here(conn, [*copy, *missed], name)
    rest = [i for i in copy if i in waiting and i not in noted]
    placed = sorted(waiting.intersection(noted).union(waiting.intersection(missed)))
    order = merge_by_seniority(rest, placed)
    conn.delete(tmp)
    for start in range(0, len(order), CHUNK):
        fence()
        with conn.pipeline(transaction=False) as pipe:
            pipe.rpush(tmp, *order[start : start + CHUNK])
            pipe.pexpire(tmp, _LOCK_MS)  # from the first chunk on: a dead rebuilder leaks nothing
            pipe.execute()
    applied = _catch_up(conn, tmp, log_key, set(order), fence)
    fence()
    swapped = scripts_for(conn).rebuild_swap(keys=[qkey, tmp, lock, log_key], args=[token, applied])
    if swapped == -1:
        conn.delete(tmp)
        log.warning("rebuild of queue %s was taken over by another rebuilder", name)
        return False
    in_key = keys.rebuild_in_key(name)
    handled = sorted(noted)
    for start in range(0, len(handled), CHUNK):
        conn.srem(in_key, *handled[start : start + CHUNK])
    scripts_for(conn).rebuild_done(keys=[in_key, keys.REBUILD_PENDING], args=[name])
    log.info(
        "queue %s rebuilt: %d waiting, %d placed by seniority, %d stale entries dropped",
        name,
        len(order),
        len(placed),
        sum(1 for i in copy if i not in waiting),
    )
    return True


def rebuild_pending(conn: redis.Redis, fence: Fence = _nothing) -> int:
    """Rebuild every queue a mass re-score noted (including one a dead rebuilder left)."""
    members: set[bytes] = conn.smembers(keys.REBUILD_PENDING)  # type: ignore[assignment]
    names = sorted(m.decode() for m in members)
    for name in names:
        rebuild_queue(conn, name, fence)
    return len(names)
