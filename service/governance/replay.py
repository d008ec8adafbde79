"""Replay: score the same calls under the old and the new set and count what would change.

Pure: calls and two scorers in, a :class:`ReplayReport` out. Where the calls come from (a file,
the decision log) is the caller's business; see :func:`read_calls`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from service.core.base import Base
from service.core.calls import Call
from service.core.decision import Decision
from service.core.scoring import Scorer
from service.core.tables import Level, TableSet, Trigger
from service.errors import InvalidCall
from service.governance.markdown import table

__all__ = [
    "Outcome",
    "ReplayChange",
    "ReplayReport",
    "TypeStats",
    "input_grid",
    "read_calls",
    "replay",
    "replay_markdown",
]


class Outcome(Base):
    """The part of a decision a change is about."""

    priority: str
    team: str


class ReplayChange(Base):
    """One call whose priority or team would change (or that the new set can no longer score)."""

    call: Call
    before: Outcome
    after: Outcome | None
    """None when the new set refuses the call; ``error`` says why."""
    error: str | None = None


class TypeStats(Base):
    """Counts for one call type."""

    calls: int = 0
    priority_changed: int = 0
    raised: int = 0
    """Priority more urgent under the new set."""
    lowered: int = 0
    team_changed: int = 0
    refused: int = 0
    """Calls the new set cannot score (a level, service or call type it no longer knows)."""


class ReplayReport(Base):
    """What the new set would do to a sample of calls."""

    old_version: str
    old_hash: str
    new_version: str
    new_hash: str
    calls: int
    """Calls replayed (those the old set could score)."""
    skipped: int
    """Calls the old set itself refused: not counted."""
    changed: int
    """Calls whose priority or team changes, or that the new set refuses."""
    priority_changed: int
    team_changed: int
    refused: int
    by_call_type: dict[str, TypeStats]
    examples: list[ReplayChange]


def _outcome(d: Decision) -> Outcome:
    return Outcome(priority=d.priority.name, team=d.team)


def replay(
    calls: Sequence[Call], old: Scorer, new: Scorer, now: datetime, examples: int = 10
) -> ReplayReport:
    """Score every call with ``old`` and ``new``; count and show the differences.

    Args:
        calls: The calls to replay, e.g. from the decision log or a file.
        old: Scorer of the set in force (or the base branch's set).
        new: Scorer of the proposed set.
        now: The moment both score at (targets are not compared, only priority and team).
        examples: How many changed calls to keep as examples, the first ones met per call type
            first, so every affected call type shows up.
    """
    stats: dict[str, dict[str, int]] = {}
    changes: list[ReplayChange] = []
    skipped = 0
    for call in calls:
        try:
            before = old.score(call, now)
        except InvalidCall:
            skipped += 1
            continue
        s = stats.setdefault(call.type, dict.fromkeys(TypeStats.__struct_fields__, 0))
        s["calls"] += 1
        try:
            after = new.score(call, now)
        except InvalidCall as exc:
            s["refused"] += 1
            changes.append(
                ReplayChange(call=call, before=_outcome(before), after=None, error=str(exc))
            )
            continue
        p_changed = before.priority.name != after.priority.name
        t_changed = before.team != after.team
        if p_changed:
            s["priority_changed"] += 1
            s["raised" if after.priority.level < before.priority.level else "lowered"] += 1
        if t_changed:
            s["team_changed"] += 1
        if p_changed or t_changed:
            changes.append(ReplayChange(call=call, before=_outcome(before), after=_outcome(after)))
    by_type = {k: TypeStats(**v) for k, v in sorted(stats.items())}
    return ReplayReport(
        old_version=old.version,
        old_hash=old.table_hash,
        new_version=new.version,
        new_hash=new.table_hash,
        calls=sum(t.calls for t in by_type.values()),
        skipped=skipped,
        changed=len(changes),
        priority_changed=sum(t.priority_changed for t in by_type.values()),
        team_changed=sum(t.team_changed for t in by_type.values()),
        refused=sum(t.refused for t in by_type.values()),
        by_call_type=by_type,
        examples=_pick(changes, examples),
    )


def _pick(changes: list[ReplayChange], limit: int) -> list[ReplayChange]:
    """Up to ``limit`` examples, spread over call types and kinds of change, in input order."""
    chosen: list[int] = []
    seen: set[tuple[str, str, str]] = set()
    for i, c in enumerate(changes):
        after = c.after or Outcome(priority="-", team="-")
        kind = (
            c.call.type,
            f"{c.before.priority}>{after.priority}",
            f"{c.before.team}>{after.team}",
        )
        if kind not in seen and len(chosen) < limit:
            seen.add(kind)
            chosen.append(i)
    for i in range(len(changes)):
        if len(chosen) >= limit:
            break
        if i not in chosen:
            chosen.append(i)
    return [changes[i] for i in sorted(chosen)]


def _call_text(call: Call) -> str:
    fields = msgspec.to_builtins(call)
    fields.pop("reported_at", None)
    return ", ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def replay_markdown(report: ReplayReport, source: str) -> str:
    """The report for a pull request: totals, a row per call type, then examples."""
    r = report
    pct = f" ({100 * r.changed / r.calls:.1f} %)" if r.calls else ""
    out = [
        f"## Replay: {r.old_version} → {r.new_version}",
        "",
        f"{r.calls} calls from {source} replayed: **{r.changed} would change**{pct}: "
        f"{r.priority_changed} in priority, {r.team_changed} in team, {r.refused} refused by "
        f"the new set.",
    ]
    if r.skipped:
        out.append(
            f"{r.skipped} calls were skipped: {r.old_version} cannot score them "
            "(a call type, level or service it does not know)."
        )
    out += [
        "",
        table(
            [
                "call type",
                "calls",
                "priority changes",
                "raised",
                "lowered",
                "team changes",
                "refused",
            ],
            [
                [
                    k,
                    str(t.calls),
                    str(t.priority_changed),
                    str(t.raised),
                    str(t.lowered),
                    str(t.team_changed),
                    str(t.refused),
                ]
                for k, t in r.by_call_type.items()
            ],
        ),
    ]
    if r.examples:
        rows = []
        for c in r.examples:
            after = (
                f"refused: {c.error}" if c.after is None else f"{c.after.priority} {c.after.team}"
            )
            rows.append([_call_text(c.call), f"{c.before.priority} {c.before.team}", after])
        out += ["", "### Examples", "", table(["call", r.old_version, r.new_version], rows)]
    return "\n".join(out) + "\n"


def input_grid(*sets: TableSet) -> list[Call]:
    """Every distinct input the sets can tell apart: a census, independent of traffic.

    Call types, levels, services and routing categories are taken from all ``sets`` (a service
    only the new set knows shows up as skipped by the old one). Reactive calls vary impact and
    urgency; proactive ones impact, likelihood and proximity.
    """

    def names(pick: Callable[[TableSet], Iterable[Any]]) -> list[Any]:
        seen: dict[Any, None] = {}
        for t in sets:
            seen.update(dict.fromkeys(pick(t)))
        return list(seen)

    def ranked(levels: Iterable[Level]) -> list[str]:
        return [lv.name for lv in sorted(levels, key=lambda lv: lv.level)]

    kinds = {c.name: c.trigger for t in reversed(sets) for c in t.call_types.call_type}
    impacts = names(lambda t: ranked(t.levels.impact))
    urgencies = names(lambda t: ranked(t.levels.urgency))
    likelihoods = names(lambda t: ranked(t.risk.likelihood))
    proximities = names(lambda t: ranked(t.risk.proximity))
    services = [None, *names(lambda t: (s.name for s in t.services.service))]
    categories = [None, *names(lambda t: (r.category for r in t.routing.route if r.category))]
    calls: list[Call] = []
    for kind in names(lambda t: (c.name for c in t.call_types.call_type)):
        for service, category, impact in itertools.product(services, categories, impacts):
            if kinds[kind] is Trigger.PROACTIVE:
                calls.extend(
                    Call(
                        type=kind,
                        impact=impact,
                        likelihood=lk,
                        proximity=px,
                        service=service,
                        category=category,
                    )
                    for lk, px in itertools.product(likelihoods, proximities)
                )
            else:
                calls.extend(
                    Call(type=kind, impact=impact, urgency=u, service=service, category=category)
                    for u in urgencies
                )
    return calls


_call = msgspec.json.Decoder(Call)


def read_calls(path: Path) -> list[Call]:
    """Calls from a JSON array, a ``{"calls": [...]}`` batch body, or JSON lines.

    Raises:
        ValueError: A call does not decode; the message names the line or the position.
    """
    raw = path.read_bytes()
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        doc = None  # several JSON documents: JSON lines
    try:
        if isinstance(doc, list):
            return msgspec.convert(doc, list[Call])
        if isinstance(doc, dict) and "calls" in doc:
            return msgspec.convert(doc["calls"], list[Call])
        if isinstance(doc, dict):
            return [msgspec.convert(doc, Call)]
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from None
    calls: list[Call] = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            calls.append(_call.decode(line))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ValueError(f"{path}:{n}: {exc}") from None
    return calls
