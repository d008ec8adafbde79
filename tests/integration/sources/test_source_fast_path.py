"""Source events on the fast path (``SourceEventRoute``) are answered and recorded exactly as by
litestar's route.

Two real ``usm api`` servers, deployed alike (API keys, multiprocess metrics, decision log,
source event log, access log), one with ``USM_FAST_PATH`` on and one with it off, on their own
databases of the suite's Redis, with a copy of the tables whose sources only score
(``queue = false``: the events the fast path serves). Every case goes to both in the same order;
then status, headers (but ``Date``) and body bytes, the access lines, the event-log and
decision-log rows and the metric series must be the same.

The cases are each tool's documented payloads signed its way (bearer, basic, HMAC-SHA256,
HMAC-SHA1, GLPI), and what the one canonical route must refuse: unknown source, missing and
wrong credentials, malformed JSON, an unmapped value, a value scoring refuses, no ticket id,
another content type, a repeated Authorization header.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis
from litestar.testing import TestClient

from service.api.app import create_app
from service.api.fast import FastPath, fast_routes
from service.governance.decision_log import read_log
from service.governance.event_log import read_events
from service.security.keys import hash_key
from service.settings import Settings
from service.sources.signatures import sign
from tests.support.asgi_recorder import Recorder
from tests.support.processes import ApiProcess, wait_for
from tests.support.redis_server import free_port
from tests.support.served import access_lines, asgi_call, metric_series
from tests.support.source_fixtures import FIXTURES, SCHEMES, SECRETS

ROOT = Path(__file__).resolve().parents[3]
CREATED = "2026-03-02T09:00:00Z"
"""RT tickets' creation time: their decisions do not depend on the clock."""


@dataclass
class Case:
    name: str
    source: str
    body: bytes
    headers: list[tuple[str, str]]


def _rt(ticket_id: Any = 4711, created: str = CREATED, **fields: Any) -> bytes:
    cf = {"Impact": "Group", "Urgency": "Seriously impaired", "Service": "email", **fields}
    ticket = {"id": ticket_id, "status": "new", "created": created, "custom_fields": cf}
    return msgspec.json.encode({"event": "create", "ticket": ticket})


def _signed(source: str, body: bytes, secret: str | None = None) -> list[tuple[str, str]]:
    signed = sign(SCHEMES[source], secret or SECRETS[source], body, timestamp=1772442000)
    return [("content-type", "application/json"), *signed.items()]


def _cases() -> list[Case]:
    cases = [
        Case("rt created", "rt", _rt(), _signed("rt", _rt())),
        Case("rt other values", "rt", _rt(Impact="User"), _signed("rt", _rt(Impact="User"))),
        Case("rt no service", "rt", _rt(Service=None), _signed("rt", _rt(Service=None))),
    ]
    tools = {"jira": "jira", "servicenow": "servicenow", "zammad": "zammad", "glpi": "glpi"}
    for source, folder in tools.items():
        for path in sorted((FIXTURES / folder).glob("*.json")):
            if path.name.startswith(("search", "table", "tickets")):
                continue
            body = path.read_bytes()
            if path.name == "automation_web_request.json":
                source = "jira_automation"  # noqa: PLW2901 - the automation rule's own source
            cases.append(Case(f"{source} {path.stem}", source, body, _signed(source, body)))
    # The same mapped inputs again: answered from the prototypes the first ones left
    # (service/sources/answers.py), for other tickets and reported times too.
    cases += [Case(f"{c.name} again", c.source, c.body, c.headers) for c in list(cases)]
    for ticket, created in (('RT-"2" \u00e9', CREATED), (4712, "2026-03-02T10:00:00.5+02:00")):
        again = _rt(ticket, created)
        cases.append(Case(f"rt ticket {ticket} at {created}", "rt", again, _signed("rt", again)))
    body = _rt()
    json_only = [("content-type", "application/json")]
    cases += [
        Case("unknown source", "otrs", body, _signed("rt", body)),
        Case("no credentials", "rt", body, json_only),
        Case("wrong token", "rt", body, _signed("rt", body, "not-the-token")),
        Case("jira signed with another secret", "jira", body, _signed("jira", body, "other")),
        Case("malformed JSON", "rt", b"{not json", _signed("rt", b"{not json")),
        Case("JSON list", "rt", b"[]", _signed("rt", b"[]")),
        Case(
            "unmapped urgency",
            "rt",
            _rt(Urgency="Yesterday"),
            _signed("rt", _rt(Urgency="Yesterday")),
        ),
        Case(
            "service scoring refuses",
            "rt",
            _rt(Service="coffee"),
            _signed("rt", _rt(Service="coffee")),
        ),
        Case(
            "no ticket id",
            "rt",
            b'{"event":"create","ticket":{}}',
            _signed("rt", b'{"event":"create","ticket":{}}'),
        ),
        Case("text/plain", "rt", body, [("content-type", "text/plain"), *_signed("rt", body)[1:]]),
        Case(
            "two Authorization headers",
            "rt",
            body,
            [*_signed("rt", body), ("authorization", "Bearer not-the-token")],
        ),
    ]
    return cases


