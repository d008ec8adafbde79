"""Source metrics: inbound events per source and outcome, write-backs per source and outcome.

Pending write-backs and their age are not counted here: the write-back collector
(:mod:`service.sources.collector`) reads them from Redis at scrape time, like the queue depths.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from service.metrics.tally import CounterTally

__all__ = [
    "SOURCE_EVENTS",
    "SOURCE_EVENTS_REFUSED",
    "WRITEBACKS",
    "WRITEBACK_LAG",
    "WriteBackOutcome",
    "initialise_sources",
    "record_event",
    "record_writeback",
]

REFUSALS = ("malformed", "signature", "unknown_source", "unmapped", "unavailable", "error")
"""Why an event was refused: bounded, so a label never grows with input."""

ACTIONS = (
    "queued",
    "rescored",
    "unchanged",
    "scored",
    "reopened",
    "completed",
    "cancelled",
    "ignored",
)
"""What an accepted event did (``service.sources.inbound.Action``)."""

UNKNOWN = "(unknown)"
"""Source label of events posted to a source that is not configured (bounded cardinality)."""


class WriteBackOutcome(enum.StrEnum):
    """What one write-back attempt came to."""

    DONE = "done"
    """The tool accepted every request."""
    FAILED = "failed"
    """An attempt failed; it is retried after a back-off."""
    DEAD = "dead"
    """Failed after its retries: dead-lettered (``usm sources dead``)."""
    STALE = "stale"
    """Skipped: a newer decision for the same ticket was already queued or written (dropped at
    submit, or by the sender's check before sending)."""


SOURCE_EVENTS = Counter(
    "usm_source_events",
    "Inbound ticketing-tool events accepted, by source and action "
    "(queued, rescored, unchanged, scored, reopened, completed, cancelled, ignored).",
    ["source", "action"],
)
SOURCE_EVENTS_REFUSED = Counter(
    "usm_source_events_refused",
    "Inbound ticketing-tool events refused, by source and reason "
    "(signature, unmapped, malformed, unknown_source, unavailable).",
    ["source", "reason"],
)
WRITEBACKS = Counter(
    "usm_source_writebacks",
    "Write-back attempts into ticketing tools, by source and outcome (done, failed, dead, stale).",
    ["source", "outcome"],
)
WRITEBACK_LAG = Histogram(
    "usm_source_writeback_lag_seconds",
    "Time from a decision usm made to the tool accepting it, by source.",
    ["source"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


_events: dict[tuple[str, str], CounterTally] = {}
_lock = threading.Lock()
"""One writer at a time for the tallies (see service.metrics.tally)."""


def record_event(source: str, outcome: str, known: bool = True) -> None:
    """Count one inbound event: accepted (an action) or refused (a reason).

    Counted in process (:mod:`service.metrics.tally`): no memory-mapped write per event.
    """
    name = source if known else UNKNOWN
    with _lock:
        tally = _events.get((name, outcome))
        if tally is None:
            counter = SOURCE_EVENTS_REFUSED if outcome in REFUSALS else SOURCE_EVENTS
            tally = _events[(name, outcome)] = CounterTally(counter.labels(name, outcome))
        tally.total += 1


def record_writeback(source: str, outcome: WriteBackOutcome, lag: float | None = None) -> None:
    """Count one write-back attempt; ``lag`` (seconds since the decision) when it is done."""
    WRITEBACKS.labels(source, outcome.value).inc()
    if lag is not None:
        WRITEBACK_LAG.labels(source).observe(max(0.0, lag))


def initialise_sources(sources: Iterable[str]) -> None:
    """Create the counters of the configured sources at 0, so rate() and alerts see the first."""
    for source in sources:
        for action in ACTIONS:
            SOURCE_EVENTS.labels(source, action)
        for reason in REFUSALS:
            SOURCE_EVENTS_REFUSED.labels(source, reason)
        for outcome in WriteBackOutcome:
            WRITEBACKS.labels(source, outcome.value)
