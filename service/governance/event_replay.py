"""Replay recorded source events: each ticket's decision under the old and the new set.

A table change may touch a source mapping (``sources.toml``: a value map, a field path) as well
as the matrix, so replaying mapped calls is not enough. Here every recorded payload is mapped
again with *each* set's own mapping of its source, then scored by that set, and the tickets are
compared as the tool would see them: priority and team, resolved/closed, or refused (the mapping
or the tables cannot read it: a 422 in the tool). Only each ticket's latest recorded event counts,
since that is the ticket's current state. Pure: events and two sets in, a report out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from service.core.base import Base
from service.core.mapping import compiled, map_event, tool_text
from service.core.scoring import Scorer
from service.errors import InvalidCall, InvalidEvent
from service.governance.event_log import RecordedEvent
from service.governance.markdown import table

__all__ = [
    "EventReplayReport",
    "Outcome",
    "TicketReplay",
    "replay_events",
    "replay_events_markdown",
]


class Outcome(Base, omit_defaults=True):
    """What one set makes of a ticket's payload."""

    state: str
    """``open`` (scored), ``resolved``, ``closed``, ``refused`` or ``no source``."""
    priority: str | None = None
    team: str | None = None
    error: str | None = None
    """Why the set refuses the payload (the tool would get a 422)."""

    def text(self) -> str:
        if self.state == "open":
            return f"{self.priority} {self.team}"
        return f"{self.state}: {self.error}" if self.error else self.state


class TicketReplay(Base):
    """One ticket: its latest recorded event under both sets."""

    source: str
    ticket_id: str
    events: int
    """Recorded events of this ticket in the sample."""
    at: datetime
    """When its latest event arrived."""
    before: Outcome
    after: Outcome
    changed: bool


class EventReplayReport(Base):
    """What the new set (matrix and mappings) would make of the recorded tickets."""

    old_version: str
    old_hash: str
    new_version: str
    new_hash: str
    events: int
    tickets: int
    changed: int
    priority_changed: int
    team_changed: int
    refused: int
    """Tickets the new set refuses (its mapping or tables cannot read the latest payload)."""
    by_source: dict[str, int]
    """Tickets per source."""
    results: list[TicketReplay]
    """Every ticket, changed ones first, then by source and ticket id."""


def _outcome(scorer: Scorer, source_name: str, payload: Any, at: datetime) -> Outcome:
    source = next((s for s in scorer.tables.sources.source if s.name == source_name), None)
    if source is None:
        return Outcome(state="no source", error=f"no source '{source_name}' in this set")
    try:
        event = map_event(source, payload)
        if event.call is None:
            return Outcome(state=event.state.value)
        d = scorer.score(event.call, at)
    except (InvalidEvent, InvalidCall) as exc:
        return Outcome(state="refused", error=str(exc))
    return Outcome(state="open", priority=d.priority.name, team=d.team)


def _ticket_id(scorers: Sequence[Scorer], source_name: str, payload: Any) -> str | None:
    """The ticket id as the old set's mapping reads it, else as the new one's."""
    for scorer in scorers:
        for source in scorer.tables.sources.source:
            if source.name == source_name:
                found = tool_text(compiled(source.ticket_id).search(payload))
                if found:
                    return found
    return None


def replay_events(events: Sequence[RecordedEvent], old: Scorer, new: Scorer) -> EventReplayReport:
    """Map and score each ticket's latest event under ``old`` and ``new``; compare.

    Args:
        events: Recorded events, oldest first (:func:`~service.governance.event_log.read_events`).
        old: Scorer of the set in force (its tables hold the mappings too).
        new: Scorer of the proposed set.
    """
    latest: dict[tuple[str, str], tuple[RecordedEvent, int]] = {}
    for e in events:
        ticket = _ticket_id((old, new), e.source, e.payload) or f"(no ticket id, event {e.id})"
        _, seen = latest.get((e.source, ticket), (e, 0))
        latest[(e.source, ticket)] = (e, seen + 1)
    results: list[TicketReplay] = []
    for (source, ticket), (e, count) in latest.items():
        before = _outcome(old, source, e.payload, e.at)
        after = _outcome(new, source, e.payload, e.at)
        results.append(
            TicketReplay(
                source=source,
                ticket_id=ticket,
                events=count,
                at=e.at,
                before=before,
                after=after,
                changed=before != after,
            )
        )
    results.sort(key=lambda r: (not r.changed, r.source, r.ticket_id))
    both_open = [r for r in results if r.before.state == r.after.state == "open"]
    by_source: dict[str, int] = {}
    for r in results:
        by_source[r.source] = by_source.get(r.source, 0) + 1
    return EventReplayReport(
        old_version=old.version,
        old_hash=old.table_hash,
        new_version=new.version,
        new_hash=new.table_hash,
        events=len(events),
        tickets=len(results),
        changed=sum(r.changed for r in results),
        priority_changed=sum(r.before.priority != r.after.priority for r in both_open),
        team_changed=sum(r.before.team != r.after.team for r in both_open),
        refused=sum(r.after.state in ("refused", "no source") for r in results),
        by_source=dict(sorted(by_source.items())),
        results=results,
    )


def replay_events_markdown(report: EventReplayReport, examples: int) -> str:
    """The report for a pull request: totals, then up to ``examples`` changed tickets."""
    r = report
    sources = ", ".join(f"{k} {v}" for k, v in r.by_source.items()) or "none"
    out = [
        f"## Replay of recorded source events: {r.old_version} → {r.new_version}",
        "",
        f"{r.events} recorded events of {r.tickets} tickets ({sources}) mapped with each set's "
        f"own source mapping and scored: **{r.changed} tickets would change**: "
        f"{r.priority_changed} in priority, {r.team_changed} in team, {r.refused} refused by "
        "the new set.",
    ]
    changed = [t for t in r.results if t.changed][:examples]
    if changed:
        rows = [[t.source, t.ticket_id, t.before.text(), t.after.text()] for t in changed]
        out += ["", table(["source", "ticket", r.old_version, r.new_version], rows)]
    return "\n".join(out) + "\n"