CASES = _cases()
API_KEY = "key-of-a-scoring-client-" + "k" * 24


@dataclass
class Server:
    api: ApiProcess
    redis: redis.Redis


def _tables(tmp: Path) -> Path:
    """The shipped tables with every source scoring only: the events the fast path serves."""
    target = tmp / "tables"
    shutil.copytree(ROOT / "tables", target)
    for path in target.glob("*/sources.toml"):
        path.write_text(path.read_text().replace("queue = true", "queue = false"))
    return target


def _start(tmp: Path, name: str, redis_url: str, db: int, server: str) -> Server:
    (tmp / "metrics").mkdir()
    port = free_port()
    url = redis_url.rsplit("/", 1)[0] + f"/{db}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("USM_")}
    env |= {f"USM_SOURCE_{source.upper()}_SECRET": s for source, s in SECRETS.items()}
    env |= {
        "USM_SERVER": server,
        "USM_TABLES": str(_tables(tmp)),
        "USM_HOST": "127.0.0.1",
        "USM_PORT": str(port),
        "USM_API_KEYS": f"client:score:{hash_key(API_KEY)}",
        "USM_FAST_PATH": name,
        "REDIS_URL": url,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    command = [sys.executable, "-m", "service.cli.main", "api"]
    api = ApiProcess(command, env, tmp / f"{name}.log", port, append=False)
    api.start()
    return Server(api, redis.Redis.from_url(url))


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def servers(
    request: pytest.FixtureRequest, redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """``on`` and ``off``: the same service with and without the fast path."""
    started: dict[str, Server] = {}
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    try:
        for db, name in enumerate(("on", "off"), start=1):
            tmp = tmp_path_factory.mktemp(f"source-fast-{name}")
            started[name] = _start(tmp, name, redis_server.url, db, request.param)
        yield started
    finally:
        for s in started.values():
            s.api.stop()
            s.redis.close()
        client.flushall()
        client.close()


def _send(base: str, case: Case) -> tuple[Any, ...]:
    with httpx.Client(timeout=10) as client:
        response = client.post(
            f"{base}/v1/sources/{case.source}/events", content=case.body, headers=case.headers
        )
    # granian adds `Connection: close` to some early refusals by a race of its own
    # (tests/integration/test_api_fast_path.py): left out under granian only.
    volatile = {"date"} | ({"connection"} if response.headers.get("server") == "granian" else set())
    headers = [
        (k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in volatile
    ]
    return response.status_code, headers, response.content


def _access_lines(server: Server) -> list[str]:
    return access_lines(server.api.log(), "/v1/sources/")


def _metrics(server: Server) -> dict[str, float]:
    names = (
        "usm_source_events_total",
        "usm_source_events_refused_total",
        "usm_decisions_total",
        "usm_http_requests_total",
        "usm_http_request_duration_seconds_count",
    )
    return metric_series(
        server.api.url,
        names,
        lambda name, labels: (
            name.startswith(("usm_source", "usm_decisions")) or "/v1/sources" in labels
        ),
    )


def test_source_events_on_the_fast_path_answer_as_litestars_route(
    servers: dict[str, Server],
) -> None:
    on, off = servers["on"], servers["off"]
    answers: dict[str, list[tuple[Any, ...]]] = {"on": [], "off": []}
    for case in CASES:
        for name, server in servers.items():
            answers[name].append(_send(server.api.url, case))
        assert answers["on"][-1] == answers["off"][-1], case.name
    statuses = [a[0] for a in answers["on"]]
    assert statuses.count(200) >= 12 and {401, 404, 400, 422} <= set(statuses), statuses

    sent = len(CASES)
    wait_for("the access lines", lambda: all(len(_access_lines(s)) >= sent for s in (on, off)))
    assert _access_lines(on) == _access_lines(off)

    def events(server: Server) -> list[tuple[str, Any]]:
        return [(e.source, e.payload) for e in read_events(server.redis, 1000)]

    def rows(server: Server) -> list[tuple[Any, ...]]:
        return [(e.call, e.version, e.priority, e.team) for e in read_log(server.redis, 1000)]

    # The logs are flushed in the background: wait for all of each, then compare.
    logged = statuses.count(200) + statuses.count(422)  # past the signature and the decoding
    decided = sum(1 for _, _, body in answers["off"] if b'"decision":{' in body)
    for server in (on, off):
        wait_for("the event log", lambda s=server: len(events(s)) >= logged)  # type: ignore[misc]
        wait_for("the decision log", lambda s=server: len(rows(s)) >= decided)  # type: ignore[misc]
    assert events(on) == events(off)
    assert len(events(on)) == logged
    assert rows(on) == rows(off)
    assert len(rows(on)) == decided

    metrics_on, metrics_off = _metrics(on), _metrics(off)
    assert metrics_on == metrics_off
    assert metrics_on['usm_source_events_total{action="scored",source="rt"}'] >= 3


# --- The fast path is taken at all (else the comparison above would hold trivially). ----------


def _post(app: Any, source: str, body: bytes, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    raw = [(k.encode(), v.encode()) for k, v in headers]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/v1/sources/{source}/events",
        "raw_path": f"/v1/sources/{source}/events".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*raw, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = asgi_call(app, scope, [{"type": "http.request", "body": body, "more_body": False}])
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent)


@pytest.fixture
def served(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FastPath, Recorder]]:
    tables = tmp_path / "tables"
    shutil.copytree(ROOT / "tables" / "2026.1", tables / "2026.1")
    text = (tables / "2026.1" / "sources.toml").read_text()
    (tables / "2026.1" / "sources.toml").write_text(
        text.replace("queue = true", "queue = false", 1)
    )
    monkeypatch.setenv("USM_SOURCE_RT_SECRET", SECRETS["rt"])
    monkeypatch.setenv("USM_SOURCE_JIRA_SECRET", SECRETS["jira"])
    monkeypatch.delenv("USM_FAST_PATH", raising=False)
    settings = Settings(redis_url=redis_url, tables=str(tables))
    app = create_app(settings)
    recorder = Recorder(app)
    with TestClient(app):  # the lifespan: item store, outbox
        yield (
            FastPath(recorder, fast_routes(app), app.state.security, settings.max_body_bytes),
            recorder,
        )


def test_a_scoring_only_event_never_reaches_litestar(served: tuple[FastPath, Recorder]) -> None:
    app, recorder = served
    status, body = _post(app, "rt", _rt(), _signed("rt", _rt()))
    assert status == 200, body
    assert msgspec.json.decode(body)["action"] == "scored"
    assert recorder.bodies == []


@pytest.mark.parametrize(
    ("name", "source", "status"),
    [
        ("wrong token", "rt", 401),
        ("unmapped urgency", "rt", 422),
        ("malformed JSON", "rt", 400),
        ("unknown source", "otrs", 404),
    ],
)
def test_every_refusal_is_litestars_with_the_body_intact(
    served: tuple[FastPath, Recorder], name: str, source: str, status: int
) -> None:
    app, recorder = served
    case = next(c for c in CASES if c.name == name)
    got, _ = _post(app, source, case.body, case.headers)
    assert got == status
    assert recorder.bodies == [case.body]


def test_a_source_that_queues_is_litestars(served: tuple[FastPath, Recorder]) -> None:
    # Item writes stay on the route's worker thread: jira queues in these tables.
    app, recorder = served
    body = (FIXTURES / "jira" / "issue_created.json").read_bytes()
    status, _ = _post(app, "jira", body, _signed("jira", body))
    assert status == 200
    assert recorder.bodies == [body]
