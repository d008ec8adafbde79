"""Dispatch: team queues on Redis (RQ-native), leases, workers' hand-out, stats, re-score.

Modules: :mod:`~service.dispatch.keys` (every key), :mod:`~service.dispatch.scripts` (Lua),
:mod:`~service.dispatch.store` (items), :mod:`~service.dispatch.leases` (hand-out, reaper),
:mod:`~service.dispatch.stats` (metrics reads), :mod:`~service.dispatch.rescore`.
See docs/dispatch.md for the design.
"""

from __future__ import annotations

from service.dispatch.config import DispatchConfig
from service.dispatch.items import HistoryEvent, Item, ItemState
from service.dispatch.stats import QueueStat, WorkerStat, read_queue_stats, read_worker_stats
from service.dispatch.store import ItemStore, hand_out_order

__all__ = [
    "DispatchConfig",
    "HistoryEvent",
    "Item",
    "ItemState",
    "ItemStore",
    "QueueStat",
    "WorkerStat",
    "hand_out_order",
    "read_queue_stats",
    "read_worker_stats",
]
