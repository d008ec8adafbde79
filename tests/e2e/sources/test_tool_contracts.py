"""Contracts with Jira, ServiceNow, Zammad and GLPI, which cannot run here.

Each tool's documented payload (tests/fixtures/sources/<tool>/), signed the tool's way, goes into
a real ``usm api`` process on a real Redis; the tool's REST API is a real HTTP server on a free
loopback port (:class:`~tests.support.tool_receiver.ToolReceiver`). The tests check the decision
in the answer, the item's queue, and, after usm changes the decision without the tool asking (a
re-score over the API), the exact requests the tool receives: method, path, auth headers, body.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.sources.signatures import Scheme, sign
from tests.integration.governance.server import ApiProcess
from tests.support.processes import wait_for
from tests.support.tables import REPO_TABLES
from tests.support.tool_receiver import Answer, Received, ToolReceiver

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sources"
SESSION = "st-9f2c41"
"""The session token the GLPI stand-in hands out."""


def basic(user_password: str) -> str:
    return "Basic " + base64.b64encode(user_password.encode()).decode()


@dataclass(frozen=True)
class Wire:
    """One expected request: the parts a tool's API looks at."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass(frozen=True)
class Tool:
    """One tool's contract: its source, how it signs, what it sends and what it must receive."""

    source: str
    example_url: str
    """The base URL in the committed sources.toml, pointed at the stand-in for the test."""
    scheme: Scheme
    secret: str
    token: str
    folder: str
    created: str
    updated: str
    ended: str
    unmapped: str
    ticket: str
    team: str
    fields_created: dict[str, Any]
    """The answer's ``fields`` for the created ticket (P2): the decision in the tool's terms."""
    write_back: Callable[[str], list[Wire]]
    """What the tool receives when the ticket's priority becomes P1, P2 or P3."""
    unmapped_detail: str
    unmapped_field: str
    refused_detail: str
    answer: Callable[[Received], Answer] = field(default=lambda _r: Answer())

    def payload(self, name: str) -> bytes:
        return (FIXTURES / self.folder / name).read_bytes()


JSON = {"Content-Type": "application/json", "Accept": "application/json"}


RESOLVE = {
    "P1": datetime(2026, 3, 2, 13, 0, tzinfo=UTC),
    "P2": datetime(2026, 3, 2, 17, 0, tzinfo=UTC),
    "P3": datetime(2026, 3, 4, 9, 0, tzinfo=UTC),
}
"""Resolve-by of each priority for a ticket reported 2026-03-02 09:00 UTC (2026.1 targets)."""

MISSED = "response, resolve"
"""What the tools' missed-targets field shows: the fixtures' tickets were reported in March 2026
and never handed out, so both targets of every decision have passed."""


def jira_write_back(p: str) -> list[Wire]:
    name = {"P1": "Highest", "P2": "High", "P3": "Medium"}[p]
    auth = basic("svc-usm@example.com:atlassian-api-token")
    body = {
        "fields": {
            "priority": {"name": name},
            "duedate": RESOLVE[p].date().isoformat(),
            "customfield_10060": p,
            "customfield_10061": MISSED,
        }
    }
    return [Wire("PUT", "/rest/api/3/issue/SD-7", {**JSON, "Authorization": auth}, body)]


def servicenow_write_back(p: str) -> list[Wire]:
    path = "/api/now/table/incident/9d385017c611228701d22104cc95c371"
    auth = basic("svc_usm:table-api-password")
    body = {
        "u_usm_priority": p,
        "due_date": RESOLVE[p].strftime("%Y-%m-%d %H:%M:%S"),
        "u_usm_missed": MISSED,
    }
    return [Wire("PATCH", path, {**JSON, "Authorization": auth}, body)]


def zammad_write_back(p: str) -> list[Wire]:
    body = {
        "priority_id": {"P1": 3, "P2": 3, "P3": 2}[p],
        "usm_priority": p,
        "usm_resolve_by": RESOLVE[p].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "usm_missed": MISSED,
    }
    auth = {"Authorization": "Token token=zammad-access-token"}
    return [Wire("PUT", "/api/v1/tickets/81", {**JSON, **auth}, body)]


