"""Reconciliation contracts with Jira, ServiceNow, Zammad and GLPI, which cannot run here.

Each tool's search API is a real HTTP server on a loopback port (:class:`FakeTool` on
:class:`~tests.support.tool_receiver.ToolReceiver`) serving the documented search answer
(tests/fixtures/sources/<tool>/: three tickets usm never heard of, their webhooks lost), paged
the tool's way, and showing what write-back sends it. ``usm sources sync`` runs against it with
a real Redis. The tests check the exact search requests (method, path, query, auth), that every
missed ticket is queued once and written back once, that a second sync changes nothing, that the
cursor leaves no gap, and that a search whose paging never ends fails instead of looping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from service.core.sources import Source
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet, load_all
from service.sources.outbox import Outbox, Sender
from service.sources.search import base as search_base
from service.sources.search.base import SearchFailed
from service.sources.sync import MARGIN, last_sync, sync_source
from tests.e2e.sources.test_tool_contracts import (
    SESSION,
    Wire,
    basic,
    glpi_write_back,
    jira_write_back,
    servicenow_write_back,
    wire,
    zammad_write_back,
)
from tests.support.processes import ROOT, RUN_CLI
from tests.support.tool_receiver import Answer, Received, ToolReceiver

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sources"
SINCE = datetime(2026, 3, 2, 8, 58, 30, tzinfo=UTC)
"""Where the syncs start: the fixtures' tickets changed after it."""


def _query(received: Received) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(received.path).query))


def _path(received: Received) -> str:
    return urllib.parse.urlsplit(received.path).path


@dataclass
class FakeTool:
    """A tool's search API over the fixture's tickets; write-backs change what it shows."""

    tickets: list[dict[str, Any]]
    page: Callable[[FakeTool, Received], Answer]
    write: Callable[[FakeTool, Received], None]
    search_path: str
    searches: list[Received] = field(default_factory=list)

    def answer(self, received: Received) -> Answer:
        path = _path(received)
        if path.endswith("/initSession"):
            return Answer(200, json.dumps({"session_token": SESSION}).encode())
        if path.endswith("/killSession"):
            return Answer(200, b"[]")
        if path.endswith("/myself"):  # Jira: the service account, for its time zone
            return _json({"accountId": "5b10ac8d82e05b22cc7d4ef6", "timeZone": "Europe/Amsterdam"})
        if received.method == "GET" and path == self.search_path:
            self.searches.append(received)
            return self.page(self, received)
        if received.method in ("PUT", "PATCH"):
            self.write(self, received)
            return Answer(200, b"{}")
        return Answer(404, b"{}")


def _json(doc: Any, status: int = 200) -> Answer:
    return Answer(status, json.dumps(doc).encode())


def jira_page(tool: FakeTool, r: Received) -> Answer:
    q = _query(r)
    start = int(q.get("nextPageToken", "tok-0").removeprefix("tok-"))
    size = int(q["maxResults"])
    end = start + size
    doc: dict[str, Any] = {"issues": tool.tickets[start:end], "isLast": end >= len(tool.tickets)}
    if end < len(tool.tickets):
        doc["nextPageToken"] = f"tok-{end}"
    return _json(doc)


def jira_write(tool: FakeTool, r: Received) -> None:
    key = _path(r).rsplit("/", 1)[-1]
    for issue in tool.tickets:
        if issue["key"] == key:
            issue["fields"].update(json.loads(r.body)["fields"])


def servicenow_page(tool: FakeTool, r: Received) -> Answer:
    q = _query(r)
    start, size = int(q["sysparm_offset"]), int(q["sysparm_limit"])
    return _json({"result": tool.tickets[start : start + size]})


def servicenow_write(tool: FakeTool, r: Received) -> None:
    sys_id = _path(r).rsplit("/", 1)[-1]
    for record in tool.tickets:
        if record["sys_id"]["value"] == sys_id:
            for k, v in json.loads(r.body).items():
                record[k] = {"display_value": v, "value": v}


def zammad_page(tool: FakeTool, r: Received) -> Answer:
    q = _query(r)
    size = int(q["per_page"])
    start = (int(q["page"]) - 1) * size
    return _json(tool.tickets[start : start + size])


def zammad_write(tool: FakeTool, r: Received) -> None:
    ticket_id = int(_path(r).rsplit("/", 1)[-1])
    for ticket in tool.tickets:
        if ticket["id"] == ticket_id:
            ticket.update(json.loads(r.body))


def glpi_page(tool: FakeTool, r: Received) -> Answer:
    first, last = (int(n) for n in _query(r)["range"].split("-"))
    rows = tool.tickets[first : last + 1]
    total = len(tool.tickets)
    body = {"totalcount": total, "count": len(rows), "sort": [2], "order": ["ASC"], "data": rows}
    return _json(body, 200 if len(rows) == total else 206)


