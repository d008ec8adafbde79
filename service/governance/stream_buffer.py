"""Entries kept in memory and written to a bounded Redis stream in the background.

What the decision log and the source event log share. A request never waits for Redis nor fails
when it is down: it appends to a deque; a background task drains it every ~200 ms and sends up to
``chunk`` entries per call of a Lua script that runs the ``XADD ... MAXLEN ~ N`` inside Redis (the
client packs one argument list instead of one command per entry). Entries are dropped and counted
when the buffer overflows or Redis is down. :func:`read_newest` reads them back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
import redis
import redis.asyncio
from prometheus_client import Counter
from redis.commands.core import AsyncScript

from service.metrics.governance import DropReason
from service.tasks import finish

__all__ = ["StreamBuffer", "read_newest", "text"]

E = TypeVar("E")
T = TypeVar("T")


class StreamBuffer(Generic[E]):
    """Buffers entries in memory and writes them to a Redis stream in the background.

    A subclass names itself for the log (``name``, ``noun``), gives its script, chunk size and
    counters, and turns a chunk of entries into the script's arguments (:meth:`_args`).
    """

    name: ClassVar[str]
    """How log lines name it: ``decision log``."""
    noun: ClassVar[str]
    """What it holds, plural: ``decisions``."""
    script: ClassVar[str]
    """Lua: ``KEYS[1]`` the stream, ``ARGV`` from :meth:`_args`; returns the entries added."""
    chunk: ClassVar[int]
    """Entries per script call: bounds how long one call keeps Redis busy."""
    dropped: ClassVar[Counter]
    """Labelled by :class:`DropReason`."""
    written: ClassVar[Counter | None] = None
    log: ClassVar[logging.Logger]

    def __init__(self, maxlen: int, buffer: int, key: str) -> None:
        self.maxlen = maxlen
        """Entries the stream keeps (approximately; the decision log: decisions, at least); 0
        turns the log off."""
        self.key = key
        self.keys = [key]
        """The script's ``KEYS``: the stream first."""
        self._buf: deque[E] = deque(maxlen=buffer)
        # A full deque drops its oldest silently; the counts tell _take how many went.
        self._appended = 0
        self._taken = 0
        self._overflowed = 0
        self._redis_down = False
        self._registered: tuple[redis.asyncio.Redis, AsyncScript] | None = None

    @property
    def enabled(self) -> bool:
        return self.maxlen > 0

    def pending(self) -> int:
        """Entries waiting for the next flush."""
        return len(self._buf)

    def _add(self, entry: E) -> None:
        """Remember one entry; O(1), never blocks, never raises.

        Safe from handler threads too (``deque.append`` is atomic); only the ``buffer_full``
        drop count may then come out a little low.
        """
        if self.maxlen:
            self._buf.append(entry)
            self._appended += 1

    def _add_many(self, entries: Iterable[E]) -> None:
        if self.maxlen:
            items = list(entries)
            self._buf.extend(items)
            self._appended += len(items)

    def _take(self) -> list[E]:
        items: list[E] = []
        pop = self._buf.popleft
        for _ in range(len(self._buf)):
            items.append(pop())
        self._taken += len(items)
        lost = self._appended - self._taken - len(self._buf) - self._overflowed
        if lost > 0:
            self._overflowed += lost
            self.dropped.labels(DropReason.BUFFER_FULL.value).inc(lost)
        return items

    def _args(self, chunk: list[E]) -> list[Any]:
        """The script's ``ARGV`` for one chunk of entries."""
        raise NotImplementedError

    async def flush(self, client: redis.asyncio.Redis) -> int:
        """Write everything buffered, a chunk per script call; returns entries written."""
        items = self._take()
        if not items:
            return 0
        script = self._script(client)
        written = 0
        try:
            for start in range(0, len(items), self.chunk):
                chunk = items[start : start + self.chunk]
                written += int(await script(keys=self.keys, args=self._args(chunk)))
        except (redis.RedisError, OSError) as exc:
            self.dropped.labels(DropReason.REDIS_DOWN.value).inc(len(items) - written)
            if not self._redis_down:
                self.log.warning(
                    "%s: Redis unreachable (%s); dropping %s", self.name, exc, self.noun
                )
            self._redis_down = True
            self._count_written(written)
            return written
        if self._redis_down:
            self.log.info("%s: Redis reachable again", self.name)
        self._redis_down = False
        self._count_written(written)
        return written

    def _count_written(self, written: int) -> None:
        if self.written is not None:
            self.written.inc(written)

    def _script(self, client: redis.asyncio.Redis) -> AsyncScript:
        """The script registered on ``client`` (once per client)."""
        if self._registered is None or self._registered[0] is not client:
            self._registered = (client, client.register_script(self.script))
        return self._registered[1]

    async def run(self, client: redis.asyncio.Redis, interval: float = 0.2) -> None:
        """Flush every ``interval`` seconds until cancelled, then flush what is left."""
        task = asyncio.current_task()
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.flush(client)
                except Exception:
                    self.log.exception("%s flush failed", self.name)
                # A cancel that landed inside a Redis command can come out of the client's
                # read-timeout handling (itself a cancel) as a plain return; the shutdown that
                # sent it waits for this task, so a cancel asked for ends the loop regardless.
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
        finally:
            if self._buf:
                # Held to its end (bounded by its own timeout) even if cancelled again meanwhile.
                await finish(asyncio.ensure_future(self._final_flush(client)))

    async def _final_flush(self, client: redis.asyncio.Redis) -> None:
        try:
            await asyncio.wait_for(self.flush(client), timeout=2)
        except Exception:
            self.log.warning("%s: last flush at shutdown failed", self.name)


def read_newest(
    client: redis.Redis, key: str, count: int, decode: Callable[[str, dict[str, bytes]], T]
) -> list[T]:
    """The newest ``count`` entries of the stream ``key``, oldest first.

    Args:
        client: A synchronous client (the CLI's); the field values come back as bytes.
        key: The stream.
        count: How many entries at most.
        decode: Builds one entry from its stream id and its fields (names as text). An entry it
            cannot decode (``KeyError``, ``ValueError``, ``msgspec.DecodeError``: written by
            another release) is skipped.
    """
    out: list[T] = []
    entries: list[tuple[Any, dict[Any, Any]]] = client.xrevrange(key, count=count) or []  # type: ignore[assignment]
    for entry_id, fields in reversed(entries):
        try:
            out.append(decode(text(entry_id), {text(k): v for k, v in fields.items()}))
        except (KeyError, ValueError, msgspec.DecodeError):
            continue
    return out


def text(value: bytes | str) -> str:
    """A stream id or field value as text."""
    return value.decode() if isinstance(value, bytes) else value
