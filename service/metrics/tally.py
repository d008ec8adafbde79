"""Hot-path metrics counted in process and handed to prometheus-client in bulk.

In multiprocess mode (``usm serve``) every ``inc`` or ``observe`` of a prometheus-client metric
writes a memory-mapped file under a process-wide lock: about 3 us per counter increment and 5 us
per histogram observation on the bench machine, and ``POST /v1/priority`` made eight such writes
per request (HTTP count, duration, in-progress up and down, decision count, scoring time:
bench/http.py). The tallies here add to plain numbers instead, under one lock (handlers running
in threads record too), and :func:`flush` hands what was added to the prometheus-client children:
one write per changed value,

- before every scrape this process answers (``GET /metrics`` calls :func:`flush`), so what it
  shows is exact;
- every :data:`FLUSH_SECONDS` from a daemon thread, so another process's scrape (multiprocess
  mode: one ``/metrics`` shows every process) sees this one's counts at most that late;
- at interpreter exit.

The series, names, labels and buckets stay prometheus-client's own (the tallies wrap its label
children). A process killed with SIGKILL loses at most :data:`FLUSH_SECONDS` of counts.
"""

from __future__ import annotations

import atexit
import threading
from bisect import bisect_left
from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["FLUSH_SECONDS", "CounterTally", "GaugeTally", "HistogramTally", "flush"]

FLUSH_SECONDS = 1.0
"""How often the background thread writes the tallies to prometheus-client."""

_lock = threading.Lock()
"""Guards the pending counts; held for a few additions only."""
_flushing = threading.Lock()
"""One flush at a time, so a gauge's writes land in the order they were taken."""
_tallies: list[CounterTally | HistogramTally | GaugeTally] = []
_flusher: threading.Thread | None = None


def _register(tally: CounterTally | HistogramTally | GaugeTally) -> None:
    global _flusher
    with _lock:
        _tallies.append(tally)
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_forever, name="metrics tally", daemon=True)
            _flusher.start()
            atexit.register(flush)


def _flush_forever() -> None:
    wake = threading.Event()  # never set: a sleep that the interpreter's exit does not wait for
    while True:
        wake.wait(FLUSH_SECONDS)
        flush()


def flush() -> None:
    """Write what every tally counted since the last flush to its prometheus-client child."""
    with _flushing:
        with _lock:
            taken = [tally._take() for tally in _tallies]
        for write in taken:  # the writes (mmap, their own lock) outside ours
            if write is not None:
                write()


class CounterTally:
    """``inc`` of a counter child, counted here until the next :func:`flush`."""

    __slots__ = ("_child", "_pending")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._pending = 0.0
        _register(self)

    def inc(self, amount: float = 1.0) -> None:
        with _lock:
            self._pending += amount

    def _take(self) -> Callable[[], None] | None:
        """The write of what was counted since the last take, or None (nothing was)."""
        pending, self._pending = self._pending, 0.0
        return partial(self._child.inc, pending) if pending else None


class HistogramTally:
    """``observe`` of a histogram child: bucket counts and sum kept here until :func:`flush`.

    The flush adds to the child's bucket and sum values directly (prometheus-client has no
    public call to add many observations at once); ``tests/unit/metrics/test_tally.py`` checks
    that the result is the same as observing each value.
    """

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        _register(self)

    def observe(self, amount: float) -> None:
        # prometheus-client counts a value in the first bucket whose bound is >= it.
        i = bisect_left(self._bounds, amount)
        with _lock:
            self._counts[i] += 1
            self._sum += amount

    def _take(self) -> Callable[[], None] | None:
        if not any(self._counts):
            return None
        taken = partial(self._write, self._counts, self._sum)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        return taken

    def _write(self, counts: list[int], total: float) -> None:
        child = self._child
        child._sum.inc(total)
        for i, n in enumerate(counts):
            if n:
                child._buckets[i].inc(n)


class GaugeTally:
    """A gauge moved up and down here (requests in progress); :func:`flush` sets the child."""

    __slots__ = ("_child", "_value", "_written")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._value = 0.0
        self._written = 0.0
        _register(self)

    def inc(self, amount: float = 1.0) -> None:
        with _lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        with _lock:
            self._value -= amount

    def _take(self) -> Callable[[], None] | None:
        if self._value == self._written:
            return None
        self._written = self._value
        return partial(self._child.set, self._value)
