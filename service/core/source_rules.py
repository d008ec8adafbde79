"""Whole-set rules for ``sources.toml``: every mapped value exists, every expression compiles.

A source mapping points into the rest of the set (levels, call types, services, priorities), so
its checks run with the set's other rules (:func:`service.core.validation.validate`) and are
reported the same way: file, key, reason with the allowed values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jmespath.exceptions

from service.core.mapping import compiled
from service.core.sources import ADAPTERS, SIGNATURE_SCHEMES, Reader, Source
from service.core.tables import TableSet

__all__ = ["source_problems"]

FILE = "sources.toml"

_PROBLEM = tuple[str, str]
"""(key, reason); the caller turns them into :class:`~service.core.validation.Problem`."""


def _expression(key: str, expression: str | None) -> Iterator[_PROBLEM]:
    if expression is None:
        return
    try:
        compiled(expression)
    except jmespath.exceptions.JMESPathError as exc:
        reason = " ".join(str(exc).split())  # the library's message spans several lines
        yield key, f"JMESPath expression does not compile: {reason}"


def _reader(
    key: str, reader: Reader, kind: str, allowed: Sequence[str] | None
) -> Iterator[_PROBLEM]:
    """The expression compiles; mapped values and the default name known things (if closed)."""
    yield from _expression(f"{key}.path", reader.path)
    if reader.path is None and reader.default is None:
        yield key, "give a path, a default, or both"
    if allowed is None:  # free text (category)
        return
    names = ", ".join(dict.fromkeys(allowed))  # a duplicated name (its own problem) once
    for tool_value, ours in reader.map.items():
        if ours not in allowed:
            yield (
                f"{key}.map.{tool_value}",
                f"unknown {kind} '{ours}' for tool value '{tool_value}'; allowed: {names}",
            )
    if reader.default is not None and reader.default not in allowed:
        yield f"{key}.default", f"unknown {kind} '{reader.default}'; allowed: {names}"


def _allowed(tables: TableSet) -> dict[str, tuple[str, list[str] | None]]:
    """Call field -> (what it names, the names it may map to; None: free text)."""

    def ranked(levels: Sequence[object]) -> list[str]:
        return [lv.name for lv in sorted(levels, key=lambda lv: lv.level)]  # type: ignore[attr-defined]

    return {
        "call_type": ("call type", [c.name for c in tables.call_types.call_type]),
        "impact": ("impact level", ranked(tables.levels.impact)),
        "urgency": ("urgency level", ranked(tables.levels.urgency)),
        "likelihood": ("likelihood level", ranked(tables.risk.likelihood)),
        "proximity": ("proximity level", ranked(tables.risk.proximity)),
        "service": ("service", [s.name for s in tables.services.service]),
        "category": ("category", None),
    }


def _source(i: int, source: Source, tables: TableSet) -> Iterator[_PROBLEM]:
    at = f"source[{i}]"
    if source.signature not in SIGNATURE_SCHEMES:
        yield (
            f"{at}.signature",
            f"unknown signature scheme '{source.signature}'; "
            f"allowed: {', '.join(SIGNATURE_SCHEMES)}",
        )
    yield from _expression(f"{at}.ticket_id", source.ticket_id)
    yield from _expression(f"{at}.reported_at", source.reported_at)
    for field, (kind, allowed) in _allowed(tables).items():
        reader: Reader | None = getattr(source, field)
        if reader is not None:
            yield from _reader(f"{at}.{field}", reader, kind, allowed)
    if source.status is not None:
        yield from _expression(f"{at}.status.path", source.status.path)
        yield from _expression(f"{at}.status.created", source.status.created)
        for state in sorted(set(source.status.resolved) & set(source.status.closed)):
            yield f"{at}.status", f"state '{state}' is listed as both resolved and closed"
    wb = source.writeback
    if wb is not None:
        if wb.adapter not in ADAPTERS:
            yield (
                f"{at}.writeback.adapter",
                f"unknown write-back adapter '{wb.adapter}'; allowed: {', '.join(ADAPTERS)}",
            )
        priorities = [p.name for p in sorted(tables.levels.priority, key=lambda p: p.level)]
        for name in wb.priority:
            if name not in priorities:
                yield (
                    f"{at}.writeback.priority.{name}",
                    f"unknown priority '{name}'; allowed: {', '.join(priorities)}",
                )


def source_problems(tables: TableSet) -> Iterator[tuple[str, str, str]]:
    """``(file, key, reason)`` for every problem in the set's source mappings."""
    seen: set[str] = set()
    for i, source in enumerate(tables.sources.source):
        if source.name in seen:
            yield FILE, f"source[{i}].name", f"duplicate source '{source.name}'"
        seen.add(source.name)
        for key, reason in _source(i, source, tables):
            yield FILE, key, reason
