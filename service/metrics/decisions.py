"""Counting decisions where the priority endpoints make them, at a cost per batch, not per call.

A batch of 10,000 calls is tallied by (call type, priority) in one C-level pass, then each
distinct combination increments its counter child once. Children are cached, so the labels lookup
(a lock and a tuple build inside prometheus-client) happens once per combination per process, and
counted in process (:mod:`service.metrics.tally`): a single call costs no memory-mapped write in
multiprocess mode. Handlers running in threads record too, so recording holds :data:`_lock`.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Sequence
from operator import attrgetter

from service.core.decision import Decision
from service.core.encoded import EncodedBatch
from service.metrics.instruments import DECISIONS, SCORING_SECONDS
from service.metrics.tally import CounterTally, HistogramTally

__all__ = ["record_decision", "record_decisions", "record_encoded"]

_children: dict[tuple[str, str, str], CounterTally] = {}
_key = attrgetter("call_type", "priority.name")
_counted = attrgetter("counted")
_scoring: HistogramTally | None = None
_lock = threading.Lock()
"""One writer at a time for the tallies (see service.metrics.tally)."""


def _child(call_type: str, priority: str, version: str) -> CounterTally:
    key = (call_type, priority, version)
    child = _children.get(key)
    if child is None:
        child = _children[key] = CounterTally(DECISIONS.labels(call_type, priority, version))
    return child


def _observe(seconds: float) -> None:
    global _scoring
    if _scoring is None:  # made on first use: importing this module starts no thread
        _scoring = HistogramTally(SCORING_SECONDS)
    _scoring.observe(seconds)


def record_decision(decision: Decision, seconds: float) -> None:
    """Count one decision and the time it took to score."""
    with _lock:
        _observe(seconds)
        _child(decision.call_type, decision.priority.name, decision.table_version).inc()


def record_decisions(decisions: Sequence[Decision], seconds: float) -> None:
    """Count a batch of decisions (all made with one table set) and the time the batch took.

    Args:
        decisions: The batch's decisions; an empty batch only records the time.
        seconds: Time spent scoring the whole batch.
    """
    # One C-level pass: attrgetter builds the (call type, priority) key, Counter tallies it.
    tally = Tally(map(_key, decisions))
    version = decisions[0].table_version if decisions else ""
    with _lock:
        _observe(seconds)
        for (call_type, priority), n in tally.items():
            _child(call_type, priority, version).inc(n)


def record_encoded(batch: EncodedBatch, version: str, seconds: float) -> None:
    """:func:`record_decisions` for a batch scored straight to JSON (``Scorer.score_encoded``).

    Args:
        batch: The batch; an empty one only records the time.
        version: The table set version that scored it.
        seconds: Time spent scoring the whole batch.
    """
    prototypes = batch.prototypes
    if len(prototypes) == 1:  # a single call's: no tally to build
        with _lock:
            _observe(seconds)
            _child(*prototypes[0].counted, version).inc()
        return
    tally = Tally(map(_counted, prototypes))
    with _lock:
        _observe(seconds)
        for (call_type, priority), n in tally.items():
            _child(call_type, priority, version).inc(n)
