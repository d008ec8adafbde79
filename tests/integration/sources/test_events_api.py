"""POST /v1/sources/{source}/events against a real Redis: the RT mapping of tables/2026.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from litestar.testing import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.fixtures.api import LOOPBACK

SECRET = "rt-webhook-secret"
AUTH = {"Authorization": f"Bearer {SECRET}"}
URL = "/v1/sources/rt/events"


@pytest.fixture
def client(
    redis_url: str, single_set_tables: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient[Any]]:
    monkeypatch.setenv("USM_SOURCE_RT_SECRET", SECRET)
    settings = Settings(redis_url=redis_url, tables=str(single_set_tables))
    with TestClient(create_app(settings), base_url=LOOPBACK) as c:
        yield c


_tickets = iter(range(10_000, 1_000_000))


def _ticket(ticket_id: int | None = None, **over: Any) -> dict[str, Any]:
    ticket: dict[str, Any] = {
        "id": ticket_id if ticket_id is not None else next(_tickets),
        "status": "new",
        "created": "2026-03-02T09:00:00Z",
        "custom_fields": {"Impact": "Group", "Urgency": "Seriously impaired"},
    }
    ticket.update(over)
    return {"event": "create", "ticket": ticket}


def _post(client: TestClient[Any], body: Any, headers: dict[str, str] = AUTH) -> Any:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return client.post(URL, content=raw, headers={"Content-Type": "application/json", **headers})


def test_a_new_ticket_is_scored_queued_and_answered_in_rt_fields(client: TestClient[Any]) -> None:
    r = _post(client, _ticket(501))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["action"] == "queued"
    assert answer["decision"]["priority"]["name"] == "P3"  # group x high in 2026.1
    assert answer["fields"]["Priority"] == 50
    # Reported in March 2026 and waiting since: both targets are missed, and RT is told so.
    assert answer["fields"]["CustomFields"] == {
        "USM Priority": "P3",
        "USM Missed": "response, resolve",
    }
    # RT's PUT date form, UTC; resolve target of P3 is 2 days from the reported time
    assert answer["fields"]["Due"] == "2026-03-04 09:00:00"
    item = client.get(f"/v1/items/{answer['item_id']}").json()
    assert (item["source"], item["external_id"], item["queue"]) == (
        "rt",
        "501",
        "usm.service_desk.P3",
    )


def test_the_same_event_twice_gives_one_item_and_changes_nothing(client: TestClient[Any]) -> None:
    body = _ticket()
    first = _post(client, body).json()
    again = _post(client, body).json()
    assert again["action"] == "unchanged"
    assert again["item_id"] == first["item_id"]
    assert again["decision"] == first["decision"]


def test_a_changed_mapped_field_rescores_and_moves_the_item(client: TestClient[Any]) -> None:
    body = _ticket()
    first = _post(client, body).json()
    body["event"] = "update"
    body["ticket"]["custom_fields"]["Impact"] = "Organisation"
    r = _post(client, body).json()
    assert r["action"] == "rescored"
    assert r["item_id"] == first["item_id"]
    assert r["decision"]["priority"]["name"] == "P1"
    item = client.get(f"/v1/items/{first['item_id']}").json()
    assert item["queue"] == "usm.service_desk.P1"
    assert item["history"][-1]["event"] == "rescored"
    assert "impact='organisation'" in item["history"][-1]["detail"]


def test_a_change_to_an_unmapped_field_leaves_the_item_alone(client: TestClient[Any]) -> None:
    body = _ticket()
    first = _post(client, body).json()
    body["event"] = "update"
    body["ticket"]["subject"] = "now with a subject"
    r = _post(client, body).json()
    assert r["action"] == "unchanged"
    item = client.get(f"/v1/items/{first['item_id']}").json()
    assert [h["event"] for h in item["history"]] == ["enqueued"]


def test_resolving_in_the_tool_completes_and_closing_cancels(client: TestClient[Any]) -> None:
    one, two = _ticket(), _ticket()
    a = _post(client, one).json()["item_id"]
    b = _post(client, two).json()["item_id"]
    one["ticket"]["status"] = "resolved"
    two["ticket"]["status"] = "rejected"
    assert _post(client, one).json()["action"] == "completed"
    assert _post(client, two).json()["action"] == "cancelled"
    assert client.get(f"/v1/items/{a}").json()["state"] == "completed"
    assert client.get(f"/v1/items/{b}").json()["state"] == "cancelled"
    assert _post(client, one).json()["action"] == "ignored"  # repeated: nothing left to end


def test_a_ticket_reopened_in_the_tool_is_queued_again_as_a_new_item(
    client: TestClient[Any],
) -> None:
    body = _ticket()
    first = _post(client, body).json()
    body["event"], body["ticket"]["status"] = "update", "resolved"
    assert _post(client, body).json()["action"] == "completed"
    body["ticket"]["status"] = "open"
    before = datetime.now(UTC)
    reopened = _post(client, body).json()
    assert reopened["action"] == "reopened"
    assert reopened["item_id"] != first["item_id"]
    # The re-opened work's targets count from the re-opening, not from RT's creation time.
    assert datetime.fromisoformat(reopened["decision"]["reported_at"]) >= before
    item = client.get(f"/v1/items/{reopened['item_id']}").json()
    assert (item["state"], item["queue"]) == ("queued", "usm.service_desk.P3")
    assert item["payload"]["reopened_from"] == first["item_id"]
    assert item["history"][0]["detail"] == (
        f"re-opened in rt (ticket {body['ticket']['id']}); previous item {first['item_id']}"
    )
    assert reopened["fields"]["Due"] == (
        datetime.fromisoformat(reopened["decision"]["resolve_by"]).strftime("%Y-%m-%d %H:%M:%S")
    )
    # The old item's completion stands; the ticket's next events concern the new item.
    assert client.get(f"/v1/items/{first['item_id']}").json()["state"] == "completed"
    again = _post(client, body).json()
    assert (again["action"], again["item_id"]) == ("unchanged", reopened["item_id"])
    assert again["decision"] == reopened["decision"]


def test_an_item_ended_in_usm_is_not_requeued_by_the_tickets_next_event(
    client: TestClient[Any],
) -> None:
    body = _ticket()
    first = _post(client, body).json()
    cancelled = client.delete(f"/v1/items/{first['item_id']}")
    assert cancelled.status_code == 200, cancelled.text
    body["event"] = "update"  # a comment on the ticket, still open in RT
    answer = _post(client, body).json()
    assert (answer["action"], answer["item_id"]) == ("scored", first["item_id"])
    assert client.get(f"/v1/items/{first['item_id']}").json()["state"] == "cancelled"


def test_an_unknown_source_is_404_naming_the_configured_ones(client: TestClient[Any]) -> None:
    r = client.post("/v1/sources/otrs/events", content=b"{}", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "unknown source 'otrs'; configured: rt, jira, jira_automation, servicenow, zammad, glpi"
    )


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing credentials - in header `Authorization`"),
        ({"Authorization": "Bearer wrong"}, "wrong credentials - in header `Authorization`"),
    ],
)
def test_a_missing_or_wrong_token_is_401_and_writes_nothing(
    client: TestClient[Any], redis_client: redis.Redis, headers: dict[str, str], detail: str
) -> None:
    body = _ticket()
    r = _post(client, body, headers)
    assert r.status_code == 401
    assert r.json()["detail"] == detail
    assert _post(client, body).json()["action"] == "queued"  # nothing was half-written


def test_an_unmapped_value_is_422_naming_the_tool_field_and_writes_nothing(
    client: TestClient[Any],
) -> None:
    body = _ticket()
    body["ticket"]["custom_fields"]["Urgency"] = "Yesterday"
    r = _post(client, body)
    assert r.status_code == 422
    problem = r.json()
    assert problem["detail"] == (
        "unknown urgency 'Yesterday' - at tool field `ticket.custom_fields.Urgency`; "
        "mapped: Work stopped, Seriously impaired, Workaround, Can wait"
    )
    assert problem["field"] == "ticket.custom_fields.Urgency"
    body["ticket"]["custom_fields"]["Urgency"] = "Workaround"
    assert _post(client, body).json()["action"] == "queued"


def test_a_value_scoring_refuses_names_the_tool_field(client: TestClient[Any]) -> None:
    body = _ticket()
    body["ticket"]["custom_fields"]["Service"] = "coffee"
    r = _post(client, body)
    assert r.status_code == 422
    assert r.json()["field"] == "ticket.custom_fields.Service"
    assert "coffee" in r.json()["detail"]


def test_a_body_that_is_not_json_is_400(client: TestClient[Any]) -> None:
    r = _post(client, b"{not json")
    assert r.status_code == 400
    assert r.json()["detail"].startswith("JSON is malformed")


def test_events_are_counted_per_source_and_outcome(client: TestClient[Any]) -> None:
    _post(client, _ticket())
    _post(client, _ticket(), {"Authorization": "Bearer nope"})
    text = client.get("/metrics").text
    assert 'usm_source_events_total{action="queued",source="rt"}' in text
    assert 'usm_source_events_refused_total{reason="signature",source="rt"}' in text


def test_every_action_has_its_counter_from_the_start() -> None:
    # The dashboard's event panel needs each series at 0 before the first event.
    from service.metrics.sources import ACTIONS
    from service.sources.inbound import Action

    assert set(ACTIONS) == {a.value for a in Action}


def test_a_rotated_secrets_file_takes_effect_with_the_next_event(
    redis_url: str, single_set_tables: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The route caches what the environment says, but not the file: rotating it needs no restart.
    monkeypatch.delenv("USM_SOURCE_RT_SECRET", raising=False)
    secrets = tmp_path / "sources-secrets.toml"
    secrets.write_text('[rt]\nsecret = "before"\n')
    os.utime(secrets, (1_700_000_000, 1_700_000_000))
    monkeypatch.setenv("USM_SOURCES_SECRETS_FILE", str(secrets))
    settings = Settings(redis_url=redis_url, tables=str(single_set_tables))
    before, after = {"Authorization": "Bearer before"}, {"Authorization": "Bearer after"}
    with TestClient(create_app(settings), base_url=LOOPBACK) as c:
        assert _post(c, _ticket(), before).status_code == 200
        secrets.write_text('[rt]\nsecret = "after"\n')
        os.utime(secrets, (1_700_000_060, 1_700_000_060))
        assert _post(c, _ticket(), before).status_code == 401
        assert _post(c, _ticket(), after).status_code == 200
