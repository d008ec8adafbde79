"""What changes between two table sets, section by section. Pure: two sets in, a diff out.

:func:`diff_sets` compares meaning, not layout: a reordered file with the same content shows no
change, while a moved routing rule does (the first matching rule wins, so order is meaning).
:mod:`service.governance.markdown` turns the result into a pull request comment.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
import msgspec.structs

from service.core.base import Base
from service.core.tables import Level, Route, TableSet

__all__ = [
    "SECTIONS",
    "Cell",
    "Change",
    "TableDiff",
    "diff_sets",
    "duration",
    "route_text",
]

SECTIONS = (
    "set",
    "impact",
    "urgency",
    "targets",
    "call_types",
    "risk_levels",
    "services",
    "teams",
    "routing",
    "sources",
)
"""Sections of :attr:`TableDiff.changes`, in the order a reviewer reads them."""


class Cell(Base):
    """One cell of a two-way table (priority matrix or risk table) that changes."""

    row: str
    col: str
    before: str | None
    """Value in the old set; None when the row or column is new."""
    after: str | None
    """Value in the new set; None when the row or column was removed."""


class Change(Base):
    """One named thing that was added, removed or changed."""

    key: str
    """What changed, e.g. ``P2.response`` or ``route[1]``."""
    before: str | None
    """Old value as text; None when added."""
    after: str | None
    """New value as text; None when removed."""


class TableDiff(Base):
    """Everything that differs between two table sets."""

    old_version: str
    old_hash: str
    new_version: str
    new_hash: str
    matrix: list[Cell]
    """Priority matrix cells that change (impact row, urgency column)."""
    risk: list[Cell]
    """Risk urgency cells that change (likelihood row, proximity column)."""
    changes: dict[str, list[Change]]
    """Section (see :data:`SECTIONS`) -> its changes; sections without changes are absent."""

    @property
    def empty(self) -> bool:
        return not (self.matrix or self.risk or self.changes)

    @property
    def count(self) -> int:
        return len(self.matrix) + len(self.risk) + sum(len(c) for c in self.changes.values())


def duration(value: timedelta) -> str:
    """``PT15M``, ``P2D``, ``P1DT2H30M``: durations the way the tables write them."""
    days, rest = value.days, int(value.seconds)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + date + (f"T{time}" if time else "") if date or time else "PT0S"


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value, builtin_types=(timedelta, datetime))


def _text(value: Any) -> str:
    raw = _builtins(value)
    if isinstance(raw, timedelta):
        return duration(raw)
    if isinstance(raw, datetime):
        return raw.isoformat()
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in raw.items())
    return msgspec.json.encode(raw).decode()


def _named(items: Iterable[Any], ignore: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """name -> its fields as builtins (without ``name`` and ``ignore``)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        fields = _builtins(item)
        name = fields.pop("name")
        for key in ignore:
            fields.pop(key, None)
        out[name] = fields
    return out


