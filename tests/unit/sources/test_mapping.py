"""map_event: a tool's own payload -> ticket id, call and lifecycle, with errors in tool terms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.core.calls import Call
from service.core.mapping import TicketState, map_event
from service.core.sources import Lifecycle, Reader, Source
from service.errors import InvalidEvent
from service.files.loader import LoadedSet


@pytest.fixture
def rt(default_set: LoadedSet) -> Source:
    """The worked example's Request Tracker mapping (tables/2026.1/sources.toml)."""
    return next(s for s in default_set.tables.sources.source if s.name == "rt")


def _rt_event(event: str = "create", status: str = "new", **cf: Any) -> dict[str, Any]:
    fields = {"Impact": "Department", "Urgency": "Work stopped", **cf}
    return {
        "event": event,
        "ticket": {
            "id": 42,
            "status": status,
            "created": "2026-03-02T09:00:00Z",
            "custom_fields": fields,
        },
    }


def test_an_rt_ticket_becomes_a_call_with_our_names(rt: Source) -> None:
    event = map_event(rt, _rt_event())
    assert event.ticket_id == "42"
    assert event.state is TicketState.OPEN
    assert event.call == Call(
        type="incident",
        impact="department",
        urgency="immediate",
        reported_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
    )


def test_an_unmapped_value_names_the_tool_field_the_value_and_the_mapped_ones(rt: Source) -> None:
    with pytest.raises(InvalidEvent) as caught:
        map_event(rt, _rt_event(Impact="Everyone"))
    assert str(caught.value) == (
        "unknown impact 'Everyone' - at tool field `ticket.custom_fields.Impact`; "
        "mapped: Organisation, Department, Group, User"
    )
    assert caught.value.path == "ticket.custom_fields.Impact"
    assert caught.value.mapped == ["Organisation", "Department", "Group", "User"]


def test_a_missing_value_takes_the_default(rt: Source) -> None:
    payload = _rt_event()
    del payload["ticket"]["custom_fields"]["Urgency"]
    event = map_event(rt, payload)
    assert event.call is not None
    assert event.call.urgency == "normal"


def test_numbers_from_the_tool_match_the_map_by_their_json_text() -> None:
    # GLPI sends urgency 1-5 as numbers; the map is written with strings.
    source = Source(
        name="glpi_like",
        signature="bearer",
        ticket_id="id",
        call_type=Reader(default="incident"),
        urgency=Reader(path="urgency", map={"5": "immediate", "3": "normal"}),
    )
    event = map_event(source, {"id": 7, "urgency": 5})
    assert event.call is not None
    assert event.call.urgency == "immediate"
    assert event.ticket_id == "7"


def test_a_resolved_ticket_is_not_read_further(rt: Source) -> None:
    # Ending the work must not depend on the ticket's fields still being mappable.
    event = map_event(rt, _rt_event(event="update", status="resolved", Impact="Everyone"))
    assert event.state is TicketState.RESOLVED
    assert event.call is None


@pytest.mark.parametrize(
    ("event", "status", "state"),
    [
        ("create", "new", TicketState.OPEN),
        ("update", "open", TicketState.CHANGED),
        ("update", "rejected", TicketState.CLOSED),
        ("update", "deleted", TicketState.CLOSED),
    ],
)
def test_the_lifecycle_follows_the_tool_state(
    rt: Source, event: str, status: str, state: TicketState
) -> None:
    assert map_event(rt, _rt_event(event=event, status=status)).state is state


def test_without_a_ticket_id_nothing_can_be_idempotent(rt: Source) -> None:
    payload = _rt_event()
    del payload["ticket"]["id"]
    with pytest.raises(InvalidEvent, match=r"^missing ticket id - at tool field `ticket.id`$"):
        map_event(rt, payload)


def test_a_structured_value_where_one_value_belongs_is_refused(rt: Source) -> None:
    with pytest.raises(InvalidEvent) as caught:
        map_event(rt, _rt_event(Impact=["Department", "User"]))
    assert str(caught.value) == (
        "impact must be a single value, got list - at tool field `ticket.custom_fields.Impact`"
    )


def test_a_reported_time_that_is_not_a_date_names_its_field(rt: Source) -> None:
    payload = _rt_event()
    payload["ticket"]["created"] = "yesterday"
    with pytest.raises(InvalidEvent) as caught:
        map_event(rt, payload)
    assert caught.value.path == "ticket.created"
    assert "'yesterday' is not an RFC 3339 date-time" in str(caught.value)


def test_without_a_map_the_tool_value_passes_as_ours() -> None:
    source = Source(
        name="plain",
        signature="bearer",
        ticket_id="key",
        call_type=Reader(path="type"),
        impact=Reader(path="impact"),
        status=Lifecycle(path="state", resolved=["done"]),
    )
    event = map_event(source, {"key": "ABC-1", "type": "change", "impact": 2, "state": "open"})
    assert event.call == Call(type="change", impact=2)


def test_a_value_too_long_for_a_call_is_located_at_the_tool_field() -> None:
    source = Source(
        name="plain",
        signature="bearer",
        ticket_id="key",
        call_type=Reader(default="incident"),
        category=Reader(path="fields.labels[0]"),
    )
    with pytest.raises(InvalidEvent) as caught:
        map_event(source, {"key": "A-1", "fields": {"labels": ["x" * 300]}})
    assert caught.value.path == "fields.labels[0]"
    assert str(caught.value).startswith("Expected `str` of length <= 200")


@pytest.mark.parametrize(
    "expression",
    ["ticket.id", 'ticket.custom_fields."Call type"', "a", "a.b.c", "ticket.id.deeper"],
)
@pytest.mark.parametrize(
    "payload",
    [
        {"ticket": {"id": 3, "custom_fields": {"Call type": "Risk"}}},
        {"ticket": [1, 2]},
        {"a": {"b": {"c": [1]}}},
        {"a": "text"},
        [1, 2],
        None,
    ],
)
def test_a_plain_field_path_answers_exactly_as_jmespath(expression: str, payload: Any) -> None:
    import jmespath

    from service.core.expressions import FieldPath, compiled

    assert isinstance(compiled(expression), FieldPath)
    assert compiled(expression).search(payload) == jmespath.search(expression, payload)


@pytest.mark.parametrize(
    "expression",
    [
        "event == 'create'",
        "'create' == event",
        "event != 'create'",
        "a.b == `1`",
        "a.b != `true`",
        "a.b == `null`",
        'a == `{"b": 1}`',
    ],
)
@pytest.mark.parametrize(
    "payload",
    [
        {"event": "create"},
        {"event": "update"},
        {"event": None},
        {"a": {"b": 1}},
        {"a": {"b": 1.0}},
        {"a": {"b": True}},
        {"a": {"b": 0}},
        {"a": {"b": False}},
        {"a": "text"},
        [1, 2],
        None,
        {},
    ],
)
def test_a_field_compared_with_a_literal_answers_exactly_as_jmespath(
    expression: str, payload: Any
) -> None:
    import jmespath

    from service.core.expressions import FieldEquals, compiled

    assert isinstance(compiled(expression), FieldEquals)
    assert compiled(expression).search(payload) == jmespath.search(expression, payload)


def test_other_expressions_keep_the_jmespath_interpreter() -> None:
    from service.core.expressions import FieldEquals, FieldPath, compiled

    for expression in ("fields.labels[0]", "a || b", "*.x", "a == b", "a < `1`", "a[0] == 'x'"):
        assert not isinstance(compiled(expression), FieldPath | FieldEquals)