def glpi_write(tool: FakeTool, r: Received) -> None:
    ticket_id = int(_path(r).rsplit("/", 1)[-1])
    for row in tool.tickets:
        if row["2"] == ticket_id:
            row["3"] = json.loads(r.body)["input"]["priority"]


@dataclass(frozen=True)
class Contract:
    """One tool's reconciliation contract."""

    source: str
    example_url: str
    token: str
    fixture: str
    tickets: Callable[[Any], list[dict[str, Any]]]
    page: Callable[[FakeTool, Received], Answer]
    write: Callable[[FakeTool, Received], None]
    search_path: str
    first_search: Callable[[datetime], dict[str, str]]
    """The first search request's query for a sync from ``since``."""
    next_page: tuple[str, str]
    """The query parameter that moves to the second page (page size 2), and its value."""
    auth: dict[str, str]
    ids: tuple[str, ...]
    """The tickets' ids in usm, in the tool's order."""
    priorities: tuple[str, ...]
    """Their priorities under 2026.1."""
    write_back: Callable[[str], list[Wire]]
    """The write-back requests of the first ticket at P2."""


def _glpi_search(since: datetime) -> dict[str, str]:
    fields = ["2", "12", "10", "11", "3", "14", "7", "15", "19"]
    query = {
        "criteria[0][field]": "19",
        "criteria[0][searchtype]": "morethan",
        "criteria[0][value]": since.strftime("%Y-%m-%d %H:%M:%S"),
        "sort": "2",
        "order": "ASC",
        "range": "0-1",
    }
    query.update({f"forcedisplay[{i}]": n for i, n in enumerate(fields)})
    return query


SN_FIELDS = (
    "sys_id,number,short_description,impact,urgency,priority,state,category,subcategory,"
    "business_service,cmdb_ci,opened_at,sys_updated_on,u_usm_priority"
)

CONTRACTS = [
    Contract(
        source="jira",
        example_url="https://example.atlassian.net",
        token="svc-usm@example.com:atlassian-api-token",
        fixture="jira/search_jql.json",
        tickets=lambda doc: doc["issues"],
        page=jira_page,
        write=jira_write,
        search_path="/rest/api/3/search/jql",
        first_search=lambda _since: {
            # 08:58:30 UTC is 09:58:30 in Amsterdam in March, the service account's zone.
            "jql": 'updated >= "2026/03/02 09:58" ORDER BY created ASC, key ASC',
            "fields": "*all",
            "maxResults": "2",
        },
        next_page=("nextPageToken", "tok-2"),
        auth={"Authorization": basic("svc-usm@example.com:atlassian-api-token")},
        ids=("SD-7", "SD-8", "SD-9"),
        priorities=("P2", "P1", "P3"),
        write_back=jira_write_back,
    ),
    Contract(
        source="servicenow",
        example_url="https://example.service-now.com",
        token="svc_usm:table-api-password",
        fixture="servicenow/table_incident.json",
        tickets=lambda doc: doc["result"],
        page=servicenow_page,
        write=servicenow_write,
        search_path="/api/now/table/incident",
        first_search=lambda _since: {
            "sysparm_query": (
                "sys_updated_on>=javascript:gs.dateGenerate('2026-03-02','08:58:30')^ORDERBYsys_id"
            ),
            "sysparm_fields": SN_FIELDS,
            "sysparm_display_value": "all",
            "sysparm_exclude_reference_link": "true",
            "sysparm_limit": "2",
            "sysparm_offset": "0",
        },
        next_page=("sysparm_offset", "2"),
        auth={"Authorization": basic("svc_usm:table-api-password")},
        ids=(
            "9d385017c611228701d22104cc95c371",
            "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "f0e1d2c3b4a5968778695a4b3c2d1e0f",
        ),
        priorities=("P2", "P1", "P4"),
        write_back=servicenow_write_back,
    ),
    Contract(
        source="zammad",
        example_url="https://zammad.example.com",
        token="zammad-access-token",
        fixture="zammad/tickets_search_expand.json",
        tickets=lambda doc: doc,
        page=zammad_page,
        write=zammad_write,
        search_path="/api/v1/tickets/search",
        first_search=lambda since: {
            "query": f"updated_at:[{since.strftime('%Y-%m-%dT%H:%M:%SZ')} TO *]",
            "expand": "true",
            "sort_by": "id",
            "order_by": "asc",
            "page": "1",
            "per_page": "2",
        },
        next_page=("page", "2"),
        auth={"Authorization": "Token token=zammad-access-token"},
        ids=("81", "82", "83"),
        priorities=("P2", "P2", "P5"),
        write_back=zammad_write_back,
    ),
    Contract(
        source="glpi",
        example_url="https://glpi.example.com",
        token="glpi-app-token:glpi-user-token",
        fixture="glpi/search_ticket.json",
        tickets=lambda doc: doc["data"],
        page=glpi_page,
        write=glpi_write,
        search_path="/apirest.php/search/Ticket",
        first_search=_glpi_search,
        next_page=("range", "2-3"),
        auth={"App-Token": "glpi-app-token", "Session-Token": SESSION},
        ids=("42", "43", "44"),
        priorities=("P2", "P1", "P4"),
        write_back=glpi_write_back,
    ),
]