def _compare(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[Change]:
    changes: list[Change] = []
    for name, fields in new.items():
        if name not in old:
            changes.append(Change(key=name, before=None, after=_text(fields) or "(defaults)"))
            continue
        for field in sorted(set(fields) | set(old[name])):
            a, b = old[name].get(field), fields.get(field)
            if a != b:
                changes.append(
                    Change(
                        key=f"{name}.{field}",
                        before=None if a is None else _text(a),
                        after=None if b is None else _text(b),
                    )
                )
    for name, fields in old.items():
        if name not in new:
            changes.append(Change(key=name, before=_text(fields) or "(defaults)", after=None))
    return changes


def _grid(
    old: dict[str, dict[str, str]],
    new: dict[str, dict[str, str]],
    rows: Sequence[str],
    cols: Sequence[str],
) -> list[Cell]:
    cells: list[Cell] = []
    for row in rows:
        for col in cols:
            a, b = old.get(row, {}).get(col), new.get(row, {}).get(col)
            if a != b:
                cells.append(Cell(row=row, col=col, before=a, after=b))
    return cells


def _order(*scales: Sequence[Level]) -> list[str]:
    """Level names of both sets, most severe first, each once."""
    seen: dict[str, int] = {}
    for scale in scales:
        for lv in scale:
            seen.setdefault(lv.name, lv.level)
    return sorted(seen, key=lambda n: (seen[n], n))


def route_text(route: Route) -> str:
    """A routing rule as one line: ``call_type=change -> change_advisory``."""
    match = ", ".join(
        f"{f}={getattr(route, f)}"
        for f in ("call_type", "service", "category")
        if getattr(route, f) is not None
    )
    return f"{match or 'anything'} -> {route.team}"


def _routing(old: TableSet, new: TableSet) -> list[Change]:
    changes: list[Change] = []
    a, b = old.routing, new.routing
    if a.default_team != b.default_team:
        changes.append(Change(key="default_team", before=a.default_team, after=b.default_team))
    before = [route_text(r) for r in a.route]
    after = [route_text(r) for r in b.route]
    # Align the two lists so an inserted rule shows as one addition, not as every later rule
    # changing; the keys name the rule's position in the new file (removed: in the old one).
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            x = before[i1 + k] if i1 + k < i2 else None
            y = after[j1 + k] if j1 + k < j2 else None
            key = f"route[{j1 + k}]" if y is not None else f"route[{i1 + k}] (old)"
            changes.append(Change(key=key, before=x, after=y))
    return changes


def _sources(old: TableSet, new: TableSet) -> list[Change]:
    """Source mappings by source and field (a changed value map shows as one change)."""
    return _compare(_named(old.sources.source), _named(new.sources.source))


def diff_sets(old: TableSet, new: TableSet, old_hash: str = "", new_hash: str = "") -> TableDiff:
    """Every difference between ``old`` and ``new`` that changes how calls are scored or shown."""
    set_fields = ("effective_from", "title", "rescore_on_activate", "description")
    set_old = {"set": {f: getattr(old.set, f) for f in set_fields}}
    set_new = {"set": {f: getattr(new.set, f) for f in set_fields}}
    lv_old, lv_new = old.levels, new.levels
    sections: dict[str, list[Change]] = {
        "set": _compare(set_old, set_new),
        "impact": _compare(_named(lv_old.impact), _named(lv_new.impact)),
        "urgency": _compare(_named(lv_old.urgency), _named(lv_new.urgency)),
        "targets": _compare(_named(lv_old.priority), _named(lv_new.priority)),
        "call_types": _compare(_named(old.call_types.call_type), _named(new.call_types.call_type)),
        "risk_levels": _compare(
            {f"likelihood.{k}": v for k, v in _named(old.risk.likelihood).items()}
            | {f"proximity.{k}": v for k, v in _named(old.risk.proximity).items()},
            {f"likelihood.{k}": v for k, v in _named(new.risk.likelihood).items()}
            | {f"proximity.{k}": v for k, v in _named(new.risk.proximity).items()},
        ),
        "services": _compare(_named(old.services.service), _named(new.services.service)),
        "teams": _compare(_named(old.teams.team), _named(new.teams.team)),
        "routing": _routing(old, new),
        "sources": _sources(old, new),
    }
    sections["set"] = [
        msgspec.structs.replace(c, key=c.key.removeprefix("set.")) for c in sections["set"]
    ]
    matrix = _grid(
        old.matrix.matrix,
        new.matrix.matrix,
        _order(lv_old.impact, lv_new.impact),
        _order(lv_old.urgency, lv_new.urgency),
    )
    risk = _grid(
        old.risk.urgency,
        new.risk.urgency,
        _order(old.risk.likelihood, new.risk.likelihood),
        _order(old.risk.proximity, new.risk.proximity),
    )
    return TableDiff(
        old_version=old.version,
        old_hash=old_hash,
        new_version=new.version,
        new_hash=new_hash,
        matrix=matrix,
        risk=risk,
        changes={k: v for k, v in sections.items() if v},
    )
