"""``GET /v1/tables``: the table set in force, for people and for ticketing tools' forms."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, get

from service.core.base import Base
from service.core.tables import TableSet
from service.files.store import TableStore

__all__ = ["ActiveTables", "TablesController", "VersionInfo"]


class ActiveTables(Base):
    """The active table set with its identity."""

    version: str
    hash: str
    effective_from: datetime
    tables: TableSet


class VersionInfo(Base):
    version: str
    hash: str
    effective_from: datetime
    active: bool
    title: str


class TablesController(Controller):
    path = "/v1/tables"
    tags = ["tables"]

    @get("/", summary="The active table set")
    async def active(self, tables: TableStore) -> ActiveTables:
        """Levels, matrix, targets, call types, risk table, services, teams and routing in force."""
        s = tables.active(datetime.now(UTC))
        return ActiveTables(
            version=s.version, hash=s.hash, effective_from=s.tables.effective_from, tables=s.tables
        )

    @get("/versions", summary="All loaded table set versions")
    async def versions(self, tables: TableStore) -> list[VersionInfo]:
        """Every loaded version with its effective date; ``active`` marks the one in force."""
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
