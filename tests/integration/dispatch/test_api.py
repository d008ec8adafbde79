"""The items, teams and dead-letter routes against a real Redis (in-process ASGI client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from service.api.app import create_app
from service.dispatch.items import now_ms
from service.dispatch.leases import Outcome, finish, reap
from service.settings import Settings
from tests.fixtures.api import LOOPBACK
from tests.support.processes import wait_for
from tests.support.redis_server import RedisServer

INCIDENT = {"type": "incident", "impact": "user", "urgency": "low"}


def _client(redis_url: str, tables: Path, claim_lease_seconds: float) -> TestClient[Any]:
    settings = Settings(
        redis_url=redis_url,
        tables=str(tables),
        claim_lease_seconds=claim_lease_seconds,
        reaper_seconds=0.2,
    )
    return TestClient(create_app(settings), base_url=LOOPBACK)


@pytest.fixture
def client(redis_url: str, single_set_tables: Path) -> Iterator[TestClient[Any]]:
    """Claims last long enough that none runs out while a slow machine runs a test."""
    with _client(redis_url, single_set_tables, claim_lease_seconds=300.0) as c:
        yield c


@pytest.fixture
def short_claims(redis_url: str, single_set_tables: Path) -> Iterator[TestClient[Any]]:
    """Claims of one second, for the test of the API's own reaper taking them back."""
    with _client(redis_url, single_set_tables, claim_lease_seconds=1.0) as c:
        yield c


def _expire_leases(redis_url: str) -> None:
    """Take back every lease as if its time had run out, without waiting for it."""
    conn = redis.Redis.from_url(redis_url)
    try:
        assert reap(conn, now_ms() + 3_600_000, 10, 3600)
    finally:
        conn.close()


