"""The worker loop: lease the next item (strict priority), run the handler, finish the lease.

One process handles one item at a time, in the main thread, without forking (like RQ's
``SimpleWorker``). A background thread keeps the worker's presence and the current item's
lease alive and, every few seconds, re-delivers items whose holders died (the reaper).

Idle workers block on their teams' wake lists (``BLPOP``), which every enqueue feeds, so a new
item is picked up within milliseconds without polling.

Signals: the first SIGTERM/SIGINT/SIGHUP lets the current item finish, then the worker exits; a
second one interrupts the handler and puts the item back at the front of its queue. A worker
started by ``usm serve`` also stops when that parent is gone (``parent_pid``), should the kernel's
parent-death signal not have reached it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import msgspec
import redis
from prometheus_client import Counter, Histogram
from redis.exceptions import ExecAbortError
from rq.queue import Queue as RQQueue
from rq.worker import Worker as RQWorker

from service.core.calls import Call
from service.core.decision import Decision
from service.core.tables import TableSet
from service.dispatch import keys
from service.dispatch.config import DispatchConfig
from service.dispatch.encoding import check_hash_encoding
from service.dispatch.items import ItemState, now_ms
from service.dispatch.leases import (
    SUSPENDED,
    Leased,
    Outcome,
    Take,
    Taker,
    expire_registries,
    extend,
    finish,
    reap,
)
from service.dispatch.store import hand_out_order
from service.metrics.instruments import ITEM_EVENTS, ITEM_HANDLING, ITEM_WAIT, ItemEvent, record
from worker.handlers import Delivery, Handler, Interrupted, build_handler

__all__ = ["Worker", "worker_teams"]

log = logging.getLogger("usm.worker")

_PAYLOAD = msgspec.json.Decoder(dict[str, object] | None)
_CALL = msgspec.json.Decoder(Call)
_DECISION = msgspec.json.Decoder(Decision)
_EXPIRE_EVERY = 600.0
"""Seconds between clean-ups of expired registry entries (RQ's maintenance interval)."""
_IDLE_BLOCK = 1.0
"""Longest a BLPOP waits, so stop requests are seen within a second."""


_REFUSALS = re.compile(r"\b(MISCONF|READONLY|OOM|NOREPLICAS|LOADING|MASTERDOWN)\b")
"""Answers of a Redis that is there but cannot take writes for now: a full disk (MISCONF), a
failover (READONLY), memory (OOM), missing replicas, a restart replaying its data."""


def _unavailable(exc: redis.RedisError) -> bool:
    """Redis is away or refuses writes for now: wait and retry, as for a lost connection.

    A worker that died on these would only be restarted into the same answer, again and again
    (a full data disk made every worker of ``usm serve`` crash-loop).
    """
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | ExecAbortError):
        return True
    return isinstance(exc, redis.ResponseError) and bool(_REFUSALS.search(str(exc)))


def worker_teams(tables: TableSet) -> list[str]:
    """Teams that get workers: every team in push mode."""
    return [t.name for t in tables.teams.team if t.mode == "push"]


@dataclass(frozen=True)
class _Instruments:
    """The metric series a worker records for every item of one team and priority, looked up
    once (a label lookup costs more than the increment)."""

    started: Counter
    completed: Counter
    wait: Histogram
    handling: Histogram


class _NotTaken:
    """Nothing was taken with the last finish: the loop asks for the next item itself."""


_NOT_TAKEN = _NotTaken()


