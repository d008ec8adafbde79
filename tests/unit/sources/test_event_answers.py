"""A source event answered from its input's prototype (``service/sources/answers.py``) is the
answer and the records the route's own steps give, byte for byte.

The fast route's first event of a mapped input takes the plain steps (map, score, encode the
``SourceAnswer``) and leaves a prototype; later events of that input are joined from it. Each
case below sends the warming event to one route and the event under test to it and to a fresh
route (which can only take the plain steps), at the same clock, and compares the answer's bytes
and the exact arguments each log would send to Redis. Cases: another ticket, another reported
time and offset, no reported time (targets from the clock: the tool's due date is remembered per
second), a table reload, every tool's payloads.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.datastructures import State

from service.api.sources import SourceEventRoute, _Ready, _Remembered
from service.core.calls import Call
from service.core.decision import Decision
from service.core.sources import ADAPTERS, WriteBackSettings
from service.errors import InvalidEvent
from service.files.loader import load_all, load_set
from service.files.store import TableStore
from service.governance.decision_log import DecisionLog
from service.governance.event_log import EventLog
from service.sources.secrets import SecretCache
from service.sources.signatures import sign
from service.sources.writeback.base import adapter
from tests.support.source_fixtures import FIXTURES, SCHEMES, SECRETS

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 30, 19, 44, 38, 880462, tzinfo=UTC)


@pytest.fixture(scope="module")
def scoring_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tables/2026.1`` with every source scoring only: the events the fast route serves."""
    target = tmp_path_factory.mktemp("scoring-only") / "tables"
    shutil.copytree(ROOT / "tables" / "2026.1", target / "2026.1")
    sources = target / "2026.1" / "sources.toml"
    sources.write_text(sources.read_text().replace("queue = true", "queue = false"))
    return target


def _route(store: TableStore, name: str) -> SourceEventRoute:
    env = {f"USM_SOURCE_{s.upper()}_SECRET": secret for s, secret in SECRETS.items()}
    state = State(
        {
            "tables": store,
            "source_secrets": SecretCache(env),
            "event_log": EventLog(),
            "decision_log": DecisionLog(),
        }
    )
    return SourceEventRoute(state, name)


def _headers(source: str, body: bytes) -> list[tuple[bytes, bytes]]:
    signed = sign(SCHEMES[source], SECRETS[source], body, timestamp=1772442000)
    return [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        *((k.lower().encode(), v.encode()) for k, v in signed.items()),
    ]


def _served(route: SourceEventRoute, body: bytes, now: datetime) -> tuple[Any, ...]:
    """What the route answers and what each log would send to Redis for this one event."""
    source = route.name
    parsed = route.parse_at(body, _headers(source, body), now)
    assert parsed is not None
    _, answer = route.answer(parsed)
    assert route.event_log is not None and route.decision_log is not None
    events = route.event_log._args(route.event_log._take())
    # The event log's time goes to Redis as UTF-8 either way: str or bytes, the same bytes.
    events = [a.encode() if isinstance(a, str) else a for a in events]
    decisions = route.decision_log._args(route.decision_log._take())
    return type(parsed), answer, events, decisions


def _compare(store: TableStore, source: str, warm: bytes, body: bytes, now: datetime) -> bytes:
    """The event ``body`` from the prototype ``warm`` left equals the plain steps' answer."""
    route = _route(store, source)
    first = _served(route, warm, now)
    assert first[0] is _Ready
    got = _served(route, body, now)
    expected = _served(_route(store, source), body, now)
    assert expected[0] is _Ready
    assert got[0] is _Remembered  # else this compares the plain steps with themselves
    assert got[1:] == expected[1:]
    return bytes(got[1])


def _rt(ticket: Any = 4711, created: Any = "2026-03-02T09:00:00Z", **fields: Any) -> bytes:
    cf = {"Impact": "Group", "Urgency": "Seriously impaired", "Service": "email", **fields}
    ticket_json = {"id": ticket, "status": "new", "created": created, "custom_fields": cf}
    return msgspec.json.encode({"event": "create", "ticket": ticket_json})


@pytest.mark.parametrize(
    "body",
    [
        _rt(4712),
        _rt('RT-"quoted" \u00e9\u2603'),
        _rt(created="2026-03-02T10:00:00.5+02:00"),
        _rt(created="2026-03-02T09:00:00.000001Z"),
        _rt(created=None),
        _rt(created=""),
        _rt(4713, created="2026-03-02T09:00:00+00:00"),
    ],
    ids=["ticket", "escaped ticket", "offset", "fraction", "no created", "empty", "+00:00"],
)
@pytest.mark.parametrize("now", [NOW, NOW.replace(microsecond=0)], ids=["now", "whole second"])
def test_a_remembered_rt_answer_is_the_plain_one(
    scoring_only: Path, body: bytes, now: datetime
) -> None:
    store = TableStore(load_all(scoring_only))
    answer = _compare(store, "rt", _rt(), body, now)
    ticket = msgspec.json.decode(body)["ticket"]
    assert msgspec.json.decode(answer)["ticket_id"] == str(ticket["id"])