def glpi_write_back(p: str) -> list[Wire]:
    app = {"App-Token": "glpi-app-token"}
    session = {**app, "Session-Token": SESSION}
    body = {
        "input": {
            "priority": {"P1": 6, "P2": 5, "P3": 4}[p],
            "time_to_resolve": RESOLVE[p].strftime("%Y-%m-%d %H:%M:%S"),
        }
    }
    login = {**app, "Authorization": "user_token glpi-user-token"}
    update = {**session, "Content-Type": "application/json"}
    return [
        Wire("GET", "/apirest.php/initSession", login),
        Wire("PUT", "/apirest.php/Ticket/42", update, body),
        Wire("GET", "/apirest.php/killSession", session),
    ]


def glpi_answer(received: Received) -> Answer:
    if received.path.endswith("/initSession"):
        return Answer(200, json.dumps({"session_token": SESSION}).encode())
    if received.method == "PUT":
        return Answer(200, b'[{"42": true, "message": ""}]')
    return Answer(200, b"[]")


TOOLS = [
    Tool(
        source="jira",
        example_url="https://example.atlassian.net",
        scheme=Scheme.HMAC_SHA256,
        secret="jira-webhook-secret",
        token="svc-usm@example.com:atlassian-api-token",
        folder="jira",
        created="issue_created.json",
        updated="issue_updated.json",
        ended="issue_resolved.json",
        unmapped="issue_created_unmapped_impact.json",
        ticket="SD-7",
        team="infrastructure",
        fields_created={
            "fields": {
                "priority": {"name": "High"},
                "duedate": "2026-03-02",
                "customfield_10060": "P2",
                "customfield_10061": MISSED,
            }
        },
        write_back=jira_write_back,
        unmapped_detail="unknown impact 'Catastrophic' - at tool field "
        "`issue.fields.customfield_10004.value`; mapped: Extensive / Widespread, "
        "Significant / Large, Moderate / Limited, Minor / Localized",
        unmapped_field="issue.fields.customfield_10004.value",
        refused_detail="signature does not match the body - in header `X-Hub-Signature`",
    ),
    Tool(
        source="servicenow",
        example_url="https://example.service-now.com",
        scheme=Scheme.BASIC,
        secret="servicenow:rest-message-password",
        token="svc_usm:table-api-password",
        folder="servicenow",
        created="incident_insert.json",
        updated="incident_update.json",
        ended="incident_resolved.json",
        unmapped="incident_insert_unmapped_impact.json",
        ticket="9d385017c611228701d22104cc95c371",
        team="infrastructure",
        fields_created={
            "u_usm_priority": "P2",
            "due_date": "2026-03-02 17:00:00",
            "u_usm_missed": MISSED,
        },
        write_back=servicenow_write_back,
        unmapped_detail="unknown impact '4' - at tool field `impact`; mapped: 1, 2, 3",
        unmapped_field="impact",
        refused_detail="wrong credentials - in header `Authorization`",
    ),
    Tool(
        source="zammad",
        example_url="https://zammad.example.com",
        scheme=Scheme.HMAC_SHA1,
        secret="zammad-signature-token",
        token="zammad-access-token",
        folder="zammad",
        created="ticket_created.json",
        updated="ticket_updated.json",
        ended="ticket_closed.json",
        unmapped="ticket_created_unmapped_priority.json",
        ticket="81",
        team="applications",
        fields_created={
            "priority_id": 3,
            "usm_priority": "P2",
            "usm_resolve_by": "2026-03-02T17:00:00Z",
            "usm_missed": MISSED,
        },
        write_back=zammad_write_back,
        unmapped_detail="unknown urgency '4 urgent' - at tool field `ticket.priority.name`; "
        "mapped: 1 low, 2 normal, 3 high",
        unmapped_field="ticket.priority.name",
        refused_detail="signature does not match the body - in header `X-Hub-Signature`",
    ),
    Tool(
        source="glpi",
        example_url="https://glpi.example.com",
        scheme=Scheme.GLPI,
        secret="glpi-webhook-secret",
        token="glpi-app-token:glpi-user-token",
        folder="glpi",
        created="ticket_new.json",
        updated="ticket_update.json",
        ended="ticket_solved.json",
        unmapped="ticket_new_unmapped_type.json",
        ticket="42",
        team="applications",
        fields_created={"priority": 5, "time_to_resolve": "2026-03-02 17:00:00"},
        write_back=glpi_write_back,
        unmapped_detail="unknown call type '3' - at tool field `item.type`; mapped: 1, 2",
        unmapped_field="item.type",
        refused_detail="signature does not match the body and timestamp - in header "
        "`X-GLPI-signature`",
        answer=glpi_answer,
    ),
]