def _item(client: TestClient[Any], ext: str, **call: Any) -> dict[str, Any]:
    body = {**INCIDENT, **call, "source": "snow", "external_id": ext}
    r = client.post("/v1/items", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def test_post_creates_an_item_and_a_retry_returns_it_with_200(client: TestClient[Any]) -> None:
    body = {**INCIDENT, "source": "snow", "external_id": "INC1", "payload": {"title": "x"}}
    first = client.post("/v1/items", json=body)
    again = client.post("/v1/items", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.headers["location"] == f"/v1/items/{first.json()['id']}"
    item = client.get(f"/v1/items/{first.json()['id']}").json()
    assert item["state"] == "queued" and item["payload"] == {"title": "x"}
    assert item["decision"]["priority"]["name"] == "P5"
    assert [h["event"] for h in item["history"]] == ["enqueued"]


def test_a_repeat_with_another_body_says_it_is_a_duplicate_and_which_fields_were_ignored(
    client: TestClient[Any],
) -> None:
    body = {**INCIDENT, "source": "snow", "external_id": "INC9", "payload": {"title": "x"}}
    first = client.post("/v1/items", json=body)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    same = client.post("/v1/items", json=body)
    assert (same.status_code, same.headers["idempotent-replayed"]) == (200, "true")
    assert "usm-ignored-fields" not in same.headers
    changed = {**body, "impact": "organisation", "urgency": "high", "payload": {"title": "y"}}
    r = client.post("/v1/items", json=changed)
    assert (r.status_code, r.headers["idempotent-replayed"]) == (200, "true")
    assert r.headers["usm-ignored-fields"] == "impact, urgency, payload"
    assert r.json()["id"] == first.json()["id"]
    stored = client.get(f"/v1/items/{first.json()['id']}").json()
    assert (stored["call"]["impact"], stored["payload"]) == ("user", {"title": "x"})
    assert [h["event"] for h in stored["history"]] == ["enqueued"]


def test_bad_item_input_names_the_field_and_allowed_values(client: TestClient[Any]) -> None:
    r = client.post(
        "/v1/items", json={**INCIDENT, "urgency": "hgih", "source": "s", "external_id": "1"}
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("unknown urgency 'hgih' - at `$.urgency`; allowed: ")
    r = client.post("/v1/items", json={**INCIDENT, "source": "s"})
    assert r.status_code == 400
    assert "Object missing required field `external_id`" in r.json()["detail"]
    r = client.post("/v1/items", json={**INCIDENT, "source": "s", "external_id": "1", "x": 1})
    assert r.status_code == 400 and "external_id" in r.json()["allowed"]


def test_unknown_item_and_team_are_404_naming_them(client: TestClient[Any]) -> None:
    r = client.get("/v1/items/00000000000000000000000000000000")
    assert (r.status_code, r.json()["detail"]) == (
        404,
        "unknown item '00000000000000000000000000000000'",
    )
    r = client.get("/v1/teams/nobody/queue")
    assert r.status_code == 404
    assert r.json()["detail"].startswith("unknown team 'nobody'; known: service_desk, ")


def test_patch_rescores_and_moves_the_item(client: TestClient[Any]) -> None:
    item = _item(client, "INC2")
    r = client.patch(
        f"/v1/items/{item['id']}",
        json={"impact": "organisation", "urgency": "immediate", "reason": "outage"},
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["priority"], moved["queue"]) == ("P1", "usm.service_desk.P1")
    assert moved["history"][-1]["event"] == "rescored"
    assert moved["history"][-1]["detail"] == (
        "changed impact='organisation', urgency='immediate': outage"
    )
    queue = client.get("/v1/teams/service_desk/queue").json()["items"]
    assert [i["id"] for i in queue] == [item["id"]]


def test_queue_lists_items_in_hand_out_order_and_teams_show_depth(
    client: TestClient[Any],
) -> None:
    low = _item(client, "a")
    top = _item(client, "b", impact="organisation", urgency="immediate")
    low2 = _item(client, "c")
    queue = client.get("/v1/teams/service_desk/queue").json()["items"]
    assert [i["id"] for i in queue] == [top["id"], low["id"], low2["id"]]
    teams = {t["name"]: t for t in client.get("/v1/teams").json()["teams"]}
    depth = {q["priority"]: q["depth"] for q in teams["service_desk"]["queues"]}
    assert depth == {"P1": 1, "P2": 0, "P3": 0, "P4": 0, "P5": 2}
    assert teams["change_advisory"]["mode"] == "pull"
    one = client.get("/v1/teams/service_desk").json()
    assert one["queues"][0] == {
        "priority": "P1",
        "queue": "usm.service_desk.P1",
        "depth": 1,
        "oldest_age_seconds": one["queues"][0]["oldest_age_seconds"],
        "overdue": 0,
    }
    assert client.get("/v1/teams/nobody").status_code == 404


def test_delete_cancels_and_a_second_delete_is_a_conflict(client: TestClient[Any]) -> None:
    item = _item(client, "d")
    r = client.delete(f"/v1/items/{item['id']}")
    assert (r.status_code, r.json()["state"]) == (200, "cancelled")
    assert client.get("/v1/teams/service_desk/queue").json()["items"] == []
    r = client.delete(f"/v1/items/{item['id']}")
    assert (r.status_code, r.json()["detail"]) == (409, f"item '{item['id']}' is already cancelled")


def test_claim_complete_release_and_lease_expiry_for_a_pull_team(
    client: TestClient[Any],
) -> None:
    assert client.post("/v1/teams/change_advisory/claim").status_code == 204
    rfc = _item(client, "RFC1", type="change", impact="department", urgency="normal")
    assert rfc["team"] == "change_advisory"
    r = client.post("/v1/teams/change_advisory/claim", json={"holder": "ann"})
    assert r.status_code == 200
    claimed = r.json()
    assert claimed["state"] == "claimed" and claimed["lease"]["holder"].startswith("ann#")
    r = client.post(f"/v1/items/{rfc['id']}/release", json={"holder": "bob#000000"})
    assert r.status_code == 409
    r = client.post(f"/v1/items/{rfc['id']}/release", json={"holder": claimed["lease"]["holder"]})
    assert (r.status_code, r.json()["state"]) == (200, "queued")
    again = client.post("/v1/teams/change_advisory/claim", json={"holder": "bob"}).json()
    assert again["id"] == rfc["id"] and again["deliveries"] == 2
    r = client.post(f"/v1/items/{rfc['id']}/complete", json={"holder": again["lease"]["holder"]})
    assert (r.status_code, r.json()["state"]) == (200, "completed")
    assert client.post("/v1/teams/service_desk/claim").status_code == 409


def test_only_the_current_holder_may_complete_or_release_a_claim(
    client: TestClient[Any], redis_url: str
) -> None:
    rfc = _item(client, "RFC4", type="change", impact="department", urgency="normal")
    alice = client.post("/v1/teams/change_advisory/claim", json={"holder": "alice"}).json()
    _expire_leases(redis_url)  # Alice's lease runs out; Bob's below lasts the whole test
    assert client.get(f"/v1/items/{rfc['id']}").json()["state"] == "queued"
    bob = client.post("/v1/teams/change_advisory/claim", json={"holder": "bob"}).json()
    assert bob["id"] == rfc["id"]
    path = f"/v1/items/{rfc['id']}"
    # Alice's stale lease: without a holder (as the old README sent it), or with her own.
    r = client.post(f"{path}/complete")
    assert (r.status_code, r.json()["field"]) == (400, "$")
    assert "a JSON request body is required" in r.json()["detail"]
    assert "holder" in r.json()["allowed"]
    r = client.post(f"{path}/complete", json={"note": "done"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Object missing required field `holder` - at `$`")
    for action in ("complete", "release"):
        r = client.post(f"{path}/{action}", json={"holder": alice["lease"]["holder"]})
        assert r.status_code == 409
        assert r.json()["field"] == "$.holder"
        assert r.json()["detail"] == (
            f"item '{rfc['id']}' is not held by '{alice['lease']['holder']}': its lease is held "
            "by another holder; only the lease holder (`lease.holder` of the claim's answer) "
            "may complete or release it - at `$.holder`"
        )
        assert bob["lease"]["holder"] not in r.text
    item = client.get(path).json()
    assert (item["state"], item["lease"]["holder"]) == ("claimed", bob["lease"]["holder"])
    assert [h["event"] for h in item["history"]] == [
        "enqueued",
        "claimed",
        "redelivered",
        "claimed",
    ]
    # The same name claiming again gets a new holder: "bob" alone does not end Bob's lease.
    r = client.post(f"{path}/complete", json={"holder": "bob"})
    assert r.status_code == 409
    r = client.post(f"{path}/complete", json={"holder": bob["lease"]["holder"]})
    assert (r.status_code, r.json()["state"]) == (200, "completed")
    assert r.json()["history"][-1]["holder"] == bob["lease"]["holder"]
    r = client.post(f"{path}/release", json={"holder": bob["lease"]["holder"]})
    assert r.status_code == 409
    assert "it is completed" in r.json()["detail"]


def test_a_claim_sent_again_with_its_idempotency_key_answers_with_the_same_lease(
    client: TestClient[Any],
) -> None:
    first = _item(client, "RFC5", type="change", impact="department", urgency="normal")
    second = _item(client, "RFC6", type="change", impact="department", urgency="normal")
    claim, key = "/v1/teams/change_advisory/claim", {"Idempotency-Key": "c-3b9e41"}
    one = client.post(claim, json={"holder": "ann"}, headers=key)
    assert one.status_code == 200 and "idempotent-replayed" not in one.headers
    two = client.post(claim, json={"holder": "ann"}, headers=key)
    assert (two.status_code, two.headers["idempotent-replayed"]) == (200, "true")
    assert two.json()["id"] == one.json()["id"] == first["id"]
    assert two.json()["lease"] == one.json()["lease"]
    assert client.get(f"/v1/items/{second['id']}").json()["state"] == "queued"
    assert [h["event"] for h in two.json()["history"]] == ["enqueued", "claimed"]
    # Another holder name with the same key is another request: refused, nothing leased.
    r = client.post(claim, json={"holder": "bob"}, headers=key)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "header.idempotency-key"
    assert r.json()["detail"] == (
        "this key was sent with a claim by another holder than 'bob' - in header "
        "`Idempotency-Key`; allowed: 1 to 255 visible ASCII characters, e.g. a UUID, new for "
        "every claim"
    )
    assert client.get(f"/v1/items/{second['id']}").json()["state"] == "queued"
    # Once that lease ended the key names nothing held: the re-send is a claim of its own.
    holder = one.json()["lease"]["holder"]
    assert client.post(f"/v1/items/{first['id']}/release", json={"holder": holder}).is_success
    three = client.post(claim, json={"holder": "ann"}, headers=key)
    assert three.status_code == 200 and "idempotent-replayed" not in three.headers
    assert three.json()["id"] == first["id"] and three.json()["lease"]["holder"] != holder
    # Without a key every claim is a new one: the next item.
    four = client.post(claim, json={"holder": "ann"})
    assert four.json()["id"] == second["id"]


@pytest.mark.parametrize("bad", ["", "x" * 256, "two words", "caf\u00e9"])
def test_a_claim_idempotency_key_that_is_not_a_token_is_refused_naming_the_header(
    client: TestClient[Any], bad: str
) -> None:
    rfc = _item(client, f"RFC-bad-{len(bad)}-{bad[:3]}", type="change", urgency="normal")
    r = client.post(
        "/v1/teams/change_advisory/claim",
        json={"holder": "ann"},
        headers=[(b"Idempotency-Key", bad.encode())],
    )
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["field"] == "header.idempotency-key"
    assert problem["detail"].endswith(
        " - in header parameter `Idempotency-Key`; allowed: 1 to 255 characters matching `^[!-~]+$`"
    )
    assert client.get(f"/v1/items/{rfc['id']}").json()["state"] == "queued"


def test_a_claim_whose_lease_expires_goes_back_to_the_queue(
    short_claims: TestClient[Any],
) -> None:
    client = short_claims
    rfc = _item(client, "RFC3", type="change", impact="department", urgency="normal")
    assert client.post("/v1/teams/change_advisory/claim").json()["id"] == rfc["id"]
    # The API's own reaper takes it back once the one-second lease ran out.
    wait_for(
        "the claim lease to expire",
        lambda: client.get(f"/v1/items/{rfc['id']}").json()["state"] == "queued",
    )
    item = client.get(f"/v1/items/{rfc['id']}").json()
    assert [h["event"] for h in item["history"]] == ["enqueued", "claimed", "redelivered"]
    assert client.post("/v1/teams/change_advisory/claim").json()["id"] == rfc["id"]


def test_dead_letters_list_and_requeue(client: TestClient[Any], redis_url: str) -> None:
    rfc = _item(client, "RFC2", type="change", impact="department", urgency="normal")
    holder = client.post("/v1/teams/change_advisory/claim").json()["lease"]["holder"]
    conn = redis.Redis.from_url(redis_url)
    assert finish(conn, rfc["id"], holder, Outcome.DEAD, now_ms(), 3600, "boom")
    dead = client.get("/v1/dead-letters").json()["items"]
    assert [(d["id"], d["error"]) for d in dead] == [(rfc["id"], "boom")]
    assert client.get("/v1/dead-letters?team=service_desk").json()["items"] == []
    r = client.post(f"/v1/items/{rfc['id']}/requeue")
    assert (r.status_code, r.json()["state"]) == (200, "queued")
    assert client.get("/v1/dead-letters").json()["items"] == []


def test_items_answer_503_with_retry_after_while_redis_is_down_and_scoring_still_works(
    client: TestClient[Any], redis_server: RedisServer
) -> None:
    item = _item(client, "before")
    redis_server.stop()
    try:
        r = client.get(f"/v1/items/{item['id']}")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        r = client.post("/v1/items", json={**INCIDENT, "source": "s", "external_id": "during"})
        assert r.status_code == 503
        assert client.post("/v1/priority", json=INCIDENT).status_code == 200
    finally:
        redis_server.start()
    assert client.get(f"/v1/items/{item['id']}").json()["id"] == item["id"]
    assert _item(client, "after")["state"] == "queued"
