"""The committed mappings read each tool's documented payload (tests/fixtures/sources/) as meant.

Pure: the source sections of every table set in ``tables/`` and the fixture JSON, no service.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.core.calls import Call
from service.core.mapping import TicketState, map_event
from service.core.sources import Source
from service.errors import InvalidEvent
from service.files.loader import load_set
from tests.support.tables import REPO_TABLES

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sources"
VERSIONS = sorted(p.name for p in REPO_TABLES.iterdir() if (p / "sources.toml").is_file())


def sources(version: str) -> dict[str, Source]:
    return {s.name: s for s in load_set(REPO_TABLES / version).tables.sources.source}


def payload(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


CREATED = [
    (
        "jira",
        "jira/issue_created.json",
        "SD-7",
        Call(type="incident", impact="department", urgency="high", service="email"),
    ),
    (
        "jira_automation",
        "jira/automation_web_request.json",
        "SD-8",
        Call(type="service_request", impact="user", urgency="normal", service="workplace"),
    ),
    (
        "servicenow",
        "servicenow/incident_insert.json",
        "9d385017c611228701d22104cc95c371",
        Call(
            type="incident", impact="department", urgency="high", service="network",
            category="network",
        ),
    ),
    (
        "zammad",
        "zammad/ticket_created.json",
        "81",
        Call(type="incident", impact="department", urgency="high", service="payroll"),
    ),
    (
        "glpi",
        "glpi/ticket_new.json",
        "42",
        Call(type="incident", impact="group", urgency="high", service="erp"),
    ),
]  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("source", "fixture", "ticket", "call"), CREATED)
def test_a_new_ticket_becomes_the_call_it_describes(
    version: str, source: str, fixture: str, ticket: str, call: Call
) -> None:
    event = map_event(sources(version)[source], payload(fixture))
    assert (event.ticket_id, event.state) == (ticket, TicketState.OPEN)
    assert event.call is not None
    reported = event.call.reported_at
    assert reported is not None and reported.utcoffset() is not None
    assert event.call == Call(**{**_fields(call), "reported_at": reported})


def _fields(call: Call) -> dict[str, Any]:
    return {f: getattr(call, f) for f in call.__struct_fields__}


@pytest.mark.parametrize(
    ("source", "fixture", "impact"),
    [
        ("jira", "jira/issue_updated.json", "organisation"),
        ("servicenow", "servicenow/incident_update.json", "organisation"),
        ("glpi", "glpi/ticket_update.json", "organisation"),
    ],
)
def test_an_update_is_a_change_with_the_new_impact(source: str, fixture: str, impact: str) -> None:
    event = map_event(sources("2026.1")[source], payload(fixture))
    assert event.state == TicketState.CHANGED
    assert event.call is not None and event.call.impact == impact


def test_a_zammad_update_counts_as_new_only_for_a_ticket_usm_does_not_know() -> None:
    # Zammad's body does not say whether the trigger fired on create or update.
    event = map_event(sources("2026.1")["zammad"], payload("zammad/ticket_updated.json"))
    assert event.state == TicketState.OPEN
    assert event.call is not None and event.call.impact == "organisation"


@pytest.mark.parametrize(
    ("source", "fixture", "edit", "state"),
    [
        ("jira", "jira/issue_resolved.json", {}, TicketState.RESOLVED),
        (
            "jira",
            "jira/issue_created.json",
            {"webhookEvent": "jira:issue_deleted"},
            TicketState.CLOSED,
        ),
        ("servicenow", "servicenow/incident_resolved.json", {}, TicketState.RESOLVED),
        ("servicenow", "servicenow/incident_update.json", {"state": "7"}, TicketState.RESOLVED),
        ("servicenow", "servicenow/incident_update.json", {"state": "8"}, TicketState.CLOSED),
        ("zammad", "zammad/ticket_closed.json", {}, TicketState.RESOLVED),
        ("glpi", "glpi/ticket_solved.json", {}, TicketState.RESOLVED),
        ("glpi", "glpi/ticket_update.json", {"event": "delete"}, TicketState.CLOSED),
    ],
)
def test_the_tools_end_states(
    source: str, fixture: str, edit: dict[str, Any], state: TicketState
) -> None:
    body = {**payload(fixture), **edit}
    event = map_event(sources("2026.1")[source], body)
    assert (event.state, event.call) == (state, None)


def test_a_zammad_merge_cancels() -> None:
    body = payload("zammad/ticket_created.json")
    body["ticket"]["state"] = "merged"
    assert map_event(sources("2026.1")["zammad"], body).state == TicketState.CLOSED


@pytest.mark.parametrize(
    ("source", "fixture", "message"),
    [
        (
            "jira",
            "jira/issue_created_unmapped_impact.json",
            "unknown impact 'Catastrophic' - at tool field `issue.fields.customfield_10004.value`"
            "; mapped: Extensive / Widespread, Significant / Large, Moderate / Limited, "
            "Minor / Localized",
        ),
        (
            "servicenow",
            "servicenow/incident_insert_unmapped_impact.json",
            "unknown impact '4' - at tool field `impact`; mapped: 1, 2, 3",
        ),
        (
            "zammad",
            "zammad/ticket_created_unmapped_priority.json",
            "unknown urgency '4 urgent' - at tool field `ticket.priority.name`; "
            "mapped: 1 low, 2 normal, 3 high",
        ),
        (
            "glpi",
            "glpi/ticket_new_unmapped_type.json",
            "unknown call type '3' - at tool field `item.type`; mapped: 1, 2",
        ),
    ],
)
def test_an_unmapped_value_names_the_tool_field_and_what_is_mapped(
    source: str, fixture: str, message: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        map_event(sources("2026.1")[source], payload(fixture))
    assert str(caught.value) == message


def test_a_jira_issue_without_impact_or_urgency_takes_the_defaults() -> None:
    body = payload("jira/issue_created.json")
    body["issue"]["fields"]["customfield_10004"] = None
    del body["issue"]["fields"]["customfield_10005"]
    event = map_event(sources("2026.1")["jira"], body)
    assert event.call is not None
    assert (event.call.impact, event.call.urgency) == ("user", "normal")