@dataclass
class Running:
    contract: Contract
    tool: FakeTool
    receiver: ToolReceiver
    tables: Path
    loaded: LoadedSet
    conn: redis.Redis
    env: dict[str, str]

    @property
    def source(self) -> Source:
        return next(s for s in self.loaded.tables.sources.source if s.name == self.contract.source)

    def sync(self, since: datetime | None = None, page_size: int = 2) -> Any:
        scorer = self.loaded.scorer()
        return sync_source(self.conn, self.source, scorer, since, page_size=page_size)

    def deliver(self) -> list[Wire]:
        """One round of the write-back sender, as ``usm api`` runs it; what the tool received."""
        before = len(self.receiver.requests())
        items = ItemStore(self.conn)
        Sender(Outbox(self.conn), lambda: self.loaded.tables, items=items).run_once()
        return [wire(r) for r in self.receiver.requests()[before:]]


@pytest.fixture(params=CONTRACTS, ids=[c.source for c in CONTRACTS])
def running(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    single_set_tables: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Running]:
    contract: Contract = request.param
    doc = json.loads((FIXTURES / contract.fixture).read_text())
    tool = FakeTool(contract.tickets(doc), contract.page, contract.write, contract.search_path)
    env = {f"USM_SOURCE_{contract.source.upper()}_TOKEN": contract.token}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with ToolReceiver(tool.answer) as receiver:
        tables = tmp_path / "tables"
        shutil.copytree(single_set_tables, tables)
        sources = tables / "2026.1" / "sources.toml"
        sources.write_text(sources.read_text().replace(contract.example_url, receiver.url))
        conn = redis.Redis.from_url(redis_url)
        try:
            yield Running(
                contract,
                tool,
                receiver,
                tables,
                load_all(tables)[-1],
                conn,
                {**env, "REDIS_URL": redis_url},
            )
        finally:
            conn.close()


def test_tickets_missed_while_usm_was_down_are_queued_and_written_back_once(
    running: Running,
) -> None:
    c = running.contract
    report = running.sync(SINCE)
    assert (report.tickets, report.actions, report.refused) == (3, {"queued": 3}, [])
    assert report.written_back == 3

    # The exact search requests: the first page, then the tool's way to the second.
    first, second = running.tool.searches
    assert (first.method, _path(first)) == ("GET", c.search_path)
    assert _query(first) == c.first_search(SINCE)
    assert {k: first.headers.get(k) for k in c.auth} == c.auth
    assert _query(second)[c.next_page[0]] == c.next_page[1]

    store = ItemStore(running.conn)
    items = []
    for ticket, priority in zip(c.ids, c.priorities, strict=True):
        item = store.find(c.source, ticket)
        assert item is not None, ticket
        assert item.decision.priority.name == priority, ticket
        items.append(item.id)

    written = running.deliver()
    per_ticket = len(c.write_back("P2"))
    assert len(written) == 3 * per_ticket  # one write-back per ticket
    chunks = [written[i : i + per_ticket] for i in range(0, len(written), per_ticket)]
    assert c.write_back("P2") in chunks

    # A second sync finds every ticket in place and showing its priority: nothing changes.
    again = running.sync(SINCE)
    assert (again.tickets, again.actions, again.written_back) == (3, {"unchanged": 3}, 0)
    assert running.deliver() == []
    assert [getattr(store.find(c.source, t), "id", None) for t in c.ids] == items


@pytest.mark.parametrize("running", [CONTRACTS[2]], ids=["zammad"], indirect=True)
def test_the_next_sync_starts_where_the_last_complete_one_started_minus_the_margin(
    running: Running,
) -> None:
    before = datetime.now(UTC)
    running.sync(before - timedelta(hours=1))
    mark = last_sync(running.conn, "zammad")
    assert mark is not None and before <= mark <= datetime.now(UTC)
    running.tool.searches.clear()
    running.sync()  # no --since: from the mark
    query = _query(running.tool.searches[0])["query"]
    assert query == f"updated_at:[{(mark - MARGIN).strftime('%Y-%m-%dT%H:%M:%SZ')} TO *]"


