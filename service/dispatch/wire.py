"""The hot-path script calls (enqueue, a worker's finish-and-take) without redis-py's per-call
machinery.

redis-py spends about 30 us of CPU around each command before any byte moves: checking a
connection out of the pool (a lock, a ``poll`` for unread data, connection-count metrics) and
back in, its retry wrapper, operation metrics, and a generic encoder that inspects every argument.
That was more than Redis needed to run the enqueue script itself, and a worker pays it once per
item (docs/benchmarks.md, "Dispatch"). Here the same script call costs about 10 us:

- each :class:`Wire` keeps connections of its own, made as the client's pool makes them (one per
  thread using it at a time; a worker's main loop uses one), instead of checking one out of the
  pool and back in for each call. They are not taken from the pool, so what the client's other
  commands find in it is unchanged; they close when the wire is closed or dropped;
- before each call it makes the check the pool would (``can_read``: unread data, or a connection
  the server closed), and reconnects then, so a Redis restart or failover is followed as before;
- the command is packed here from ``bytes`` (callers encode their constant arguments once).

Everything else stays redis-py's: the connection class (so Sentinel-managed connections still ask
the sentinels where the primary is, and a ``READONLY`` answer still drops the connection), the
socket timeouts, the RESP parser and its error classes. Like every client of this service, a call
is never re-sent after an error (only ``NOSCRIPT``: the script did not run). On a connection
whose policy asks replicas to confirm writes (:mod:`service.dispatch.replicas`) the ``WAIT`` is
sent behind the script in the same write, as :class:`~service.dispatch.replicas.ConfirmedScript`
does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError, ResponseError

from service.dispatch.replicas import wait_policy
from service.errors import ReplicasUnconfirmed

__all__ = ["Arg", "Wire", "bulk", "bulks"]

Arg = bytes | str | int | float
"""A script argument: encoded as redis-py encodes it (UTF-8, ``repr`` of a float)."""


def bulk(value: Arg) -> bytes:
    """One argument as a RESP bulk string, ready to be sent."""
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, int):
        value = b"%d" % value
    elif isinstance(value, float):
        value = repr(value).encode()
    return b"$%d\r\n%s\r\n" % (len(value), value)


def bulks(values: Sequence[Arg]) -> bytes:
    """Several arguments packed with :func:`bulk`, in order (a caller's constant ones, once)."""
    return b"".join(bulk(v) for v in values)


class Wire:
    """Script calls on connections held for this client (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._free: list[Any] = []
        self._pid = os.getpid()

    def _checkout(self) -> Any:
        if self._pid != os.getpid():
            # A forked child must not share its parent's sockets (redis-py's pool resets too).
            self._free, self._pid = [], os.getpid()
        conn: Any
        try:
            conn = self._free.pop()
        except IndexError:
            conn = self.client.connection_pool.make_connection()
            # Connected here, as the pool connects what it hands out: a Sentinel-managed
            # connection finds the primary in its connect(), which sending alone would skip.
            try:
                conn.connect()
            except BaseException:
                self._free.append(conn)
                raise
            return conn
        # What the pool checks when a connection leaves it: a reply nobody read, or a socket
        # the server closed (a restart, a failover, an idle timeout). Either way, start afresh.
        # (can_read() connects a connection that has no socket, through its own connect().)
        try:
            try:
                stale = conn.can_read()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                stale = True
            if stale:
                conn.disconnect()
                conn.connect()
        except BaseException:
            conn.disconnect()
            self._free.append(conn)
            raise
        return conn

    def close(self) -> None:
        """Close the connections this wire holds (a later call opens a new one)."""
        while self._free:
            self._free.pop().disconnect()

    def run(self, script: Script, count: int, args: Sequence[bytes]) -> Any:
        """Run ``script`` (registered on this client) with ``count`` arguments: what EVALSHA
        takes after the sha (the key count, the keys, the script's arguments), each packed with
        :func:`bulk` and given in ``args``, one or several to an element.

        Raises:
            ReplicasUnconfirmed: the connection's policy asks for replicas and too few
                confirmed in time (the script's answer is in the exception).
        """
        need, wait = 0, b""
        policy = wait_policy(self.client)
        if policy is not None and (need := policy.required(self.client)):
            wait = b"*3\r\n$4\r\nWAIT\r\n" + bulk(need) + bulk(policy.timeout_ms)
        try:
            return self._send(script, count, args, need, wait)
        except NoScriptError:
            # Not run: Redis lost its script cache (a restart, SCRIPT FLUSH). Load and run.
            script.sha = self.client.script_load(script.script)
            return self._send(script, count, args, need, wait)

    def _send(
        self, script: Script, count: int, args: Sequence[bytes], need: int, wait: bytes
    ) -> Any:
        packed = b"".join(
            (b"*%d\r\n$7\r\nEVALSHA\r\n" % (count + 2), bulk(script.sha), *args, wait)
        )
        conn = self._checkout()
        try:
            conn.send_packed_command([packed])
            error: ResponseError | None = None
            try:
                result = conn.read_response()
            except ResponseError as exc:
                error, result = exc, None
            acked = 0
            if need:
                # Read even after an error reply, so the connection goes back with nothing
                # left unread.
                acked = int(conn.read_response())
        except BaseException:
            # A timeout, a lost connection, an interrupt: a reply may be on its way or half
            # read. Drop the socket (a Sentinel-managed connection does not on its own), as
            # redis-py's client does; the next call connects afresh.
            conn.disconnect()
            raise
        finally:
            self._free.append(conn)
        if error is not None:
            raise error
        if acked < need:
            from service.metrics.replication import WAIT_TIMEOUTS

            WAIT_TIMEOUTS.inc()
            raise ReplicasUnconfirmed(need, acked, result)
        return result
