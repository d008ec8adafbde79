"""The event instruments, created once. Names follow Prometheus conventions with a ``usm_`` prefix.

Counters and histograms here are recorded by the process where the event happens (API or
worker). Queue state (depth, oldest age, overdue, workers) is not recorded here: a collector reads
it from Redis at scrape time so every replica reports the same truth.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

__all__ = [
    "DECISIONS",
    "ITEM_EVENTS",
    "ITEM_HANDLING",
    "ITEM_WAIT",
    "SCORING_SECONDS",
    "ItemEvent",
    "initialise",
    "record",
]

# Wait and handling times span milliseconds (idle worker) to days (P5 planning work).
TIME_BUCKETS = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800,
    3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 5 * 86400,
)  # fmt: skip


class ItemEvent(enum.StrEnum):
    """What happened to an item; each value is a counter ``usm_items_<value>_total``."""

    ENQUEUED = "enqueued"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRIED = "retried"
    ABANDONED = "abandoned"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"
    MOVED = "moved"


DECISIONS = Counter(
    "usm_decisions",
    "Decisions made, by call type, priority and table version.",
    ["call_type", "priority", "table_version"],
)
SCORING_SECONDS = Histogram(
    "usm_scoring_seconds",
    "Time to score one request (one call or one batch), excluding HTTP.",
    buckets=(0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5),
)
ITEM_EVENTS: dict[ItemEvent, Counter] = {
    event: Counter(
        f"usm_items_{event.value}",
        f"Items {event.value.replace('_', ' ')}, by team and priority.",
        ["team", "priority"],
    )
    for event in ItemEvent
}
ITEM_WAIT = Histogram(
    "usm_item_wait_seconds",
    "Time from enqueue to start of handling, by team and priority.",
    ["team", "priority"],
    buckets=TIME_BUCKETS,
)
ITEM_HANDLING = Histogram(
    "usm_item_handling_seconds",
    "Time a handler took for one item, by team and priority.",
    ["team", "priority"],
    buckets=TIME_BUCKETS,
)


def record(event: ItemEvent, team: str, priority: str, amount: int = 1) -> None:
    """Count one item event."""
    ITEM_EVENTS[event].labels(team, priority).inc(amount)


def initialise(teams: Iterable[str], priorities: Iterable[str]) -> None:
    """Create every item counter of these queues at 0, before anything happens to them.

    A counter series that is born at 1 shows no increase to ``rate()`` or ``increase()``: the
    first item a team ever dead-letters would not raise ``UsmDeadLettersGrowing``. Histograms are
    left to appear on first use (23 series each, mostly for queues that never see work).
    """
    pairs = [(t, p) for t in teams for p in priorities]
    for counter in ITEM_EVENTS.values():
        for team, priority in pairs:
            counter.labels(team, priority)