class Worker:
    """Handles the items of one or more teams, highest priority first."""

    def __init__(
        self,
        conn: redis.Redis,
        tables: TableSet,
        teams: Sequence[str],
        config: DispatchConfig | None = None,
        name: str | None = None,
        handlers: Mapping[str, Handler] | None = None,
        tables_source: Callable[[], TableSet] | None = None,
        refresh_seconds: float = 5.0,
        parent_pid: int | None = None,
        announce_tables: bool = True,
    ) -> None:
        known = {t.name: t for t in tables.teams.team}
        for team in teams:
            if team not in known:
                raise ValueError(f"unknown team '{team}'; allowed: {', '.join(known)}")
            if known[team].mode == "pull":
                raise ValueError(
                    f"team '{team}' is in pull mode: people claim its items over HTTP, "
                    "it gets no workers"
                )
        if not teams:
            raise ValueError(f"no team given; allowed: {', '.join(worker_teams(tables))}")
        self.conn = conn
        self.config = config or DispatchConfig()
        self.teams = list(teams)
        self.stop_event = threading.Event()
        given = dict(handlers or {})
        self.handlers = {
            t: given.get(t) or build_handler(known[t], self.stop_event, self.config.python_handlers)
            for t in teams
        }
        self.queue_names = hand_out_order(tables, self.teams)
        self.wake_keys = [keys.wake_key(t) for t in self.teams]
        self._tables = tables
        self._given_handlers = given
        self._tables_source = tables_source
        self._refresh_seconds = refresh_seconds
        self._parent_pid = parent_pid
        self._table_log_level = logging.INFO if announce_tables else logging.DEBUG
        self._next_refresh = time.monotonic() + refresh_seconds
        self.name = name or f"usm-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.rq_key = keys.worker_key(self.name)
        self.current: Leased | None = None
        self._taken: Taker | None = None
        self._metrics: dict[tuple[str, str], _Instruments] = {}
        self.handled = 0
        self._signals = 0
        self._last_signal = 0
        self._max_items: int | None = None
        self._beat_stop = threading.Event()
        # prepare_for_work=False: RQ would talk to Redis here (CLIENT SETNAME); a worker must
        # start even while Redis is away, and wait for it in run().
        self._rq = RQWorker(
            self.queue_names,
            connection=conn,
            name=self.name,
            worker_ttl=max(10, int(self.config.lease_seconds)),
            prepare_for_work=False,
        )
        self._rq.hostname = socket.gethostname()
        self._rq.pid = os.getpid()

    # -- life cycle -------------------------------------------------------------------------

    def run(self, burst: bool = False, max_items: int | None = None) -> int:
        """Work until stopped (or, with ``burst``, until the queues are empty). Items handled."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)
        if not self._register():
            return 0
        beat = threading.Thread(target=self._beat_loop, name="usm-heartbeat", daemon=True)
        beat.start()
        log.info("worker %s: teams %s, queues %s", self.name, self.teams, self.queue_names)
        try:
            self._loop(burst, max_items)
        finally:
            self._beat_stop.set()
            beat.join(timeout=5)
            self._leave()
        return self.handled

    def _register(self) -> bool:
        """Announce this worker (for `rq info` and stats), waiting for Redis if it is away."""
        delay = 0.1
        while not self.stop_event.is_set():
            try:
                self._rq.register_birth()  # type: ignore[no-untyped-call]
                self._rq.set_state("idle")
                self._beat()
                check_hash_encoding(self.conn)
                return True
            except redis.RedisError as exc:
                if not _unavailable(exc):
                    raise
                log.warning(
                    "worker %s: redis unavailable (%s); retry in %.1fs", self.name, exc, delay
                )
                self.stop_event.wait(delay)
                delay = min(delay * 2, 5.0)
        return False

    def stop(self) -> None:
        """Ask the loop to exit after the current item."""
        self.stop_event.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._last_signal = signum
        self.stop_event.set()
        if self._signals == 1:
            log.info("worker %s: stopping after the current item", self.name)
        elif self.current is not None:
            raise Interrupted(f"signal {signum} while handling {self.current.id}")

    def _leave(self) -> None:
        try:
            with self.conn.pipeline(transaction=False) as pipe:
                for team in self.teams:
                    pipe.zrem(keys.workers_key(team), self.name)
                pipe.execute()
            self._rq.register_death()  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            log.warning("worker %s: could not unregister: %s", self.name, exc)

    # -- main loop --------------------------------------------------------------------------

    def _taker(self) -> Taker:
        """This worker's hand-out calls, for what it looks for under the table set in force."""
        if self._taken is None or self._taken.take.queue_names is not self.queue_names:
            take = Take(
                self.queue_names,
                self.wake_keys,
                self.name,
                int(self.config.lease_seconds * 1000),
                ItemState.STARTED,
                worker_key=self.rq_key,
                with_history=True,
            )
            self._taken = Taker(self.conn, take)
        return self._taken

    def _loop(self, burst: bool, max_items: int | None) -> None:
        self._max_items = max_items
        backoff = 0.1
        suspended = False
        # Marked busy by the pop that found an item, the worker stays so while items keep
        # coming; the first pop that finds none marks it idle (for `rq info`).
        busy = False
        # What the call that finished the last item took next (it leases the next item in the
        # same call), or _NOT_TAKEN. An item taken is in hand: it is handled even when a stop
        # was asked for meanwhile, as the item in hand always is.
        ahead: Leased | str | _NotTaken | None = _NOT_TAKEN
        while isinstance(ahead, Leased) or not self.stop_event.is_set():
            in_hand = isinstance(ahead, Leased)
            if not in_hand and max_items is not None and self.handled >= max_items:
                return
            try:
                if isinstance(ahead, _NotTaken):
                    self._refresh()
                    got = self._taker().take_next(now_ms(), mark_idle=busy)
                else:
                    got, ahead = ahead, _NOT_TAKEN
                if got == SUSPENDED:
                    if burst:
                        log.info("worker %s: suspended in burst mode, exiting", self.name)
                        return
                    if not suspended:
                        log.info("worker %s: suspended; `rq resume` resumes", self.name)
                        self._rq.set_state("suspended")
                        suspended = True
                    self.stop_event.wait(0.2)
                    continue
                if suspended:
                    self._rq.set_state("idle")
                    suspended = False
                busy = got is not None
                if got is None:
                    if burst:
                        return
                    self.conn.blpop(self.wake_keys, timeout=_IDLE_BLOCK)
                    continue
                backoff = 0.1
                assert isinstance(got, Leased)
                ahead = self._handle(got)
            except redis.RedisError as exc:
                if not _unavailable(exc):
                    raise
                log.warning(
                    "worker %s: redis unavailable (%s); retry in %.1fs", self.name, exc, backoff
                )
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _refresh(self) -> None:
        """Follow the table set in force: handlers and priority queues change without a restart.

        Runs between items, so an item is always handled by the set it was leased under. A team
        that left the set or turned to pull mode is dropped; if none would remain, the worker
        keeps what it has and says so.
        """
        if self._tables_source is None or time.monotonic() < self._next_refresh:
            return
        self._next_refresh = time.monotonic() + self._refresh_seconds
        try:
            tables = self._tables_source()
        except Exception:
            log.exception(
                "worker %s: could not read the table set; keeping the current one", self.name
            )
            return
        if tables is self._tables or tables == self._tables:
            self._tables = tables
            return
        known = {t.name: t for t in tables.teams.team}
        teams = [t for t in self.teams if t in known and known[t].mode == "push"]
        if not teams:
            log.error(
                "worker %s: none of its teams %s is a push team in table set %s; keeping the "
                "previous set",
                self.name,
                self.teams,
                tables.version,
            )
            return
        for gone in set(self.teams) - set(teams):
            log.warning("worker %s: team '%s' no longer has workers; dropped", self.name, gone)
            self.conn.zrem(keys.workers_key(gone), self.name)
        self.teams = teams
        self.handlers = {
            t: self._given_handlers.get(t)
            or build_handler(known[t], self.stop_event, self.config.python_handlers)
            for t in teams
        }
        self.queue_names = hand_out_order(tables, teams)
        self.wake_keys = [keys.wake_key(t) for t in teams]
        self._rq.queues = [RQQueue(n, connection=self.conn) for n in self.queue_names]
        self._rq._ordered_queues = self._rq.queues[:]
        self.conn.hset(self.rq_key, "queues", ",".join(self.queue_names))
        self._tables = tables
        log.log(
            self._table_log_level,
            "worker %s: table set %s in force; teams %s, queues %s",
            self.name,
            tables.version,
            self.teams,
            self.queue_names,
        )

    def _handle(self, leased: Leased) -> Leased | str | _NotTaken | None:
        """Run the item's handler and end its lease. When the worker goes on, the same call
        leases the next item, returned here (else ``_NOT_TAKEN``)."""
        team, priority = leased.team, leased.priority
        metrics = self._instruments(team, priority)
        started = time.perf_counter()
        outcome, detail = Outcome.COMPLETED, ""
        try:
            # In hand from here: a second stop signal raises Interrupted, which only this try
            # catches. Both signals may also have come since the hand-out, while nothing was in
            # hand to interrupt; the item goes back all the same.
            self.current = leased
            if self._signals > 1:
                raise Interrupted(f"signal {self._last_signal} while handling {leased.id}")
            metrics.started.inc()
            metrics.wait.observe(max(0.0, (now_ms() - leased.queued_ms) / 1000))
            delivery = Delivery(
                id=leased.id,
                team=team,
                priority=priority,
                source=leased.source,
                external_id=leased.external_id,
                call=_CALL.decode(leased.call_json),
                decision=_DECISION.decode(leased.decision_json),
                payload=_PAYLOAD.decode(leased.payload),
                delivery=leased.deliveries,
            )
            handler = self.handlers.get(team)
            if handler is None:
                raise LookupError(f"worker {self.name} has no handler for team '{team}'")
            handler(delivery)
        except Interrupted as exc:
            outcome, detail = Outcome.RELEASED, f"worker stopping: {exc}"
        except Exception as exc:
            outcome, detail = Outcome.DEAD, f"{type(exc).__name__}: {exc}"
            log.warning("item %s failed: %s", leased.id, detail)
        finally:
            self.current = None
        elapsed = time.perf_counter() - started
        taken: Leased | str | _NotTaken | None = _NOT_TAKEN
        done: bool | None = None
        more = self._max_items is None or self.handled + 1 < self._max_items
        if more and not self.stop_event.is_set() and outcome is not Outcome.RELEASED:
            try:
                self._refresh()
                done, taken = self._taker().finish_and_take(
                    leased, outcome, now_ms(), self._ttl(outcome), detail
                )
            except redis.RedisError as exc:
                if not _unavailable(exc):
                    raise
                # Never sent twice: if it ran, the plain finish below finds the lease ended
                # (and an item it took returns to its queue when that lease runs out).
                log.warning("item %s: redis unavailable (%s); finishing alone", leased.id, exc)
        if done is None:
            done = self._finish(leased, outcome, detail)
        if not done:
            log.warning("item %s: lease lost before it finished (%s)", leased.id, outcome.value)
            return taken
        self.handled += 1
        if outcome is Outcome.COMPLETED:
            metrics.completed.inc()
            metrics.handling.observe(elapsed)
        elif outcome is Outcome.DEAD:
            record(ItemEvent.FAILED, team, priority)
            record(ItemEvent.DEAD_LETTERED, team, priority)
        return taken

    def _instruments(self, team: str, priority: str) -> _Instruments:
        found = self._metrics.get((team, priority))
        if found is None:
            found = self._metrics[team, priority] = _Instruments(
                started=ITEM_EVENTS[ItemEvent.STARTED].labels(team, priority),
                completed=ITEM_EVENTS[ItemEvent.COMPLETED].labels(team, priority),
                wait=ITEM_WAIT.labels(team, priority),
                handling=ITEM_HANDLING.labels(team, priority),
            )
        return found

    def _ttl(self, outcome: Outcome) -> int:
        """How long an ended item is kept."""
        return self.config.failure_ttl if outcome is Outcome.DEAD else self.config.result_ttl

    def _finish(self, leased: Leased, outcome: Outcome, detail: str) -> bool:
        """Finish the lease, retrying while Redis is away (until the lease would lapse)."""
        ttl = self._ttl(outcome)
        give_up = time.monotonic() + self.config.lease_seconds
        delay = 0.05
        while True:
            try:
                return finish(
                    self.conn,
                    leased.id,
                    self.name,
                    outcome,
                    now_ms(),
                    ttl,
                    detail,
                    self.rq_key,
                    leased=leased,
                )
            except redis.RedisError as exc:
                if not _unavailable(exc):
                    raise
                if time.monotonic() > give_up:
                    log.error("item %s: could not record %s: %s", leased.id, outcome.value, exc)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- heartbeat and reaper -----------------------------------------------------------------

    def _beat_loop(self) -> None:
        tick = min(self.config.heartbeat_seconds, self.config.reaper_seconds, 1.0)
        next_beat = time.monotonic() + self.config.heartbeat_seconds
        next_reap = next_expire = time.monotonic()
        while not self._beat_stop.wait(tick):
            self._check_parent()
            now = time.monotonic()
            if now >= next_beat:
                self._beat()
                next_beat = now + self.config.heartbeat_seconds
            if now >= next_reap:
                self._reap()
                next_reap = now + self.config.reaper_seconds
            if now >= next_expire:
                with contextlib.suppress(redis.RedisError):
                    expire_registries(self.conn, self.queue_names, time.time())
                next_expire = now + _EXPIRE_EVERY

    def _check_parent(self) -> None:
        """An orphan stops: its ``usm serve`` is gone and a new one starts its own workers."""
        if self._parent_pid is not None and os.getppid() != self._parent_pid:
            if not self.stop_event.is_set():
                log.warning(
                    "worker %s: parent process %d is gone; stopping after the current item",
                    self.name,
                    self._parent_pid,
                )
            self.stop_event.set()

    def _beat(self) -> None:
        """Presence for `usm` stats and `rq info`, and the current item's lease."""
        deadline = now_ms() + int(3 * self.config.heartbeat_seconds * 1000)
        try:
            with self.conn.pipeline(transaction=False) as pipe:
                for team in self.teams:
                    pipe.zadd(keys.workers_key(team), {self.name: deadline})
                self._rq.heartbeat(pipeline=pipe)
                pipe.execute()
            current = self.current
            if current is not None:
                lease = int(self.config.lease_seconds * 1000)
                if not extend(self.conn, current.id, self.name, now_ms(), lease):
                    log.warning("item %s: lease lost while handling", current.id)
        except redis.RedisError as exc:
            log.warning("worker %s: heartbeat failed: %s", self.name, exc)

    def _reap(self) -> None:
        try:
            taken = reap(self.conn, now_ms(), self.config.max_deliveries, self.config.failure_ttl)
        except redis.RedisError as exc:
            log.debug("worker %s: reaper skipped: %s", self.name, exc)
            return
        for r in taken:
            record(ItemEvent.ABANDONED, r.team, r.priority)
            if r.dead:
                record(ItemEvent.DEAD_LETTERED, r.team, r.priority)
            log.warning(
                "item %s: lease expired, %s", r.id, "dead-lettered" if r.dead else "re-queued"
            )
