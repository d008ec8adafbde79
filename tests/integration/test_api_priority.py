"""``POST /v1/priority`` and ``/v1/priority/batch``: decisions over HTTP."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import api_tables, app, client

__all__ = ["api_tables", "app", "client"]

Client = TestClient[Litestar]


def test_one_call_gets_its_priority_team_targets_and_explanation(client: Client) -> None:
    body = {
        "type": "incident",
        "impact": "user",
        "urgency": "high",
        "service": "email",
        "reported_at": "2026-03-02T09:00:00Z",
    }
    response = client.post("/v1/priority", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    d = response.json()
    assert d["priority"] == {"name": "P2", "level": 2, "label": "high"}
    assert d["impact"] == {"name": "department", "level": 2}
    assert d["urgency"] == {"name": "high", "level": 2}
    assert d["team"] == "infrastructure"
    assert (d["call_type"], d["workflow"], d["trigger"]) == ("incident", "incident", "reactive")
    assert d["reported_at"] == "2026-03-02T09:00:00Z"
    assert d["response_by"] == "2026-03-02T09:30:00Z"
    assert d["resolve_by"] == "2026-03-02T17:00:00Z"
    assert d["table_version"] == "2026.1"
    assert d["table_hash"].startswith("sha256:")
    assert [s["rule"] for s in d["explanation"]] == [
        "call_types.toml: incident",
        "levels.toml: impact",
        "levels.toml: urgency",
        "services.toml: email.impact_floor 'department'",
        "matrix.toml: matrix.department.high",
        "services.toml: email.team (no route matched)",
        "levels.toml: P2 targets",
    ]


def test_a_risk_is_scored_on_the_same_scale(client: Client) -> None:
    risk = {"type": "risk", "impact": 2, "likelihood": "likely", "proximity": "imminent"}
    incident = {"type": "incident", "impact": 2, "urgency": "high"}
    a = client.post("/v1/priority", json=risk).json()
    b = client.post("/v1/priority", json=incident).json()
    assert a["trigger"] == "proactive"
    assert a["priority"] == b["priority"] == {"name": "P2", "level": 2, "label": "high"}


def test_a_batch_returns_one_decision_per_call_in_order(client: Client) -> None:
    calls: list[dict[str, Any]] = [
        {"type": "incident", "impact": i, "urgency": u} for i in (4, 1, 3) for u in (4, 1)
    ]
    response = client.post("/v1/priority/batch", json={"calls": calls})
    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert [d["priority"]["name"] for d in decisions] == ["P5", "P3", "P3", "P1", "P5", "P2"]
    assert [d["impact"]["level"] for d in decisions] == [4, 4, 1, 1, 3, 3]


def test_a_batch_of_ten_thousand_calls_is_accepted(client: Client) -> None:
    calls = [{"type": "wish", "impact": "user", "urgency": "low"}] * 10_000
    response = client.post("/v1/priority/batch", json={"calls": calls})
    assert response.status_code == 200
    assert len(response.json()["decisions"]) == 10_000


def test_a_batch_scored_in_parts_keeps_call_order_and_names_a_bad_call_by_its_index(
    client: Client,
) -> None:
    from service.api.priority import PART

    levels = [(i % 4 + 1, i // 4 % 4 + 1) for i in range(2 * PART + 7)]
    calls = [{"type": "incident", "impact": i, "urgency": u} for i, u in levels]
    decisions = client.post("/v1/priority/batch", json={"calls": calls}).json()["decisions"]
    assert [(d["impact"]["level"], d["urgency"]["level"]) for d in decisions] == levels
    calls[PART + 3] = {**calls[PART + 3], "urgency": "hgih"}
    refused = client.post("/v1/priority/batch", json={"calls": calls})
    assert refused.status_code == 422
    assert refused.json()["field"] == f"$.calls[{PART + 3}].urgency"


def test_a_call_may_ask_for_a_loaded_version_by_name(client: Client) -> None:
    body = {"type": "incident", "impact": 1, "urgency": 1}
    response = client.post("/v1/priority", params={"version": "2026.1"}, json=body)
    assert response.status_code == 200
    assert response.json()["table_version"] == "2026.1"
    batch = client.post("/v1/priority/batch", params={"version": "2026.1"}, json={"calls": [body]})
    assert batch.json()["decisions"][0]["table_version"] == "2026.1"


def test_a_batch_answers_each_call_as_the_single_call_endpoint_does(client: Client) -> None:
    # A realistic mix: every call type, names and ranks, floors, routed and free categories,
    # duplicates, reported times in UTC, with microseconds, in another offset, and none (now).
    calls: list[dict[str, Any]] = [
        {"type": "incident", "impact": "group", "urgency": "high", "service": "email"},
        {"type": "incident", "impact": 1, "urgency": 1, "category": "security"},
        {"type": "incident", "urgency": "normal", "service": "erp"},
        {"type": "service_request", "impact": "3", "urgency": "low", "service": "website"},
        {"type": "change", "impact": "department", "urgency": 2, "category": "printer"},
        {"type": "wish", "impact": "user", "urgency": "low"},
        {"type": "risk", "impact": 2, "likelihood": "likely", "proximity": "near"},
        {"type": "risk", "impact": "organisation", "urgency": "immediate", "service": "payroll"},
    ]
    times = [
        None,
        "2026-03-01T08:00:00Z",
        "2026-03-01T08:00:00.123456Z",
        "2026-02-27T23:59:59+01:00",
    ]
    mix = [c if t is None else {**c, "reported_at": t} for t in times for c in calls]
    mix += [*mix[:5], mix[9]]  # duplicates, also non-adjacent
    batch = client.post("/v1/priority/batch", json={"calls": mix})
    assert batch.status_code == 200
    decisions = batch.json()["decisions"]
    assert len(decisions) == len(mix)
    clock = {"reported_at", "response_by", "resolve_by"}
    for call, decided in zip(mix, decisions, strict=True):
        single = client.post("/v1/priority", json=call).json()
        if "reported_at" in call:
            assert decided == single
        else:  # scored at another now: every field but the times is the same
            assert {k: v for k, v in decided.items() if k not in clock} == {
                k: v for k, v in single.items() if k not in clock
            }
    now_calls = [d for c, d in zip(mix, decisions, strict=True) if "reported_at" not in c]
    assert len({d["reported_at"] for d in now_calls}) == 1  # one now for the whole batch
