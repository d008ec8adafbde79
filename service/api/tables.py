"""``GET /v1/tables``: the table set in force, for people and for ticketing tools' forms."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, get
from litestar.datastructures import State

from service.core.base import Base
from service.core.scales import iso_duration
from service.core.tables import TableSet
from service.files.store import TableStore

__all__ = ["ActiveTables", "TablesController", "Target", "VersionInfo"]


class Target(Base):
    """The agreed targets of one priority level, durations written as in ``levels.toml``."""

    priority: str
    level: int
    label: str
    response: str
    """ISO 8601 duration from report to first response, e.g. ``PT15M``."""
    resolve: str
    """ISO 8601 duration from report to resolution, e.g. ``PT4H``."""


class ActiveTables(Base):
    """The active table set with its identity and a summary of its targets."""

    version: str
    """Version string from ``set.toml``; every decision names it."""
    hash: str
    """Content hash of the set (``sha256:...``); layout and comments do not change it."""
    effective_from: datetime
    """Moment from which this set scores calls."""
    targets: list[Target]
    """Response and resolution targets per priority, most urgent first."""
    tables: TableSet
    """Every file of the set: levels, matrix, targets, call types, risk, services, routing..."""


class VersionInfo(Base):
    """One loaded table set version."""

    version: str
    hash: str
    effective_from: datetime
    active: bool
    """True for the set in force now."""
    title: str


def _targets(tables: TableSet) -> list[Target]:
    # msgspec writes timedelta as seconds (PT900S); people read the tables' own form (PT15M).
    return [
        Target(
            priority=p.name,
            level=p.level,
            label=p.label,
            response=iso_duration(p.response),
            resolve=iso_duration(p.resolve),
        )
        for p in sorted(tables.levels.priority, key=lambda p: p.level)
    ]


class TablesController(Controller):
    path = "/v1/tables"
    tags = ["tables"]

    @get("/", summary="The active table set")
    async def active(self, state: State) -> ActiveTables:
        """Levels, matrix, targets, call types, risk table, services, teams and routing in force."""
        tables: TableStore = state.tables
        s = tables.active(datetime.now(UTC))
        return ActiveTables(
            version=s.version,
            hash=s.hash,
            effective_from=s.tables.effective_from,
            targets=_targets(s.tables),
            tables=s.tables,
        )

    @get("/versions", summary="All loaded table set versions")
    async def versions(self, state: State) -> list[VersionInfo]:
        """Every loaded version with its effective date; ``active`` marks the one in force."""
        tables: TableStore = state.tables
        v = tables.versions
        current = v.active(datetime.now(UTC)).version
        return [
            VersionInfo(
                version=s.version,
                hash=s.hash,
                effective_from=s.tables.effective_from,
                active=s.version == current,
                title=s.tables.set.title,
            )
            for s in v.sets
        ]
