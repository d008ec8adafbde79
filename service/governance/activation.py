"""Activation: notice when another table set comes into force and re-score queued work once.

A set comes into force by a reload or simply because its ``effective_from`` arrived. Each API
replica checks every second; the one that wins a Redis ``SET NX`` on the activation's marker runs
the re-score, then marks it done, so N replicas re-score once. A replica that dies mid-way leaves
only a lock that expires, and another takes over.

The lock is fenced: before every write step the re-score renews it if it still holds the
replica's own value, and stops (:class:`LockLost`) once it does not, e.g. after a pause longer
than the lock's life let another replica take over. The done marker replaces the lock only if
it is still ours, so a late replica can neither run alongside the new owner nor mark its work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import msgspec
import redis

from service.core.base import Base
from service.core.scoring import Scorer
from service.dispatch.scripts import scripts_for
from service.files.store import TableStore
from service.governance.keys import activation_key
from service.metrics.governance import TABLE_ACTIVATIONS
from service.threads import run_to_end

__all__ = ["Activation", "ActivationWatcher", "LockLost", "Rescore", "default_rescore"]

log = logging.getLogger("usm.governance.activation")

DONE_TTL = 90 * 86400
"""Seconds a done-marker lives: far longer than any roll-out of one version."""


class Rescore(Protocol):
    def __call__(
        self, conn: redis.Redis, scorer: Scorer, fence: Callable[[], None] | None = None
    ) -> int: ...


class LockLost(Exception):
    """The activation lock expired or another replica holds it: this replica must stop."""


class Activation(Base):
    """The record of one handled activation, stored as the marker's value."""

    version: str
    hash: str
    state: str
    """``running`` while a replica re-scores; ``done`` or ``skipped`` once handled."""
    by: str
    """Replica (host:pid) that handled it."""
    at: datetime
    moved: int = 0
    """Queued items whose priority or team changed and that were moved."""


def default_rescore() -> Rescore:
    """The dispatch layer's ``rescore_all``: re-score waiting items, move the changed ones."""
    from service.dispatch.rescore import rescore_all

    fn: Rescore = rescore_all
    return fn


class ActivationWatcher:
    """Runs the re-score for every table set that comes into force, once across all replicas."""

    def __init__(
        self,
        store: TableStore,
        conn: redis.Redis | None,
        rescore: Rescore | None,
        lock_seconds: int = 600,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.conn = conn
        self.rescore = rescore
        self.lock_seconds = lock_seconds
        self.clock = clock
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.handled: set[tuple[str, str]] = set()
        """Activations this replica knows to be handled (by it or another); no Redis call then."""

    def check(self) -> Activation | None:
        """Handle the set in force now if nobody has; returns what this replica did, if anything.

        Blocking (Redis and the re-score): run it in a thread.
        """
        versions = self.store.versions  # one snapshot: the set and its scorer belong together
        active = versions.active(self.clock())
        ident = (active.version, active.hash)
        if ident in self.handled or self.conn is None:
            return None
        key = activation_key(*ident)
        seen = self.conn.get(key)
        if seen is not None:
            try:
                running = msgspec.json.decode(seen, type=Activation).state == "running"
            except msgspec.DecodeError:
                running = False  # written by another release: someone handled it
            if not running:
                self.handled.add(ident)
            return None  # handled, or another replica is on it (its lock expires if it died)
        mine = msgspec.json.encode(self._record(ident, "running"))
        if not self.conn.set(key, mine, nx=True, ex=self.lock_seconds):
            return None
        scripts = scripts_for(self.conn)
        conn = self.conn

        def fence() -> None:
            if not scripts.lock_renew(keys=[key], args=[mine, self.lock_seconds * 1000]):
                raise LockLost(f"activation lock {key} is no longer this replica's")

        try:
            if not active.tables.set.rescore_on_activate:
                done = self._record(ident, "skipped")
                log.info("table set %s %s in force; re-score switched off", *ident)
            elif self.rescore is None:
                # Let a replica (or a later check) with dispatch do it.
                scripts.lock_replace(keys=[key], args=[mine, "", 0])
                log.warning("table set %s %s in force; no re-score available yet", *ident)
                return None
            else:
                started = time.monotonic()
                moved = self.rescore(conn, versions.scorers[active.version], fence)
                done = self._record(ident, "done", moved)
                log.info(
                    "table set %s %s in force; re-scored queued items, %d moved in %.2f s",
                    *ident,
                    moved,
                    time.monotonic() - started,
                )
        except LockLost:
            log.error(
                "table set %s %s: re-score stopped, another replica took the activation over "
                "(this one held the lock past its %d s)",
                *ident,
                self.lock_seconds,
            )
            return None
        except Exception:
            scripts.lock_replace(keys=[key], args=[mine, "", 0])
            raise
        if not scripts.lock_replace(keys=[key], args=[mine, msgspec.json.encode(done), DONE_TTL]):
            log.error(
                "table set %s %s: re-score finished after the lock passed to another replica; "
                "not marked done by this one",
                *ident,
            )
            return None
        self.handled.add(ident)
        TABLE_ACTIVATIONS.labels(done.state).inc()
        return done

    async def run(self, interval: float) -> None:
        """Check now, then every ``interval`` seconds until cancelled; errors are logged."""
        failing = False
        while True:
            try:
                await run_to_end(self.check)
                if failing:
                    log.info("activation check works again")
                failing = False
            except redis.RedisError as exc:
                # Once per outage, not once a second: scoring goes on without Redis.
                if not failing:
                    log.warning(
                        "activation check failed (%s); retrying every %.1f s", exc, interval
                    )
                failing = True
            except Exception:
                log.exception("activation check failed; retrying in %.1f s", interval)
            await asyncio.sleep(interval)

    def _record(self, ident: tuple[str, str], state: str, moved: int = 0) -> Activation:
        return Activation(
            version=ident[0],
            hash=ident[1],
            state=state,
            by=self.replica,
            at=datetime.now(UTC),
            moved=moved,
        )
