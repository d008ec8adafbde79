"""Governance metrics: decision log throughput and losses, table activations (re-scores)."""

from __future__ import annotations

import enum

from prometheus_client import Counter

__all__ = [
    "DECISION_LOG_DROPPED",
    "DECISION_LOG_WRITTEN",
    "SOURCE_EVENT_LOG_DROPPED",
    "TABLE_ACTIVATIONS",
    "DropReason",
]


class DropReason(enum.StrEnum):
    """Why a decision never reached the decision log (scoring answered all the same)."""

    BUFFER_FULL = "buffer_full"
    """More decisions arrived between flushes than the in-memory buffer holds."""
    REDIS_DOWN = "redis_down"
    """The flush to Redis failed."""


DECISION_LOG_WRITTEN = Counter(
    "usm_decision_log_written",
    "Decisions appended to the Redis decision log stream.",
)
DECISION_LOG_DROPPED = Counter(
    "usm_decision_log_dropped",
    "Decisions not written to the decision log, by reason (buffer_full, redis_down).",
    ["reason"],
)
for _reason in DropReason:
    DECISION_LOG_DROPPED.labels(_reason.value)

SOURCE_EVENT_LOG_DROPPED = Counter(
    "usm_source_event_log_dropped",
    "Inbound source events not recorded for replay, by reason (buffer_full, redis_down).",
    ["reason"],
)
for _reason in DropReason:
    SOURCE_EVENT_LOG_DROPPED.labels(_reason.value)

TABLE_ACTIVATIONS = Counter(
    "usm_table_activations",
    "Table sets that came into force and were handled by this replica, by outcome "
    "(done: queued items re-scored; skipped: rescore_on_activate is off).",
    ["outcome"],
)
for _outcome in ("done", "skipped"):
    TABLE_ACTIVATIONS.labels(_outcome)