@pytest.mark.parametrize("running", [CONTRACTS[0]], ids=["jira"], indirect=True)
def test_a_page_token_that_comes_back_fails_the_sync_and_keeps_the_mark(running: Running) -> None:
    running.tool.page = lambda tool, r: _json(
        {"issues": tool.tickets[:1], "nextPageToken": "same", "isLast": False}
    )
    with pytest.raises(SearchFailed, match="the same nextPageToken"):
        running.sync(datetime.now(UTC) - timedelta(minutes=5))
    assert last_sync(running.conn, "jira") is None


@pytest.mark.parametrize("running", [CONTRACTS[1]], ids=["servicenow"], indirect=True)
def test_paging_that_never_ends_fails_after_the_page_limit(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_base, "MAX_PAGES", 4)
    # A tool that ignores sysparm_offset answers the first page forever.
    running.tool.page = lambda tool, r: _json({"result": tool.tickets[:2]})
    with pytest.raises(SearchFailed, match="did not end after 4 pages"):
        running.sync(datetime.now(UTC) - timedelta(minutes=5))
    assert len(running.tool.searches) == 4
    assert last_sync(running.conn, "servicenow") is None


@pytest.mark.parametrize("running", [CONTRACTS[3]], ids=["glpi"], indirect=True)
def test_usm_sources_sync_runs_from_the_command_line(running: Running) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    env = {**os.environ, "USM_TABLES": str(running.tables), **running.env}
    done = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "sources", "sync", "glpi", "--since", since],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
    report = msgspec.json.decode(done.stdout)
    assert (report["source"], report["tickets"], report["actions"]) == ("glpi", 3, {"queued": 3})


def jira_dc_page(tool: FakeTool, r: Received) -> Answer:
    q = _query(r)
    start, size = int(q["startAt"]), int(q["maxResults"])
    issues = tool.tickets[start : start + size]
    return _json(
        {"startAt": start, "maxResults": size, "total": len(tool.tickets), "issues": issues}
    )


@pytest.mark.parametrize("running", [CONTRACTS[0]], ids=["jira"], indirect=True)
def test_jira_data_center_is_searched_with_api_2_and_paged_with_start_at(running: Running) -> None:
    source = running.source
    assert source.writeback is not None
    dc = msgspec.structs.replace(
        source,
        writeback=msgspec.structs.replace(
            source.writeback, fields={**source.writeback.fields, "api": "2", "jql": "project = SD"}
        ),
    )
    running.tool.search_path, running.tool.page = "/rest/api/2/search", jira_dc_page
    report = sync_source(running.conn, dc, running.loaded.scorer(), SINCE, page_size=2)
    assert (report.tickets, report.actions) == (3, {"queued": 3})
    first, second = running.tool.searches
    assert _query(first) == {
        "jql": '(project = SD) AND updated >= "2026/03/02 09:58" ORDER BY created ASC, key ASC',
        "fields": "*all",
        "maxResults": "2",
        "startAt": "0",
    }
    assert _query(second)["startAt"] == "2"


@pytest.mark.parametrize("running", [CONTRACTS[3]], ids=["glpi"], indirect=True)
def test_glpi_refusing_a_range_past_a_shrunk_end_ends_the_search(running: Running) -> None:
    """A ticket went to the trash between two pages: GLPI answers 400 for the second page."""

    def shrinking(tool: FakeTool, r: Received) -> Answer:
        first = int(_query(r)["range"].split("-")[0])
        if first == 0:
            rows = tool.tickets[:2]
            return _json({"totalcount": 3, "count": 2, "data": rows}, 206)
        return _json(
            ["ERROR_RANGE_EXCEED_TOTAL", "Provided range exceed total count of data: 2"], 400
        )

    running.tool.page = shrinking
    report = running.sync(datetime.now(UTC) - timedelta(minutes=5))
    assert (report.tickets, report.actions) == (2, {"queued": 2})
    assert last_sync(running.conn, "glpi") is not None


@pytest.mark.parametrize("running", [CONTRACTS[0]], ids=["jira"], indirect=True)
def test_a_refused_search_exits_1_with_the_reason_and_keeps_the_mark(running: Running) -> None:
    running.tool.page = lambda _tool, _r: _json({"errorMessages": ["Unauthorized"]}, 401)
    env = {**os.environ, "USM_TABLES": str(running.tables), **running.env}
    done = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "sources", "sync", "jira", "--since", SINCE.isoformat()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr.decode()
    assert done.stderr.decode() == (
        f"usm sources sync jira: GET {running.receiver.url}/rest/api/3/search/jql?jql=updated+"
        "%3E%3D+%222026%2F03%2F02+09%3A58%22+ORDER+BY+created+ASC%2C+key+ASC&fields=%2Aall"
        "&maxResults=100 "
        "answered 401; the last sync mark stays, so the next run covers the same span\n"
    )
    assert last_sync(running.conn, "jira") is None
