"""The write-back outbox: the latest decision per ticket, delivered to its tool once, in order.

One entry per (source, ticket) holds only the *latest* decision, so an older decision can never
overwrite a newer one in the tool: a newer one replaces the pending one (its revision grows), an
older one is dropped as stale, and a claimed entry is sent by one sender at a time (a claim moves
the entry's due time to the end of its lease, the classic visibility timeout). A sender that dies
mid-way leaves a claim that simply falls due again.

"Older" is judged by the item's :class:`Revision` (its id, then its ``usm_rev``), not by when the
decision reached the outbox: a re-score's write-back that is submitted late (a slow request, a
retried submit) must not win over a later decision submitted before it. The entry keeps the
newest revision it was given, pending or already sent, and a submit with an older one is dropped.
Only tickets without an item (a source that never queues) fall back to the decision time.

How long the order holds: the submit first asks the item itself (the ticket's current item and
that item's ``usm_rev``), and a decision of an item no longer kept is dropped. An item is kept
while it is open and for ``USM_RESULT_TTL_SECONDS`` (7 days) after it ended, and its ticket is
written through usm only while it has an item, so the order holds for as long as the ticket can be
written, at no memory beyond the item's own. The outbox entry, which a sent decision keeps for
``done_ttl`` (the result TTL; every write starts it again), orders only tickets without an item:
for them a decision older than the last sent one is dropped while the entry is kept.

The lease and the tool's answer time: a claim carries a random token, and before *each* request
the sender checks, atomically (:data:`CHECK_SCRIPT`), that the entry still holds the claimed
revision and still carries its token, and extends the lease to at least that request's timeout
plus :data:`LEASE_MARGIN` from now. A request therefore never outlives its lease: no other sender
can claim the entry, and send a newer revision, while an older one may still reach the tool
(the source's ``timeout`` may be up to 120 s, longer than the claim's lease). A sender whose token
is gone (its lease ran out and another sender claimed the entry) sends nothing more, and its
done or failed report changes nothing (:data:`DONE_SCRIPT`, :data:`FAIL_SCRIPT` are fenced by
the token).

Delivery (:class:`Sender`): build the tool's requests with the source's adapter and send them in
order; every 2xx: done; anything else: retried with exponential back-off, dead-lettered after the
source's ``retries``. Requests are absolute (PUT/PATCH of values), so a repeat is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec
import redis

from service.core.decision import Decision
from service.core.sources import Source
from service.core.tables import TableSet
from service.core.targets import Target, render_missed
from service.dispatch import keys as item_keys
from service.dispatch.store import ItemStore
from service.metrics.sources import WriteBackOutcome, record_writeback
from service.sources import keys
from service.sources.secrets import secrets_for
from service.sources.watch import carries_missed, item_missed
from service.sources.writeback.base import HttpRequest, adapter, capture, fill

__all__ = [
    "CHECK_SCRIPT",
    "CLAIM_SCRIPT",
    "DONE_SCRIPT",
    "FAIL_SCRIPT",
    "LEASE_MARGIN",
    "RENEW_SCRIPT",
    "SUBMIT_SCRIPT",
    "Claimed",
    "Outbox",
    "Revision",
    "Sender",
    "send",
]

log = logging.getLogger("usm.sources.writeback")

MAX_BACKOFF_MS = 600_000
"""Back-off never exceeds 10 minutes, so a tool that comes back is served soon."""

LEASE_MARGIN = 5.0
"""Seconds a lease outlasts the timeout of the request it was extended for: covers a client that
notices its timeout late (a busy machine) and the Redis round trips around the request."""

SUBMIT_SCRIPT = """
-- Store the ticket's latest decision to write back, unless a later decision exists.
-- Later: a later item (ids sort by time: a re-opened ticket's new item), or the same item at a
-- higher revision; without an item on either side, a later decision time. The item itself is
-- asked first (the ticket's current item, the item's own revision), so the order holds for as
-- long as the item is kept, however long ago the entry was last written; a decision of an item
-- no longer kept is old by definition. Then the entry (pending or sent) is asked.
-- KEYS: 1 entry hash, 2 due zset, 3 dead zset, 4 the ticket's item record (its current item
--       id), 5 the submitted item's job hash (KEYS[1] again when there is no item)
-- ARGV: 1 member, 2 decision (JSON), 3 decided at (ms), 4 now (ms), 5 item id ('' none),
--       6 item revision
-- Returns: the entry's new revision (its current one when this revision already waits), or 0
--          when the decision is older than the stored one.
local item, rev_in = ARGV[5], tonumber(ARGV[6])
if item ~= '' then
  local current = redis.call('GET', KEYS[4])
  if current and item < current then return 0 end
  local live = redis.call('HGET', KEYS[5], 'usm_rev')
  if not live and redis.call('EXISTS', KEYS[5]) == 0 then return 0 end
  if live and rev_in < tonumber(live) then return 0 end