AUTOMATION_TOKEN = "automation-rule-token"
"""The bearer token a Jira automation rule's web request sends (source ``jira_automation``)."""

AUTH_HEADERS = ("Authorization", "App-Token", "Session-Token", "Content-Type", "Accept")
"""The headers a contract covers; transport headers (Host, Content-Length, ...) are not."""


def wire(received: Received) -> Wire:
    """What arrived, in the terms of :class:`Wire`."""
    headers = {k: v for k, v in received.headers.items() if k in AUTH_HEADERS}
    body = json.loads(received.body) if received.body else None
    return Wire(received.method, received.path, headers, body)


@dataclass
class Running:
    tool: Tool
    api: ApiProcess
    receiver: ToolReceiver
    tables: Path

    def post(self, name: str, secret: str | None = None, raw: bytes | None = None) -> Any:
        body = raw if raw is not None else self.tool.payload(name)
        headers = sign(self.tool.scheme, secret or self.tool.secret, body, timestamp=1772442000)
        return httpx.post(
            f"{self.api.url}/v1/sources/{self.tool.source}/events",
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=10,
        )

    def item(self, item_id: str) -> Any:
        return httpx.get(f"{self.api.url}/v1/items/{item_id}", timeout=10).json()


@pytest.fixture(params=TOOLS, ids=[t.source for t in TOOLS])
def running(
    request: pytest.FixtureRequest, tmp_path: Path, single_set_tables: Path, redis_url: str
) -> Iterator[Running]:
    tool: Tool = request.param
    with ToolReceiver(tool.answer) as receiver:
        tables = tmp_path / "tables"
        shutil.copytree(single_set_tables, tables)
        sources = tables / "2026.1" / "sources.toml"
        text = sources.read_text()
        assert f'base_url = "{tool.example_url}"' in text
        sources.write_text(text.replace(tool.example_url, receiver.url))
        stem = f"USM_SOURCE_{tool.source.upper()}_"
        env = {
            "REDIS_URL": redis_url,
            "USM_WRITEBACK_SECONDS": "0.1",
            stem + "SECRET": tool.secret,
            stem + "TOKEN": tool.token,
            "USM_SOURCE_JIRA_AUTOMATION_SECRET": AUTOMATION_TOKEN,
            "USM_SOURCE_JIRA_AUTOMATION_TOKEN": tool.token,
            "USM_TABLES_ACTIVATION_INTERVAL": "0.2",
        }
        api = ApiProcess(tables, tmp_path / "api.log", env)
        try:
            yield Running(tool, api, receiver, tables)
        finally:
            api.stop()


