"""Whole-set rules a table set must pass before it may score anything.

msgspec already checked each file's shape; these rules need several files at once. Every rule
reports :class:`Problem` values naming the file, the key and the reason, so a governance pull
request shows exactly what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from itertools import pairwise

from service.core.base import Base
from service.core.source_rules import source_problems
from service.core.tables import Level, PriorityLevel, TableSet

__all__ = ["Problem", "validate"]


class Problem(Base):
    """One reason a table set is refused."""

    file: str
    """File name inside the version directory, e.g. ``matrix.toml``."""
    key: str
    """Dotted key inside the file, e.g. ``matrix.department.high``."""
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"


def _allowed(names: Iterable[str]) -> str:
    # dict.fromkeys: a duplicated name (itself a problem) is listed once.
    return ", ".join(dict.fromkeys(names))


def _unique(file: str, key: str, levels: Sequence[Level | PriorityLevel]) -> Iterator[Problem]:
    """A scale has at least one level, and no two levels share a name or a rank."""
    seen_names: set[str] = set()
    seen_ranks: set[int] = set()
    for i, level in enumerate(levels):
        if level.name in seen_names:
            yield Problem(
                file=file, key=f"{key}[{i}].name", reason=f"duplicate name '{level.name}'"
            )
        if level.level in seen_ranks:
            yield Problem(
                file=file, key=f"{key}[{i}].level", reason=f"duplicate level {level.level}"
            )
        seen_names.add(level.name)
        seen_ranks.add(level.level)
    if not levels:
        yield Problem(file=file, key=key, reason="at least one level is required")


def _grid(
    file: str,
    key: str,
    grid: dict[str, dict[str, str]],
    rows: tuple[str, Sequence[Level]],
    cols: tuple[str, Sequence[Level]],
    values: tuple[str, dict[str, int]],
) -> Iterator[Problem]:
    """Completeness and known names for a two-way table such as the priority matrix."""
    row_kind, row_levels = rows
    col_kind, col_levels = cols
    value_kind, value_rank = values
    value_names = _allowed(sorted(value_rank, key=value_rank.__getitem__))
    # Sorted by rank so "allowed:" lists read from the most severe level down.
    row_names = [lv.name for lv in sorted(row_levels, key=lambda lv: lv.level)]
    col_names = [lv.name for lv in sorted(col_levels, key=lambda lv: lv.level)]
    for row, cells in grid.items():
        if row not in row_names:
            yield Problem(
                file=file,
                key=f"{key}.{row}",
                reason=f"unknown {row_kind} level '{row}'; allowed: {_allowed(row_names)}",
            )
            continue
        for col, value in cells.items():
            if col not in col_names:
                yield Problem(
                    file=file,
                    key=f"{key}.{row}.{col}",
                    reason=f"unknown {col_kind} level '{col}'; allowed: {_allowed(col_names)}",
                )
            elif value not in value_rank:
                yield Problem(
                    file=file,
                    key=f"{key}.{row}.{col}",
                    reason=f"unknown {value_kind} level '{value}'; allowed: {value_names}",
                )
    for row in row_names:
        for col in col_names:
            if col not in grid.get(row, {}):
                yield Problem(
                    file=file,
                    key=f"{key}.{row}.{col}",
                    reason=f"missing cell for {row_kind} '{row}' and {col_kind} '{col}'",
                )


def _monotonic(
    file: str,
    key: str,
    grid: dict[str, dict[str, str]],
    rows: tuple[str, Sequence[Level]],
    cols: tuple[str, Sequence[Level]],
    values: tuple[str, dict[str, int]],
) -> Iterator[Problem]:
    """A more severe row or column must never give a less severe value."""
    row_kind, row_levels = rows
    col_kind, col_levels = cols
    value_kind, rank = values
    ordered_rows = sorted(row_levels, key=lambda lv: lv.level)
    ordered_cols = sorted(col_levels, key=lambda lv: lv.level)

    def cell(row: str, col: str) -> str | None:
        value = grid.get(row, {}).get(col)
        return value if value in rank else None

    for worse, better in pairwise(ordered_rows):
        for col in ordered_cols:
            high, low = cell(worse.name, col.name), cell(better.name, col.name)
            if high is not None and low is not None and rank[high] > rank[low]:
                yield Problem(
                    file=file,
                    key=f"{key}.{worse.name}.{col.name}",
                    reason=(
                        f"{value_kind} gets lower as {row_kind} rises: "
                        f"{better.name} gives {low} but {worse.name} gives {high}"
                    ),
                )
    for worse, better in pairwise(ordered_cols):
        for row in ordered_rows:
            high, low = cell(row.name, worse.name), cell(row.name, better.name)
            if high is not None and low is not None and rank[high] > rank[low]:
                yield Problem(
                    file=file,
                    key=f"{key}.{row.name}.{worse.name}",
                    reason=(
                        f"{value_kind} gets lower as {col_kind} rises: "
                        f"{better.name} gives {low} but {worse.name} gives {high}"
                    ),
                )


def _targets(priorities: Sequence[PriorityLevel]) -> Iterator[Problem]:
    """Targets are positive, resolve after response, and never shrink as priority falls."""
    ordered = sorted(priorities, key=lambda p: p.level)
    index = {p.name: i for i, p in enumerate(priorities)}
    for p in ordered:
        for field in ("response", "resolve"):
            if getattr(p, field) <= timedelta(0):
                yield Problem(
                    file="levels.toml",
                    key=f"priority[{index[p.name]}].{field}",
                    reason=f"{p.name}: {field} target must be a positive duration",
                )
        if p.resolve < p.response:
            yield Problem(
                file="levels.toml",
                key=f"priority[{index[p.name]}].resolve",
                reason=f"{p.name}: resolve target is shorter than its response target",
            )
    for higher, lower in pairwise(ordered):
        for field in ("response", "resolve"):
            if getattr(lower, field) < getattr(higher, field):
                yield Problem(
                    file="levels.toml",
                    key=f"priority[{index[lower.name]}].{field}",
                    reason=(
                        f"{field} target shrinks as priority falls: {lower.name} "
                        f"is shorter than {higher.name}"
                    ),
                )


def _used(tables: TableSet) -> Iterator[Problem]:
    """Every priority level is reachable: an unused level is almost always a typo in the matrix."""
    used = {p for cells in tables.matrix.matrix.values() for p in cells.values()}
    for i, p in enumerate(tables.levels.priority):
        if p.name not in used:
            yield Problem(
                file="levels.toml",
                key=f"priority[{i}]",
                reason=f"priority '{p.name}' is never given by the matrix",
            )


def _references(tables: TableSet) -> Iterator[Problem]:
    """Names that point into another file (teams, services, call types, impact levels) exist."""
    teams = [t.name for t in tables.teams.team]
    services = [s.name for s in tables.services.service]
    call_types = [c.name for c in tables.call_types.call_type]
    impacts = [lv.name for lv in tables.levels.impact]
    for i, name in enumerate(teams):
        if name in teams[:i]:
            yield Problem(
                file="teams.toml", key=f"team[{i}].name", reason=f"duplicate team '{name}'"
            )
    for i, name in enumerate(call_types):
        if name in call_types[:i]:
            yield Problem(
                file="call_types.toml",
                key=f"call_type[{i}].name",
                reason=f"duplicate call type '{name}'",
            )
    if not call_types:
        yield Problem(
            file="call_types.toml", key="call_type", reason="at least one call type is required"
        )
    for i, s in enumerate(tables.services.service):
        if s.name in services[:i]:
            yield Problem(
                file="services.toml",
                key=f"service[{i}].name",
                reason=f"duplicate service '{s.name}'",
            )
        if s.team not in teams:
            yield Problem(
                file="services.toml",
                key=f"service[{i}].team",
                reason=f"unknown team '{s.team}'; allowed: {_allowed(teams)}",
            )
        if s.impact_floor is not None and s.impact_floor not in impacts:
            yield Problem(
                file="services.toml",
                key=f"service[{i}].impact_floor",
                reason=f"unknown impact level '{s.impact_floor}'; allowed: {_allowed(impacts)}",
            )
    if tables.routing.default_team not in teams:
        yield Problem(
            file="routing.toml",
            key="default_team",
            reason=f"unknown team '{tables.routing.default_team}'; allowed: {_allowed(teams)}",
        )
    for i, r in enumerate(tables.routing.route):
        if r.team not in teams:
            yield Problem(
                file="routing.toml",
                key=f"route[{i}].team",
                reason=f"unknown team '{r.team}'; allowed: {_allowed(teams)}",
            )
        if r.call_type is not None and r.call_type not in call_types:
            yield Problem(
                file="routing.toml",
                key=f"route[{i}].call_type",
                reason=f"unknown call type '{r.call_type}'; allowed: {_allowed(call_types)}",
            )
        if r.service is not None and r.service not in services:
            yield Problem(
                file="routing.toml",
                key=f"route[{i}].service",
                reason=f"unknown service '{r.service}'; allowed: {_allowed(services)}",
            )
        if r.call_type is None and r.service is None and r.category is None:
            yield Problem(
                file="routing.toml",
                key=f"route[{i}]",
                reason="a route must match on call_type, service or category",
            )


def validate(tables: TableSet) -> list[Problem]:
    """All reasons to refuse ``tables``; an empty list means the set may be used.

    Checks, in this order: unique levels on every scale; the priority matrix and the risk table
    are complete, name only known levels, and never give a less severe result for a more severe
    input; targets are positive and never shrink as priority falls; every priority is used;
    every team, service, call type and impact floor that is named exists; every source mapping
    compiles and maps only to known levels, call types, services and priorities.
    """
    lv = tables.levels
    risk = tables.risk
    priority_rank = {p.name: p.level for p in lv.priority}
    urgency_rank = {u.name: u.level for u in lv.urgency}
    problems: list[Problem] = [
        *_unique("levels.toml", "impact", lv.impact),
        *_unique("levels.toml", "urgency", lv.urgency),
        *_unique("levels.toml", "priority", lv.priority),
        *_unique("risk.toml", "likelihood", risk.likelihood),
        *_unique("risk.toml", "proximity", risk.proximity),
    ]
    matrix_args = (
        ("impact", lv.impact),
        ("urgency", lv.urgency),
        ("priority", priority_rank),
    )
    risk_args = (
        ("likelihood", risk.likelihood),
        ("proximity", risk.proximity),
        ("urgency", urgency_rank),
    )
    problems += _grid("matrix.toml", "matrix", tables.matrix.matrix, *matrix_args)
    problems += _monotonic("matrix.toml", "matrix", tables.matrix.matrix, *matrix_args)
    problems += _grid("risk.toml", "urgency", risk.urgency, *risk_args)
    problems += _monotonic("risk.toml", "urgency", risk.urgency, *risk_args)
    problems += _targets(lv.priority)
    problems += _used(tables)
    problems += _references(tables)
    problems += [Problem(file=f, key=k, reason=r) for f, k, r in source_problems(tables)]
    return problems