end
local h = redis.call('HMGET', KEYS[1], 'decided_ms', 'item', 'item_rev', 'state', 'rev')
if item ~= '' and h[2] and h[2] ~= '' then
  if item < h[2] then return 0 end
  if item == h[2] and rev_in < tonumber(h[3]) then return 0 end
  -- The same revision already waits (a sync of an unchanged ticket): nothing changes, so its
  -- sender does not start over.
  if item == h[2] and rev_in == tonumber(h[3]) and h[4] == 'pending' then
    return tonumber(h[5])
  end
elseif tonumber(ARGV[3]) < tonumber(h[1] or '-1') then
  return 0
end
local rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('HSET', KEYS[1], 'decision', ARGV[2], 'decided_ms', ARGV[3], 'state', 'pending',
  'attempts', 0, 'error', '')
if item ~= '' then redis.call('HSET', KEYS[1], 'item', item, 'item_rev', rev_in) end
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
-- A claimed entry keeps its lease end: its sender re-queues it when it sees the newer revision.
local claimed = tonumber(redis.call('HGET', KEYS[1], 'claimed_until') or '0')
if claimed <= tonumber(ARGV[4]) then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1]) end
return rev
"""

CLAIM_SCRIPT = """
-- Claim up to N due entries: each one's due time moves to the end of the lease, and the entry
-- carries the claim's token (which fences the claimant's later checks and reports).
-- KEYS: 1 due zset
-- ARGV: 1 now (ms), 2 lease (ms), 3 N, 4 entry key prefix, 5 claim token
-- Returns: flat list of member, revision, decision (JSON), decided at (ms), attempts.
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do
  local key = ARGV[4] .. member
  local h = redis.call('HMGET', key, 'rev', 'decision', 'decided_ms', 'attempts', 'state')
  if h[5] ~= 'pending' then
    redis.call('ZREM', KEYS[1], member)
  else
    redis.call('ZADD', KEYS[1], until_ms, member)
    redis.call('HSET', key, 'claimed_until', until_ms, 'claim', ARGV[5])
    table.insert(out, member); table.insert(out, h[1]); table.insert(out, h[2])
    table.insert(out, h[3]); table.insert(out, h[4])
  end
