"""The target watch: when a ticket's response or resolve target passes unmet, the tool is told.

A missed target is the third moment usm changes what a ticket should show without the tool
asking (besides a new table set and a re-score over the API). Whoever delivers a decision to the
tool (an event's answer, the write-back sender) writes the targets already missed at that moment;
the watch covers the targets that pass *afterwards*:

1. :func:`watch_targets` notes the ticket in ``usm:wb:targets`` at the decision's next target
   still ahead (an earlier note stays: ``ZADD LT``); sources whose tool has no field for missed
   targets (``fields.missed``) are not watched;
2. :class:`TargetWatch` (run with the sender) claims the notes that fell due, reads the ticket's
   live item with its revision, and works out the missed targets of its current decision;
3. when some are missed and the tool does not show them yet, :data:`SHOW_SCRIPT` queues the
   item's decision in the outbox, and the sender writes it with the flags (computed again at send
   time). The script first checks that the item's revision is still the one read, so a decision
   made meanwhile is never overwritten by the older one the watch read;
4. the note moves to the next target ahead, or goes when none is left or the item ended.

A claimed note sits at the end of a lease, so a watcher that dies leaves it due again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import redis

from service.core.decision import Decision
from service.core.sources import Source
from service.core.tables import TableSet
from service.core.targets import Target, missed_targets, next_target, render_missed
from service.dispatch import keys as item_keys
from service.dispatch.items import Item, ItemState
from service.dispatch.store import ItemStore
from service.sources import keys
from service.sources.writeback.base import MISSED, adapter

__all__ = [
    "SHOW_SCRIPT",
    "WATCH_CLAIM_SCRIPT",
    "WATCH_MOVE_SCRIPT",
    "TargetWatch",
    "carries_missed",
    "item_missed",
    "watch_targets",
]

log = logging.getLogger("usm.sources.watch")

_ENDED = (ItemState.COMPLETED, ItemState.CANCELLED)
_HANDED_OUT = ("started", "claimed")

WATCH_CLAIM_SCRIPT = """
-- Claim up to N due notes: each one's score moves to the end of the lease.
-- KEYS: 1 targets zset
-- ARGV: 1 now (ms), 2 lease (ms), 3 N
-- Returns: flat list of member, lease end (ms).
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], until_ms, member)
  table.insert(out, member); table.insert(out, until_ms)
end
return out
"""

WATCH_MOVE_SCRIPT = """
-- Move a claimed note to its next check, or drop it; unless it was noted anew meanwhile.
-- KEYS: 1 targets zset
-- ARGV: 1 member, 2 lease end it was claimed with (ms), 3 next check (ms) or '' to drop
-- Returns: 1 moved or dropped, 0 left alone (a new decision noted an earlier target).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then redis.call('ZREM', KEYS[1], ARGV[1])
else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 1
"""

SHOW_SCRIPT = """
-- Queue the item's decision for write-back, because a target of it was missed.
-- KEYS: 1 the item's job hash, 2 outbox entry hash, 3 outbox due zset, 4 outbox dead zset
-- ARGV: 1 member, 2 item revision read, 3 decision (JSON), 4 missed targets, 5 now (ms),
--       6 item id (the entry keeps the item and revision, which order later submits)
-- Returns: 'changed' the item changed since it was read (read it again);
--          'pending' a write-back is under way (its sender computes the flags when sending);
--          'shown'   the tool was last sent this decision with these flags;
--          'dead'    this decision is dead-lettered (the tool keeps refusing it);
--          'queued'  queued now.
if (redis.call('HGET', KEYS[1], 'usm_rev') or '0') ~= ARGV[2] then return 'changed' end
local h = redis.call('HMGET', KEYS[2], 'state', 'decision', 'sent_missed')
if h[1] == 'pending' then return 'pending' end
if h[2] == ARGV[3] then
  if h[1] == 'dead' then return 'dead' end
  if h[1] == 'done' and h[3] == ARGV[4] then return 'shown' end
