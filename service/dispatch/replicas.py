"""Acknowledge only what survives a failover: replicas confirm an item write before we answer.

Redis replicates asynchronously: a primary that dies right after a write can take it along,
and Sentinel then promotes a replica that never saw it. So the API's writes are sent as
``EVALSHA …; WAIT n timeout`` in one pipeline (``WAIT`` covers the writes of *its own*
connection, hence the one pipeline), and fewer than ``n`` confirmations within the timeout
answer 503: the write may have happened, the caller retries, and the item writes are idempotent.

The policy hangs on the connection (:func:`require_replicas`); every dispatch script registered
on it (:func:`service.dispatch.scripts.scripts_for`) runs through :class:`ConfirmedScript`, so the
store and lease code call their scripts as before. A worker's connection carries no policy: a
worker write lost in a failover means the item is handed out again (at-least-once), never lost.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from service.errors import ReplicasUnconfirmed

__all__ = ["ConfirmedScript", "ReplicaWait", "require_replicas", "wait_policy"]

log = logging.getLogger("usm.dispatch")

_RECHECK_SECONDS = 30.0
"""How often ``auto`` looks again for replicas while it has seen none."""


@dataclass
class ReplicaWait:
    """How many replicas confirm a write, and how long they have.

    ``replicas`` None is ``auto``: 1 once the primary has been seen with a replica (checked
    again every 30 s until then), 0 before. Once on, it stays on: a primary that lost its
    replicas must refuse, not silently stop confirming (that is the stale-primary case).
    """

    replicas: int | None
    """Replicas that must confirm; None for ``auto``."""
    timeout_ms: int = 1000
    """How long ``WAIT`` blocks for them, in milliseconds."""
    _seen: int = field(default=0, repr=False)
    _next_check: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, replicas: str, timeout_seconds: float, sentinel: bool) -> ReplicaWait:
        """From ``USM_REDIS_WAIT_REPLICAS`` (``auto`` or a number); Sentinel makes ``auto`` 1."""
        ms = max(1, int(timeout_seconds * 1000))
        if replicas == "auto":
            return cls(1 if sentinel else None, ms)
        return cls(int(replicas), ms)

    def required(self, conn: redis.Redis) -> int:
        """Confirmations the next write needs."""
        if self.replicas is not None:
            return self.replicas
        if self._seen or time.monotonic() < self._next_check:
            return self._seen
        with self._lock:
            self._next_check = time.monotonic() + _RECHECK_SECONDS
            info: dict[str, Any] = conn.info("replication")
            if int(info.get("connected_slaves", 0)) > 0:
                log.info("replicas found: item writes now wait for 1 replica to confirm")
                self._seen = 1
        return self._seen


_POLICY: weakref.WeakKeyDictionary[redis.Redis, ReplicaWait] = weakref.WeakKeyDictionary()


def require_replicas(conn: redis.Redis, wait: ReplicaWait) -> None:
    """Make every dispatch script run on ``conn`` wait for ``wait`` before it returns."""
    _POLICY[conn] = wait


def wait_policy(conn: redis.Redis) -> ReplicaWait | None:
    """The policy set on ``conn``, if any."""
    return _POLICY.get(conn)


class ConfirmedScript(Script):
    """A registered script that, on a connection with a policy, returns once replicas have it.

    Never re-sent after an error: only ``NOSCRIPT`` (the script did not run) loads and runs it
    again.
    """

    def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        conn = client if client is not None else self.registered_client
        if not isinstance(conn, redis.Redis) or (wait := _POLICY.get(conn)) is None:
            return super().__call__(keys, args, client)
        need = wait.required(conn)
        if need == 0:
            return super().__call__(keys, args, client)
        flat = (*(keys or ()), *(args or ()))
        try:
            result, acked = self._run(conn, len(keys or ()), flat, need, wait.timeout_ms)
        except NoScriptError:
            self.sha = conn.script_load(self.script)
            result, acked = self._run(conn, len(keys or ()), flat, need, wait.timeout_ms)
        if acked < need:
            from service.metrics.replication import WAIT_TIMEOUTS

            WAIT_TIMEOUTS.inc()
            raise ReplicasUnconfirmed(need, acked, result)
        return result

    def _run(
        self, conn: redis.Redis, nkeys: int, flat: tuple[Any, ...], need: int, timeout_ms: int
    ) -> tuple[Any, int]:
        with conn.pipeline(transaction=False) as pipe:
            pipe.evalsha(self.sha, nkeys, *flat)
            pipe.execute_command("WAIT", need, timeout_ms)  # type: ignore[no-untyped-call]
            result, acked = pipe.execute()
        return result, int(acked)