def test_the_documented_payload_is_scored_queued_and_written_back_on_every_change(
    running: Running,
) -> None:
    tool = running.tool
    sent: list[Wire] = []

    def written_back(priority: str) -> None:
        """The tool received exactly its API call(s) for ``priority``, after those before."""
        sent.extend(tool.write_back(priority))
        wait_for(
            f"the {priority} write-back at the {tool.source} stand-in",
            lambda: len(running.receiver.requests()) >= len(sent),
        )
        assert [wire(r) for r in running.receiver.requests()] == sent

    created = running.post(tool.created)
    assert created.status_code == 200, created.text
    answer = created.json()
    assert (answer["source"], answer["ticket_id"], answer["action"]) == (
        tool.source,
        tool.ticket,
        "queued",
    )
    assert answer["decision"]["priority"]["name"] == "P2"
    assert answer["decision"]["team"] == tool.team
    assert answer["decision"]["resolve_by"] == "2026-03-02T17:00:00Z"
    assert answer["fields"] == tool.fields_created
    item_id = answer["item_id"]
    assert running.item(item_id)["queue"] == f"usm.{tool.team}.P2"
    # A webhook cannot apply the answer: the decision is written into the new ticket.
    written_back("P2")

    # The tool raises the impact: re-scored to P1, moved, and the tool shows P1.
    updated = running.post(tool.updated).json()
    assert (updated["action"], updated["item_id"]) == ("rescored", item_id)
    assert updated["decision"]["priority"]["name"] == "P1"
    assert running.item(item_id)["queue"] == f"usm.{tool.team}.P1"
    written_back("P1")

    # usm changes the decision without the tool asking: the tool gets exactly its API call.
    patched = httpx.patch(
        f"{running.api.url}/v1/items/{item_id}",
        json={"urgency": "low", "reason": "contract test"},
        timeout=10,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["decision"]["priority"]["name"] == "P3"
    written_back("P3")

    # Resolved in the tool: the item is completed.
    ended = running.post(tool.ended).json()
    assert (ended["action"], ended["item_id"]) == ("completed", item_id)
    assert running.item(item_id)["state"] == "completed"


def test_a_wrong_signature_is_401_an_unmapped_value_422_and_neither_writes(
    running: Running,
) -> None:
    tool = running.tool
    wrong = "intruder:guess" if tool.scheme is Scheme.BASIC else "not-the-secret"
    refused = running.post(tool.created, secret=wrong)
    assert refused.status_code == 401, refused.text
    assert refused.json()["detail"] == tool.refused_detail

    unmapped = running.post(tool.unmapped)
    assert unmapped.status_code == 422, unmapped.text
    problem = unmapped.json()
    assert (problem["detail"], problem["field"]) == (tool.unmapped_detail, tool.unmapped_field)

    # Neither left an item behind: the same ticket, signed and mapped, is new.
    assert running.post(tool.created).json()["action"] == "queued"


@pytest.mark.parametrize("running", [TOOLS[0]], ids=["jira"], indirect=True)
def test_a_jira_automation_rule_gets_the_issue_edit_in_its_web_response(running: Running) -> None:
    body = (FIXTURES / "jira" / "automation_web_request.json").read_bytes()
    url = f"{running.api.url}/v1/sources/jira_automation/events"
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {AUTOMATION_TOKEN}"}
    r = httpx.post(url, content=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    answer = r.json()
    # Minor / Localized x Medium: user x normal = P4, service workplace -> service_desk;
    # P4 resolves in 5 days from the reported 09:30.
    assert (answer["ticket_id"], answer["action"]) == ("SD-8", "queued")
    assert answer["decision"]["priority"]["name"] == "P4"
    assert answer["fields"] == {
        "fields": {
            "priority": {"name": "Low"},
            "duedate": "2026-03-07",
            "customfield_10060": "P4",
            "customfield_10061": MISSED,
        }
    }
    assert running.item(answer["item_id"])["queue"] == "usm.service_desk.P4"
    wrong = httpx.post(url, content=body, headers={**headers, "Authorization": "Bearer x"})
    assert (wrong.status_code, wrong.json()["detail"]) == (
        401,
        "wrong credentials - in header `Authorization`",
    )


@pytest.mark.parametrize("running", [TOOLS[0]], ids=["jira"], indirect=True)
def test_a_table_set_coming_into_force_rewrites_the_issue_it_reprioritises(
    running: Running, tmp_path: Path
) -> None:
    """2027.1's matrix gives user x normal P5 instead of P4: the open issue is told, unasked."""
    body = (FIXTURES / "jira" / "automation_web_request.json").read_bytes()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {AUTOMATION_TOKEN}"}
    url = f"{running.api.url}/v1/sources/jira_automation/events"
    answer = httpx.post(url, content=body, headers=headers, timeout=10).json()
    assert answer["decision"]["priority"]["name"] == "P4"

    # A pull request merges the 2027.1 rules as a set that is in force at once.
    staged = tmp_path / "incoming"
    shutil.copytree(REPO_TABLES / "2027.1", staged)
    at = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=0)
    set_toml = staged / "set.toml"
    text = set_toml.read_text()
    assert 'version = "2027.1"' in text and "effective_from = 2027-01-01T00:00:00Z" in text
    set_toml.write_text(
        text.replace('version = "2027.1"', 'version = "2026.9"').replace(
            "effective_from = 2027-01-01T00:00:00Z", f"effective_from = {at.isoformat()}"
        )
    )
    sources = staged / "sources.toml"
    sources.write_text(sources.read_text().replace(running.tool.example_url, running.receiver.url))
    os.rename(staged, running.tables / "2026.9")

    wait_for("the re-prioritised issue written back", running.receiver.requests)
    assert [wire(r) for r in running.receiver.requests()] == [
        Wire(
            "PUT",
            "/rest/api/3/issue/SD-8",
            {**JSON, "Authorization": basic(running.tool.token)},
            # P5 resolves in 20 days from the reported 2026-03-02T09:30Z.
            {
                "fields": {
                    "priority": {"name": "Lowest"},
                    "duedate": "2026-03-22",
                    "customfield_10060": "P5",
                    "customfield_10061": MISSED,
                }
            },
        )
    ]
    item = running.item(answer["item_id"])
    assert (item["queue"], item["decision"]["table_version"]) == ("usm.service_desk.P5", "2026.9")