end
redis.call('HINCRBY', KEYS[2], 'rev', 1)
redis.call('HSET', KEYS[2], 'decision', ARGV[3], 'decided_ms', ARGV[5], 'state', 'pending',
  'attempts', 0, 'error', '', 'claimed_until', 0, 'item', ARGV[6], 'item_rev', ARGV[2])
redis.call('PERSIST', KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
return 'queued'
"""


def _ms(moment: datetime | float) -> int:
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1000)
    return int(moment * 1000)


def carries_missed(source: Source | None) -> bool:
    """Whether the source's tool shows missed targets (an adapter that can, a field named)."""
    wb = source.writeback if source is not None else None
    return wb is not None and bool(wb.fields.get(MISSED)) and adapter(wb.adapter).carries_missed


def item_missed(item: Item, decision: Decision, now: datetime) -> tuple[Target, ...]:
    """The targets of ``decision`` the item has missed by ``now`` (its hand-out and end)."""
    handed_out = next((e.at for e in item.history if e.event in _HANDED_OUT), None)
    ended = None
    if item.state in _ENDED:
        ended = next((e.at for e in reversed(item.history) if e.state in _ENDED), now)
    return missed_targets(decision, handed_out, ended, now)


def watch_targets(
    conn: redis.Redis, source: Source, ticket_id: str, decision: Decision, now: datetime
) -> bool:
    """Note the ticket for its decision's next target still ahead; True when noted.

    Targets already passed are the deliverer's to show (an answer, the sender), not the watch's.
    """
    ahead = next_target(decision, now)
    if ahead is None or not carries_missed(source):
        return False
    conn.zadd(keys.TARGETS, {keys.ref(source.name, ticket_id): _ms(ahead)}, lt=True)
    return True


@dataclass
class TargetWatch:
    """Finds tickets whose target just passed unmet and queues their write-back."""

    conn: redis.Redis
    items: ItemStore
    tables: Callable[[], TableSet]
    """The table set in force now (which sources show missed targets)."""
    lease: float = 60.0
    retry: float = 1.0
    """Seconds before a note is checked again when its item changed or a send is under way."""

    def __post_init__(self) -> None:
        self._claim = self.conn.register_script(WATCH_CLAIM_SCRIPT)
        self._move = self.conn.register_script(WATCH_MOVE_SCRIPT)
        self._show = self.conn.register_script(SHOW_SCRIPT)

    def run_once(self, limit: int = 100) -> int:
        """Check the notes that fell due; returns how many were checked."""
        now = time.time()
        flat = self._claim(keys=[keys.TARGETS], args=[_ms(now), _ms(self.lease), limit])
        if not flat:
            return 0
        sources = {s.name: s for s in self.tables().sources.source}
        for i in range(0, len(flat), 2):
            member = flat[i].decode()
            next_ms = self._check(member, sources)
            self._move(keys=[keys.TARGETS], args=[member, int(flat[i + 1]), next_ms])
        return len(flat) // 2

    def _check(self, member: str, sources: dict[str, Source]) -> int | str:
        """Act on one note; the next check (ms), or ``""`` when the note can go."""
        name, ticket_id = keys.split_ref(member)
        if not carries_missed(sources.get(name)):
            return ""
        found = self.items.find_with_revision(name, ticket_id)
        if found is None or found[0].state in _ENDED:
            return ""
        item, revision = found
        now = datetime.now(UTC)
        missed = item_missed(item, item.decision, now)
        if missed:
            outcome = self._show(
                keys=[
                    item_keys.job_key(item.id),
                    keys.entry_key(member),
                    keys.DUE,
                    keys.DEAD,
                ],
                args=[
                    member,
                    str(revision),
                    msgspec.json.encode(item.decision),
                    render_missed(missed),
                    _ms(now),
                    item.id,
                ],
            ).decode()
            if outcome in ("changed", "pending"):
                return _ms(now) + _ms(self.retry)
            if outcome == "queued":
                log.info("%s missed its %s target: written back", member, render_missed(missed))
        ahead = next_target(item.decision, now)
        return _ms(ahead) if ahead is not None else ""
