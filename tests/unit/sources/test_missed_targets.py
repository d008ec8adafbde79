"""Which targets a decision has missed, and how each tool's adapter shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from service.core.calls import Call
from service.core.decision import Decision
from service.core.targets import Target, missed_targets, next_target, parse_missed, render_missed
from service.files.loader import LoadedSet
from service.sources.writeback.base import adapter

REPORTED = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def decision(default_set: LoadedSet) -> Decision:
    """P1 under 2026.1: respond by 09:15, resolve by 13:00."""
    call = Call(type="incident", impact="organisation", urgency="immediate", reported_at=REPORTED)
    d = default_set.scorer().score(call, REPORTED)
    assert (d.response_by, d.resolve_by) == (
        REPORTED + timedelta(minutes=15),
        REPORTED + timedelta(hours=4),
    )
    return d


def test_nothing_is_missed_before_the_response_target(decision: Decision) -> None:
    assert missed_targets(decision, None, None, decision.response_by - timedelta(seconds=1)) == ()


def test_a_waiting_item_misses_its_response_target_when_it_passes(decision: Decision) -> None:
    assert missed_targets(decision, None, None, decision.response_by) == (Target.RESPONSE,)


def test_a_hand_out_in_time_meets_the_response_target_for_good(decision: Decision) -> None:
    handed = decision.response_by - timedelta(minutes=1)
    later = decision.resolve_by - timedelta(minutes=1)
    assert missed_targets(decision, handed, None, later) == ()
    assert missed_targets(decision, handed, None, decision.resolve_by) == (Target.RESOLVE,)


def test_a_late_hand_out_stays_a_missed_response(decision: Decision) -> None:
    handed = decision.response_by + timedelta(minutes=1)
    assert missed_targets(decision, handed, None, handed + timedelta(hours=1)) == (Target.RESPONSE,)


def test_an_item_that_ended_in_time_misses_nothing_afterwards(decision: Decision) -> None:
    ended = decision.response_by - timedelta(minutes=1)
    assert missed_targets(decision, None, ended, decision.resolve_by + timedelta(days=1)) == ()


def test_the_next_target_is_the_earliest_still_ahead(decision: Decision) -> None:
    assert next_target(decision, REPORTED) == decision.response_by
    assert next_target(decision, decision.response_by) == decision.resolve_by
    assert next_target(decision, decision.resolve_by) is None


def test_flags_read_as_one_text_and_back() -> None:
    both = (Target.RESPONSE, Target.RESOLVE)
    assert render_missed(both) == "response, resolve"
    assert parse_missed("response, resolve") == both
    assert render_missed(()) == "" and parse_missed("") == ()


@pytest.mark.parametrize(
    ("name", "field", "shown", "cleared"),
    [
        ("rt", ("CustomFields", "USM Missed"), "response", None),
        ("jira", ("fields", "customfield_10061"), "response", None),
        ("servicenow", ("u_usm_missed",), "response", ""),
        ("zammad", ("usm_missed",), "response", ""),
    ],
)
def test_each_tool_shows_the_missed_targets_in_its_own_field(
    default_set: LoadedSet,
    decision: Decision,
    name: str,
    field: tuple[str, ...],
    shown: str,
    cleared: str | None,
) -> None:
    source = next(s for s in default_set.tables.sources.source if s.name == name)
    wb = source.writeback
    assert wb is not None and adapter(wb.adapter).carries_missed

    def value(missed: tuple[Target, ...] | None) -> object:
        body: object = adapter(wb.adapter).answer(decision, wb, missed)
        for key in field:
            assert isinstance(body, dict)
            if key not in body:
                return "(absent)"
            body = body[key]
        return body

    assert value((Target.RESPONSE,)) == shown
    assert value(()) == cleared  # a re-score can clear it
    assert value(None) == "(absent)"  # unknown: the tool's field is left alone
    # The requests carry the same field as the answer.
    (request,) = adapter(wb.adapter).requests("7", decision, wb, "t", (Target.RESPONSE,))
    assert msgspec.json.decode(request.body) == adapter(wb.adapter).answer(
        decision, wb, (Target.RESPONSE,)
    )


def test_glpi_has_no_field_for_missed_targets(default_set: LoadedSet) -> None:
    glpi = next(s for s in default_set.tables.sources.source if s.name == "glpi")
    assert glpi.writeback is not None
    assert not adapter("glpi").carries_missed
