"""Table set metrics: which set is in force, its targets, and how reloads went.

The version in force and the priority targets are read from the :class:`TableStore` when scraped,
not set when a reload happens: a set whose ``effective_from`` arrives takes over without any
reload event, and the scrape must show that moment too. Reload results and the time of the last
successful load are events, so they are counters/gauges recorded where the reload runs
(:func:`record_reload`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from service.files.store import TableStore

__all__ = [
    "TABLE_LAST_LOAD",
    "TABLE_RELOADS",
    "ReloadResult",
    "TableCollector",
    "queues",
    "record_loaded",
    "record_reload",
]


class ReloadResult(enum.StrEnum):
    """Outcome of one attempt to (re)load the table sets; the ``result`` label."""

    SUCCESS = "success"
    """The new sets passed validation and are in force."""
    UNCHANGED = "unchanged"
    """Nothing changed on disk; nothing swapped."""
    REJECTED = "rejected"
    """The files did not validate; the running sets stay."""
    ERROR = "error"
    """The files could not be read at all; the running sets stay."""


TABLE_RELOADS = Counter(
    "usm_table_reloads",
    "Attempts to reload the table sets, by result (success, unchanged, rejected, error).",
    ["result"],
)
for _result in ReloadResult:
    # Every result is a series from the start, so rate(), increase() and the alerts see a 0
    # rather than nothing before the first failure.
    TABLE_RELOADS.labels(_result.value)
TABLE_LAST_LOAD = Gauge(
    "usm_table_last_load_timestamp_seconds",
    "Unix time the table sets were last loaded successfully.",
    multiprocess_mode="max",
)


def queues(store: TableStore) -> tuple[list[str], list[str]]:
    """Teams and priority names of every loaded set (in force, past or future), in order.

    Metrics cover all of them, so queues of a set about to take over are reported too.
    """
    teams: dict[str, None] = {}
    priorities: dict[str, None] = {}
    for loaded in store.versions.sets:
        teams.update(dict.fromkeys(t.name for t in loaded.tables.teams.team))
        priorities.update(dict.fromkeys(p.name for p in loaded.tables.levels.priority))
    return list(teams), list(priorities)


def record_reload(result: ReloadResult | str, at: float | None = None) -> None:
    """Count one reload attempt; a success also sets the last-load time.

    Args:
        result: What happened; one of :class:`ReloadResult` (its string value is accepted).
        at: Unix time of the load, default now.

    Raises:
        ValueError: ``result`` is not a known :class:`ReloadResult`, so a typo cannot create a
            series no alert looks at.
    """
    outcome = ReloadResult(result)
    TABLE_RELOADS.labels(outcome.value).inc()
    if outcome is ReloadResult.SUCCESS:
        TABLE_LAST_LOAD.set(time.time() if at is None else at)


class TableCollector(Collector):
    """Scrape-time view of the table set in force: version, targets per priority, teams."""

    def __init__(
        self, store: TableStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        versions = self._store.versions
        active = versions.active(self._clock())
        info = InfoMetricFamily(
            "usm_table", "The table set in force (value 1): its version and content hash."
        )
        info.add_metric([], {"version": active.version, "hash": active.hash})
        yield info
        loaded = GaugeMetricFamily(
            "usm_table_versions_loaded", "Table set versions loaded (in force, past and future)."
        )
        loaded.add_metric([], len(versions.sets))
        yield loaded
        response = GaugeMetricFamily(
            "usm_priority_response_target_seconds",
            "Agreed response time per priority in the table set in force.",
            labels=["priority"],
        )
        resolve = GaugeMetricFamily(
            "usm_priority_resolve_target_seconds",
            "Agreed resolution time per priority in the table set in force.",
            labels=["priority"],
        )
        for level in active.tables.levels.priority:
            response.add_metric([level.name], level.response.total_seconds())
            resolve.add_metric([level.name], level.resolve.total_seconds())
        yield response
        yield resolve
        teams = InfoMetricFamily(
            "usm_team",
            "Teams of the table set in force (value 1): how their work is taken (push: workers, "
            "pull: claimed by people) and the workers' handler kind.",
        )
        for team in active.tables.teams.team:
            handler = type(team.handler).__struct_config__.tag
            teams.add_metric([], {"team": team.name, "mode": team.mode, "handler": str(handler)})
        yield teams


def record_loaded(at: float | None = None) -> None:
    """Set the last-load time for the load at start-up (which is no reload, so not counted)."""
    TABLE_LAST_LOAD.set(time.time() if at is None else at)
