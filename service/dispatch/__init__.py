"""Dispatch: team queues on Redis (RQ-native), leases, the workers' hand-out, stats, re-score.

Modules: :mod:`~service.dispatch.keys` (every key), :mod:`~service.dispatch.scripts` (Lua),
:mod:`~service.dispatch.store` (items), :mod:`~service.dispatch.leases` (hand-out, reaper),
:mod:`~service.dispatch.stats` (reads for metrics), :mod:`~service.dispatch.collector` (those
reads as Prometheus gauges at scrape time), :mod:`~service.dispatch.rescore`.
See docs/dispatch.md for the design.

Nothing is re-exported here on purpose: importing this package must stay cheap and must not
import prometheus_client (``usm serve`` switches it to multiprocess mode first).
"""

from __future__ import annotations

__all__: list[str] = []
