"""Hot-path metrics counted in process and handed to prometheus-client in bulk.

In multiprocess mode (``usm serve``) every ``inc`` or ``observe`` of a prometheus-client metric
writes a memory-mapped file under a process-wide lock: about 3 us per counter increment and 5 us
per histogram observation on the bench machine, and ``POST /v1/priority`` made eight such writes
per request (HTTP count, duration, in-progress up and down, decision count, scoring time:
bench/http.py). The tallies here add to plain numbers instead, and :func:`flush` hands what was
added since the last flush to the prometheus-client children, one write per changed value:

- before every scrape this process answers (``ScrapeRegistry``), so what it shows is exact;
- every :data:`FLUSH_SECONDS` from a daemon thread, so another process's scrape (multiprocess
  mode: one ``/metrics`` shows every process) sees this one's counts at most that late;
- at interpreter exit.

A tally keeps running totals and remembers what it has written, so recording takes no lock: a
tally must have one writer at a time (the event loop; code that records from several threads
holds its own lock around the call, see ``service.metrics.decisions``). The series, names,
labels and buckets stay prometheus-client's own: the tallies wrap its label children. A process
killed with SIGKILL loses at most :data:`FLUSH_SECONDS` of counts.
"""

from __future__ import annotations

import atexit
import threading
from bisect import bisect_left
from typing import Any

__all__ = ["FLUSH_SECONDS", "CounterTally", "GaugeTally", "HistogramTally", "flush"]

FLUSH_SECONDS = 1.0
"""How often the background thread writes the tallies to prometheus-client."""

_flushing = threading.Lock()
"""One flush at a time: the written totals are the flush's own state."""
_tallies: list[CounterTally | HistogramTally | GaugeTally] = []
_flusher: threading.Thread | None = None


def _register(tally: CounterTally | HistogramTally | GaugeTally) -> None:
    global _flusher
    with _flushing:
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
        for tally in list(_tallies):
            tally.write()


class CounterTally:
    """``inc`` of a counter child, written by the next :func:`flush`."""

    __slots__ = ("_child", "_written", "total")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.total = 0.0
        """Everything counted; only the recording code adds to it."""
        self._written = 0.0
        _register(self)

    def inc(self, amount: float = 1.0) -> None:
        self.total += amount

    def write(self) -> None:
        """Add what was counted since the last write to the child (flush only)."""
        total = self.total
        if total != self._written:
            self._child.inc(total - self._written)
            self._written = total


class HistogramTally:
    """``observe`` of a histogram child: bucket counts and sum kept here until :func:`flush`.

    The flush adds to the child's bucket and sum values directly (prometheus-client has no
    public call to add many observations at once); ``tests/integration/metrics/test_tally.py``
    checks that the result is the same as observing each value.
    """

    __slots__ = ("_bounds", "_child", "_written", "_written_sum", "counts", "sum")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self._bounds)
        self.sum = 0.0
        self._written = [0] * len(self._bounds)
        self._written_sum = 0.0
        _register(self)

    def observe(self, amount: float) -> None:
        # prometheus-client counts a value in the first bucket whose bound is >= it.
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount

    def write(self) -> None:
        """Add the observations since the last write to the child (flush only)."""
        counts, total = list(self.counts), self.sum
        child = self._child
        for i, (n, done) in enumerate(zip(counts, self._written, strict=True)):
            if n != done:
                child._buckets[i].inc(n - done)
        if total != self._written_sum:
            child._sum.inc(total - self._written_sum)
        self._written, self._written_sum = counts, total


class GaugeTally:
    """A gauge moved up and down here (requests in progress); :func:`flush` sets the child."""

    __slots__ = ("_child", "_written", "value")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.value = 0.0
        self._written = 0.0
        _register(self)

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def write(self) -> None:
        """Set the child to the current value when it changed (flush only)."""
        value = self.value
        if value != self._written:
            self._child.set(value)
            self._written = value