end
return out
"""

CHECK_SCRIPT = """
-- Before each request: is revision R still the newest, and the claim (token T) still the
-- caller's? Then its lease is extended to at least L (now + the request's timeout + a margin),
-- so nobody else can claim the entry while the request may still reach the tool. A lease that
-- ran out while nobody claimed the entry is still the caller's: the token says so.
-- If the claim holds but a newer revision waits, the claim ends and that revision is due now.
-- KEYS: 1 entry hash, 2 due zset
-- ARGV: 1 member, 2 revision claimed, 3 claim token, 4 now (ms), 5 lease end wanted (ms)
-- Returns: the lease end (ms): send it; 0: send nothing.
local h = redis.call('HMGET', KEYS[1], 'rev', 'state', 'claim', 'claimed_until')
if h[3] ~= ARGV[3] or h[2] ~= 'pending' then return 0 end
if h[1] ~= ARGV[2] then
  redis.call('HSET', KEYS[1], 'claimed_until', 0, 'claim', '')
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  return 0
end
local until_ms = math.max(tonumber(h[4] or '0'), tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'claimed_until', until_ms)
redis.call('ZADD', KEYS[2], until_ms, ARGV[1])
return until_ms
"""

RENEW_SCRIPT = """
-- While a request is on its way: keep the caller's lease (token T) until at least L.
-- KEYS: 1 entry hash, 2 due zset
-- ARGV: 1 member, 2 claim token, 3 lease end wanted (ms)
-- Returns: the lease end (ms), or 0 when the claim is no longer the caller's.
local h = redis.call('HMGET', KEYS[1], 'claim', 'claimed_until')
if h[1] ~= ARGV[2] then return 0 end
local until_ms = math.max(tonumber(h[2] or '0'), tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'claimed_until', until_ms)
redis.call('ZADD', KEYS[2], until_ms, ARGV[1])
return until_ms
"""

DONE_SCRIPT = """
-- The tool accepted revision R. Done unless a newer revision arrived meanwhile: then it is due now.
-- Only the claim's holder (token T) reports: a sender that lost its claim changes nothing.
-- KEYS: 1 entry hash, 2 due zset
-- ARGV: 1 member, 2 revision sent, 3 now (ms), 4 TTL (s) of a done entry, 5 missed targets sent,
--       6 claim token
-- Returns: 1 done, 0 a newer revision is pending, -1 the claim is no longer the caller's.
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[6] then return -1 end
redis.call('HSET', KEYS[1], 'claimed_until', 0, 'claim', '', 'sent_rev', ARGV[2],
  'sent_missed', ARGV[5])
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[2] then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'error', '')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

FAIL_SCRIPT = """
-- Revision R failed: retry after a back-off, or dead-letter it after the source's retries.
-- A newer revision that arrived meanwhile starts afresh, due now. Only the claim's holder
-- (token T) reports: a sender that lost its claim changes nothing.
-- KEYS: 1 entry hash, 2 due zset, 3 dead zset
-- ARGV: 1 member, 2 revision tried, 3 now (ms), 4 retries allowed, 5 first back-off (ms),
--       6 longest back-off (ms), 7 error text, 8 claim token
-- Returns: {'retry', due ms} or {'dead', attempts} or {'newer', 0} or {'lost', 0}.
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[8] then return {'lost', 0} end
redis.call('HSET', KEYS[1], 'claimed_until', 0, 'claim', '', 'error', ARGV[7])
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[2] then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return {'newer', 0}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'state', 'dead')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
  return {'dead', attempts}
end
local wait = math.min(tonumber(ARGV[5]) * 2 ^ (attempts - 1), tonumber(ARGV[6]))
local at = tonumber(ARGV[3]) + math.floor(wait)
redis.call('ZADD', KEYS[2], at, ARGV[1])
return {'retry', at}
"""

_DECISION = msgspec.json.Decoder(Decision)


def _ms(moment: datetime | float) -> int:
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1000)
    return int(moment * 1000)


class Revision(NamedTuple):
    """Which decision of a ticket is newer: the item's id (ids sort by time), then its
    ``usm_rev``, which every stored decision raises by one."""

    item: str
    rev: int


class Claimed(msgspec.Struct, frozen=True):
    """One claimed entry: the ticket, the revision and the decision to write."""

    member: str
    rev: str
    decision: Decision
    decided_ms: int
    attempts: int
    token: str = ""
    """The claim's token: the entry carries it while the claim is the caller's."""

    @property
    def source(self) -> str:
        return keys.split_ref(self.member)[0]

    @property
    def ticket_id(self) -> str:
        return keys.split_ref(self.member)[1]


