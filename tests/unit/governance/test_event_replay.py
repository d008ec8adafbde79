"""Replaying recorded source events: each ticket's latest payload, mapped by each set itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from service.core.calls import Call
from service.core.scoring import Scorer
from service.core.sources import Source
from service.files.loader import LoadedSet
from service.governance.event_log import RecordedEvent
from service.governance.event_replay import Outcome, replay_events, replay_events_markdown

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _rt(ticket: int, impact: str, status: str = "open") -> dict[str, Any]:
    fields = {"Impact": impact, "Urgency": "Seriously impaired", "Call type": "Incident"}
    return {"event": "update", "ticket": {"id": ticket, "status": status, "custom_fields": fields}}


def _events(*payloads: dict[str, Any]) -> list[RecordedEvent]:
    return [
        RecordedEvent(id=f"{n}-0", source="rt", payload=p, at=AT + timedelta(minutes=n))
        for n, p in enumerate(payloads)
    ]


def _with_rt(loaded: LoadedSet, change: dict[str, str]) -> Scorer:
    """The set with the rt source's impact map changed (``"Group" = "department"``, ...)."""

    def edit(source: Source) -> Source:
        if source.name != "rt" or source.impact is None:
            return source
        impact = msgspec.structs.replace(source.impact, map={**source.impact.map, **change})
        return msgspec.structs.replace(source, impact=impact)

    sources = msgspec.structs.replace(
        loaded.tables.sources, source=[edit(s) for s in loaded.tables.sources.source]
    )
    return Scorer(msgspec.structs.replace(loaded.tables, sources=sources), "sha256:edited")


def _scored(scorer: Scorer, impact: str) -> Outcome:
    """What ``scorer`` decides for an incident of ``impact`` x high (RT's Seriously impaired)."""
    d = scorer.score(Call(type="incident", impact=impact, urgency="high"), AT)
    return Outcome(state="open", priority=d.priority.name, team=d.team)


def test_only_each_tickets_latest_event_counts(default_set: LoadedSet) -> None:
    old = default_set.scorer()
    report = replay_events(_events(_rt(1, "User"), _rt(1, "Group"), _rt(2, "User")), old, old)
    assert (report.events, report.tickets, report.changed) == (3, 2, 0)
    first = next(r for r in report.results if r.ticket_id == "1")
    assert (first.events, first.at) == (2, AT + timedelta(minutes=1))
    assert first.before == _scored(old, "group")


def test_the_new_sets_own_mapping_reads_the_payload(default_set: LoadedSet) -> None:
    old = default_set.scorer()
    new = _with_rt(default_set, {"Group": "organisation", "Everyone": "organisation"})
    report = replay_events(_events(_rt(1, "Group"), _rt(2, "Everyone"), _rt(3, "User")), old, new)
    by_id = {r.ticket_id: r for r in report.results}
    assert by_id["1"].after == _scored(old, "organisation")
    assert by_id["1"].before == _scored(old, "group")
    assert by_id["2"].before.state == "refused"
    assert by_id["2"].before.error == (
        "unknown impact 'Everyone' - at tool field `ticket.custom_fields.Impact`; mapped: "
        "Organisation, Department, Group, User"
    )
    assert by_id["2"].after == _scored(old, "organisation")
    assert not by_id["3"].changed
    # Changed tickets first, then by source and ticket id.
    assert [r.ticket_id for r in report.results] == ["1", "2", "3"]
    assert (report.changed, report.refused) == (2, 0)


def test_a_resolved_ticket_shows_as_resolved_under_both(default_set: LoadedSet) -> None:
    old = default_set.scorer()
    report = replay_events(_events(_rt(1, "Group"), _rt(1, "Group", "resolved")), old, old)
    (result,) = report.results
    assert (result.before, result.after) == (Outcome(state="resolved"), Outcome(state="resolved"))
    assert "**0 tickets would change**" in replay_events_markdown(report, 10)