def test_the_due_date_of_events_without_reported_time_follows_the_clock(
    scoring_only: Path,
) -> None:
    # Remembered per second of the clock: each event must still get its own second's due date.
    store = TableStore(load_all(scoring_only))
    route = _route(store, "rt")
    body = _rt(created=None)
    start = NOW.replace(microsecond=0)
    dues = []
    for offset in (0, 0.999999, 1, 1.5, 60, 3600, 0):
        now = start + timedelta(seconds=offset)
        got = _served(route, body, now)
        expected = _served(_route(store, "rt"), body, now)
        assert got[1:] == expected[1:], offset
        dues.append(msgspec.json.decode(got[1])["fields"]["Due"])
    assert dues[0] == dues[1] == dues[-1] != dues[2] == dues[3]
    assert len(set(dues)) == 4


def test_a_reloaded_table_set_is_answered_from_its_own_prototypes(
    scoring_only: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "tables"
    shutil.copytree(scoring_only, changed)
    sources = changed / "2026.1" / "sources.toml"
    sources.write_text(sources.read_text().replace('P2 = "70"', 'P2 = "75"', 1))
    store = TableStore(load_all(scoring_only))
    route = _route(store, "rt")
    before = _served(route, _rt(), NOW)
    assert _served(route, _rt(), NOW)[0] is _Remembered
    store.replace([load_set(changed / "2026.1")])
    after = _served(route, _rt(), NOW)
    assert after[1:] == _served(_route(store, "rt"), _rt(), NOW)[1:]
    assert msgspec.json.decode(before[1])["fields"]["Priority"] == 70
    assert msgspec.json.decode(after[1])["fields"]["Priority"] == 75
    assert _served(route, _rt(4712), NOW)[0] is _Remembered  # the new set's own


def test_another_mapped_input_is_not_answered_from_a_prototype(scoring_only: Path) -> None:
    store = TableStore(load_all(scoring_only))
    route = _route(store, "rt")
    _served(route, _rt(), NOW)
    other = _served(route, _rt(Impact="User"), NOW)
    assert other[0] is _Ready
    assert other[1:] == _served(_route(store, "rt"), _rt(Impact="User"), NOW)[1:]


def test_a_reported_time_without_timezone_is_refused_on_either_path(scoring_only: Path) -> None:
    store = TableStore(load_all(scoring_only))
    route = _route(store, "rt")
    _served(route, _rt(), NOW)
    body = _rt(created="2026-03-02T09:00:00")
    for fresh in (route, _route(store, "rt")):
        with pytest.raises(InvalidEvent, match="timezone"):
            fresh.parse_at(body, _headers("rt", body), NOW)


def _tool_cases() -> list[tuple[str, bytes]]:
    cases = []
    for folder in ("jira", "servicenow", "zammad", "glpi"):
        for path in sorted((FIXTURES / folder).glob("*.json")):
            if path.name.startswith(("search", "table", "tickets")) or "unmapped" in path.name:
                continue
            source = "jira_automation" if path.name == "automation_web_request.json" else folder
            cases.append((source, path.read_bytes()))
    return cases


@pytest.mark.parametrize(("source", "body"), _tool_cases(), ids=lambda c: str(c)[:40])
def test_every_tools_remembered_answer_is_the_plain_one(
    scoring_only: Path, source: str, body: bytes
) -> None:
    store = TableStore(load_all(scoring_only))
    route = _route(store, source)
    first = _served(route, body, NOW)
    second = _served(route, body, NOW)
    # A resolved or closed ticket scores nothing: it leaves no prototype to answer from.
    assert (second[0] is _Remembered) == (b'"action":"scored"' in first[1])
    assert second[1:] == _served(_route(store, source), body, NOW)[1:]


# An adapter reading finer than a second says so (to_the_second False): answered per event.
@pytest.mark.parametrize(
    "name", [n for n in ADAPTERS if getattr(adapter(n), "to_the_second", False)]
)
def test_adapters_that_say_so_answer_the_same_within_a_second(name: str, default_set: Any) -> None:
    tool = adapter(name)
    scorer = default_set.scorer()
    settings = WriteBackSettings(
        adapter=name,
        base_url="http://tool.example",
        priority={"P2": "70", "P3": "50"},
        fields={
            "usm_priority": "USM Priority",
            "due": "Due",
            "resolve_by": "Resolve by",
            "response_by": "Response by",
        },
    )
    call = Call(type="incident", impact="group", urgency="high")
    base = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)

    def answer(at: datetime) -> Any:
        d: Decision = scorer.score(call, at)
        return tool.answer(d, settings, None)

    same = [base, base + timedelta(microseconds=999_999), base.astimezone()]
    assert all(answer(at) == answer(base) for at in same)
    assert answer(base + timedelta(seconds=1)) != answer(base)