class Outbox:
    """The outbox on one Redis connection."""

    def __init__(self, conn: redis.Redis, done_ttl: int = 7 * 86400) -> None:
        self.conn = conn
        self.done_ttl = done_ttl
        self._submit = conn.register_script(SUBMIT_SCRIPT)
        self._claim = conn.register_script(CLAIM_SCRIPT)
        self._check = conn.register_script(CHECK_SCRIPT)
        self._renew = conn.register_script(RENEW_SCRIPT)
        self._done = conn.register_script(DONE_SCRIPT)
        self._fail = conn.register_script(FAIL_SCRIPT)

    def submit(
        self,
        source: str,
        ticket_id: str,
        decision: Decision,
        decided: datetime,
        revision: Revision | None,
    ) -> int:
        """Queue ``decision`` (the item's decision at ``revision``; None: the ticket has no item)
        for the ticket; 0 when a later decision is already queued or sent."""
        member = keys.ref(source, ticket_id)
        item, rev_in = revision if revision is not None else ("", 0)
        entry = keys.entry_key(member)
        rev = self._submit(
            keys=[
                entry,
                keys.DUE,
                keys.DEAD,
                item_keys.idem_key(source, ticket_id),
                item_keys.job_key(item) if item else entry,
            ],
            args=[
                member,
                msgspec.json.encode(decision),
                _ms(decided),
                _ms(time.time()),
                item,
                rev_in,
            ],
        )
        if not rev:
            record_writeback(source, WriteBackOutcome.STALE)
        return int(rev)

    def claim(self, now: float, lease: float, limit: int = 50) -> list[Claimed]:
        """Up to ``limit`` due entries, each leased to the caller for ``lease`` seconds."""
        token = secrets.token_hex(8)
        flat = self._claim(
            keys=[keys.DUE], args=[_ms(now), _ms(lease), limit, keys.ENTRY_PREFIX, token]
        )
        return [
            Claimed(
                member=flat[i].decode(),
                rev=flat[i + 1].decode(),
                decision=_DECISION.decode(flat[i + 2]),
                decided_ms=int(flat[i + 3]),
                attempts=int(flat[i + 4]),
                token=token,
            )
            for i in range(0, len(flat), 5)
        ]

    def still_newest(self, entry: Claimed, now: float, hold: float) -> bool:
        """True when the claimed revision is still the ticket's newest and the claim still the
        caller's; its lease then lasts at least ``hold`` seconds from ``now``. Otherwise the
        caller sends nothing (a newer revision is made due)."""
        return bool(
            self._check(
                keys=[keys.entry_key(entry.member), keys.DUE],
                args=[entry.member, entry.rev, entry.token, _ms(now), _ms(now + hold)],
            )
        )

    def renew(self, entry: Claimed, now: float, hold: float) -> bool:
        """Keep the caller's lease for at least ``hold`` seconds from ``now``; False when the
        claim is no longer the caller's."""
        return bool(
            self._renew(
                keys=[keys.entry_key(entry.member), keys.DUE],
                args=[entry.member, entry.token, _ms(now + hold)],
            )
        )

    def done(self, entry: Claimed, now: float, missed: str = "") -> bool:
        """Mark the entry's revision written (with the missed targets it showed, for the target
        watch); False when a newer one is pending or the claim is no longer the caller's."""
        done = self._done(
            keys=[keys.entry_key(entry.member), keys.DUE],
            args=[entry.member, entry.rev, _ms(now), self.done_ttl, missed, entry.token],
        )
        return int(done) == 1

    def fail(self, entry: Claimed, now: float, source: Source | None, error: str) -> str:
        """Record a failed attempt; ``retry``, ``dead``, ``newer`` (a newer revision waits) or
        ``lost`` (the claim is no longer the caller's: nothing recorded)."""
        wb = source.writeback if source is not None else None
        retries = wb.retries if wb is not None else 0
        backoff = wb.backoff if wb is not None else 1.0
        outcome, _ = self._fail(
            keys=[keys.entry_key(entry.member), keys.DUE, keys.DEAD],
            args=[
                entry.member,
                entry.rev,
                _ms(now),
                retries,
                _ms(backoff),
                MAX_BACKOFF_MS,
                error[:500],
                entry.token,
            ],
        )
        return str(outcome.decode())

    def pending(self) -> tuple[int, float | None]:
        """Entries waiting (due or claimed) and the oldest one's due time (epoch s)."""
        count = int(self.conn.zcard(keys.DUE))  # type: ignore[arg-type]
        first = self.conn.zrange(keys.DUE, 0, 0, withscores=True)
        oldest = float(first[0][1]) / 1000 if first else None  # type: ignore[index]
        return count, oldest

    def dead(self, limit: int = 100) -> list[str]:
        """Dead-lettered tickets (``source:ticket``), oldest first."""
        return [m.decode() for m in self.conn.zrange(keys.DEAD, 0, limit - 1)]  # type: ignore[union-attr]

    def requeue_dead(self, member: str, now: float) -> bool:
        """Give a dead-lettered ticket a fresh set of attempts, due now."""
        key = keys.entry_key(member)
        if not self.conn.zrem(keys.DEAD, member):
            return False
        self.conn.hset(key, mapping={"state": "pending", "attempts": 0, "claimed_until": 0})
        self.conn.zadd(keys.DUE, {member: _ms(now)})
        return True


Transport = Callable[[HttpRequest, float], tuple[int, bytes]]
"""Sends one request with a timeout (seconds); returns the HTTP status and the answer's body
(raises on no answer)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is a failed attempt: never re-send a ticket update elsewhere


_OPENER = urllib.request.build_opener(_NoRedirect())
_MAX_ANSWER = 1 << 20
"""Bytes of a tool's answer read at most (only session tokens are taken from answers)."""


def send(request: HttpRequest, timeout: float) -> tuple[int, bytes]:
    """One request on the wire (stdlib, no redirects); the HTTP status and the answer's body."""
    req = urllib.request.Request(
        request.url, data=request.body or None, headers=request.headers, method=request.method
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read(_MAX_ANSWER))
    except urllib.error.HTTPError as exc:
        return int(exc.code), b""


@dataclass
class Sender:
    """Delivers due outbox entries with the adapters of the table set in force."""

    outbox: Outbox
    tables: Callable[[], TableSet]
    """The table set in force now (its sources give adapter, URL and retry settings)."""
    transport: Transport = send
    lease: float = 60.0
    """Seconds a claim lasts until its first request: each request then extends it (see
    :meth:`_hold`)."""
    margin: float = LEASE_MARGIN
    """Seconds a request's lease outlasts its timeout."""
    items: ItemStore | None = None
    """The items, to work out the targets a decision has missed when it is sent (tools that
    show them); None: that field is left alone."""

    def run_once(self, limit: int = 50) -> int:
        """Claim and deliver what is due; returns how many entries were attempted."""
        now = time.time()
        claimed = self.outbox.claim(now, self.lease, limit)
        sources = {s.name: s for s in self.tables().sources.source}
        for entry in claimed:
            self._deliver(entry, sources.get(entry.source))
        return len(claimed)

    def _deliver(self, entry: Claimed, source: Source | None) -> None:
        if source is None or source.writeback is None:
            error = f"source '{entry.source}' has no write-back in the tables in force"
            self._failed(entry, source, error)
            return
        wb = source.writeback
        token = secrets_for(source.name).token
        hold = wb.timeout + self.margin  # longer than any request may take: see _hold
        try:
            missed = self._missed(entry, source)
            requests = adapter(wb.adapter).requests(
                entry.ticket_id, entry.decision, wb, token, missed
            )
            variables: dict[str, str] = {}
            try:
                for built in requests:
                    if built.closes:
                        continue  # sent below, whatever happens to the rest
                    # Right before each request: still the newest revision, still our claim.
                    if not self.outbox.still_newest(entry, time.time(), hold):
                        log.info(
                            "write-back of %s revision %s stopped: superseded",
                            entry.member,
                            entry.rev,
                        )
                        record_writeback(source.name, WriteBackOutcome.STALE)
                        return
                    request = fill(built, variables)  # e.g. GLPI's session token
                    with self._hold(entry, hold):
                        status, answer = self.transport(request, wb.timeout)
                    if not 200 <= status < 300:
                        raise OSError(f"{request.method} {request.url} answered {status}")
                    variables.update(capture(request, answer))
            finally:
                if variables:  # a session is open: end it, superseded or failed too
                    self._close(entry, requests, variables, wb.timeout)
        except redis.RedisError:
            raise  # not the tool's failure: the claim falls due again after its lease
        except Exception as exc:  # any failure is an attempt to retry, never a lost entry
            self._failed(entry, source, str(exc))
            return
        now = time.time()
        # False when a newer revision arrived meanwhile (due now) or the claim lapsed.
        self.outbox.done(entry, now, render_missed(missed or ()))
        record_writeback(source.name, WriteBackOutcome.DONE, now - entry.decided_ms / 1000)

    def _close(
        self,
        entry: Claimed,
        requests: list[HttpRequest],
        variables: dict[str, str],
        timeout: float,
    ) -> None:
        """Send the requests that end the session; a failure is logged, never the outcome
        (the tool's session then times out on its side)."""
        for built in requests:
            if not built.closes:
                continue
            request = fill(built, variables)
            try:
                status, _ = self.transport(request, timeout)
            except Exception as exc:  # best effort: the update's outcome stands
                log.warning("write-back of %s: %s failed: %s", entry.member, request.url, exc)
                continue
            if not 200 <= status < 300:
                log.warning("write-back of %s: %s answered %s", entry.member, request.url, status)

    @contextlib.contextmanager
    def _hold(self, entry: Claimed, hold: float) -> Iterator[None]:
        """Keep the entry's lease while a request is on its way, however long it takes.

        The check before the request gave the lease its timeout plus the margin; a request can
        still take longer (its timeout bounds each wait on the socket, not the whole request;
        the process may stall). Until it returns, a newer revision must not be sent by another
        sender, or the older request could reach the tool after it: so the lease is renewed
        every third of ``hold`` until the request returns.
        """
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(hold / 3):
                try:
                    if not self.outbox.renew(entry, time.time(), hold):
                        return
                except redis.RedisError as exc:
                    log.warning("write-back of %s: lease not renewed: %s", entry.member, exc)

        keeper = threading.Thread(target=keep, name="write-back lease", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()

    def _missed(self, entry: Claimed, source: Source) -> tuple[Target, ...] | None:
        """The targets the decision has missed now, judged by the ticket's item (None: the tool
        shows none, or the ticket has no item to judge by)."""
        if self.items is None or not carries_missed(source):
            return None
        found = self.items.find(entry.source, entry.ticket_id)
        if found is None:
            return None
        return item_missed(found, entry.decision, datetime.now(UTC))

    def _failed(self, entry: Claimed, source: Source | None, error: str) -> None:
        outcome = self.outbox.fail(entry, time.time(), source, error)
        name = entry.source
        if outcome == "lost":
            log.info("write-back of %s failed after its claim lapsed: %s", entry.member, error)
        elif outcome == "dead":
            log.error("write-back of %s dead-lettered after its retries: %s", entry.member, error)
            record_writeback(name, WriteBackOutcome.DEAD)
        else:
            log.warning("write-back of %s failed (%s); will retry", entry.member, error)
            record_writeback(name, WriteBackOutcome.FAILED)
