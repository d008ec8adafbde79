"""GET /v1/items/{id} shows the whole item, whatever compact form Redis keeps it in.

Decisions, calls and history are stored packed (deflated JSON, :func:`service.dispatch.items.pack`)
and an ended item is folded into one record (:mod:`service.dispatch.archive`) to save Redis
memory; these tests pin the full document an item shows through its life and check that an item
stored as plain JSON (as before packing) reads back byte for byte the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from litestar.testing import TestClient

from service.api.app import create_app
from service.core.calls import Call
from service.core.scoring import Scorer
from service.dispatch import keys
from service.dispatch.archive import fold
from service.dispatch.items import Item
from service.dispatch.scripts import scripts_for
from service.files.loader import load_all
from service.settings import Settings
from tests.fixtures.api import LOOPBACK

REPORTED = "2026-11-30T09:15:00Z"
PAYLOAD = {"title": "new firewall rule", "links": ["https://example.invalid/RFC7"], "n": 7}


@pytest.fixture
def client(redis_url: str, single_set_tables: Path) -> Iterator[TestClient[Any]]:
    settings = Settings(
        redis_url=redis_url, tables=str(single_set_tables), claim_lease_seconds=300.0
    )
    with TestClient(create_app(settings), base_url=LOOPBACK) as c:
        yield c


@pytest.fixture
def set_scorer(single_set_tables: Path) -> Scorer:
    (loaded,) = load_all(single_set_tables)
    return loaded.scorer()


def _json(value: object) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def _event(doc: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A history entry as the API shows it; ``at`` is the server's clock, taken from ``doc``."""
    return {"at": doc["at"], "detail": "", "holder": None, "decision": None, **fields}


def _as_plain_json(conn: redis.Redis, shown: bytes) -> None:
    """Store the item GET showed as ``shown`` the way items were stored before packing and
    folding: plain JSON call, decision and history entries (``at`` in epoch ms)."""
    item = msgspec.json.decode(shown, type=Item)
    job, history = keys.job_key(item.id), keys.history_key(item.id)
    conn.hdel(job, "usm_record")
    conn.hset(
        job,
        mapping={
            "usm_call": msgspec.json.encode(item.call),
            "usm_decision": msgspec.json.encode(item.decision),
            "usm_team": item.team,
            "usm_priority": item.priority,
            "usm_source": item.source,
            "usm_external_id": item.external_id,
            "usm_deliveries": item.deliveries,
        },
    )
    conn.delete(history)
    entries = []
    for e in item.history:
        entry: dict[str, Any] = {"at": round(e.at.timestamp() * 1000), "event": e.event}
        entry["state"] = e.state
        if e.detail:
            entry["detail"] = e.detail
        if e.holder is not None:
            entry["holder"] = e.holder
        if e.decision is not None:
            entry["decision"] = e.decision
        entries.append(msgspec.json.encode(entry))
    conn.rpush(history, *entries)


def test_an_item_shows_every_decision_explanation_and_event_through_its_life(
    client: TestClient[Any], set_scorer: Scorer, redis_url: str
) -> None:
    first = {"type": "change", "impact": "group", "urgency": "normal", "reported_at": REPORTED}
    body = {**first, "source": "snow", "external_id": "RFC7", "payload": PAYLOAD}
    posted = client.post("/v1/items", json=body)
    assert posted.status_code == 201, posted.text
    item_id = posted.json()["id"]
    path = f"/v1/items/{item_id}"
    # The answer to POST is built from what was sent; read back it must be the same bytes.
    assert client.get(path).content == posted.content

    before = set_scorer.score(msgspec.convert(first, Call), datetime.now(UTC))
    r = client.patch(path, json={"impact": "department", "urgency": "high", "reason": "audit"})
    assert r.status_code == 200, r.text
    second = {**first, "impact": "department", "urgency": "high"}
    after = set_scorer.score(msgspec.convert(second, Call), datetime.now(UTC))
    assert after.priority != before.priority  # the re-score must change something to show
    team = after.team
    claimed = client.post(f"/v1/teams/{team}/claim", json={"holder": "ann"})
    assert claimed.status_code == 200, claimed.text
    holder = claimed.json()["lease"]["holder"]
    # Claimed: stored packed, not folded; read back it is what the claim answered.
    assert client.get(path).content == claimed.content
    done = client.post(f"{path}/complete", json={"holder": holder})
    assert done.status_code == 200, done.text

    got = client.get(path)
    assert got.status_code == 200
    doc = got.json()
    history = doc["history"]
    assert doc == {
        "id": item_id,
        "state": "completed",
        "team": team,
        "priority": after.priority.name,
        "queue": keys.queue_name(team, after.priority.name),
        "source": "snow",
        "external_id": "RFC7",
        "call": _json(msgspec.convert(second, Call)),
        "decision": _json(after),
        "enqueued_at": posted.json()["enqueued_at"],
        "payload": PAYLOAD,
        "deliveries": 1,
        "lease": None,
        "error": None,
        "history": [
            _event(history[0], event="enqueued", state="queued", decision=_json(before)),
            _event(
                history[1],
                event="rescored",
                state="queued",
                detail="changed impact='department', urgency='high': audit",
                decision=_json(after),
            ),
            _event(history[2], event="claimed", state="claimed", holder=holder),
            _event(history[3], event="completed", state="completed", holder=holder),
        ],
    }
    assert (
        doc["decision"]["explanation"]
        and doc["decision"]["explanation"] == (history[1]["decision"]["explanation"])
    )

    # The ended item is folded: one packed record, no history list. Stored the old way (plain
    # JSON, unfolded) it reads back to the very same bytes.
    conn = redis.Redis.from_url(redis_url)
    try:
        assert conn.hexists(keys.job_key(item_id), "usm_record")
        assert not conn.exists(keys.history_key(item_id))
        _as_plain_json(conn, got.content)
        assert conn.hget(keys.job_key(item_id), "usm_decision")[:1] == b"{"  # type: ignore[index]
        assert conn.llen(keys.history_key(item_id)) == 4
    finally:
        conn.close()
    assert client.get(path).content == got.content


def test_only_an_ended_item_as_read_is_folded_and_a_cancelled_one_shows_the_same(
    client: TestClient[Any], redis_url: str
) -> None:
    body = {"type": "incident", "impact": "user", "urgency": "low", "reported_at": REPORTED}
    posted = client.post("/v1/items", json={**body, "source": "snow", "external_id": "INC9"})
    item_id = posted.json()["id"]
    job = keys.job_key(item_id)
    conn = redis.Redis.from_url(redis_url)
    try:
        assert not fold(conn, item_id)  # queued: it may still change
        assert conn.hexists(job, "usm_decision")
        r = client.delete(f"/v1/items/{item_id}")
        assert r.status_code == 200, r.text
        assert conn.hexists(job, "usm_record") and not conn.hexists(job, "usm_decision")
        assert not fold(conn, item_id)  # folded already
        # The script refuses when the history is not as the caller read it.
        refused = scripts_for(conn).archive(keys=[job], args=[item_id, "cancelled", 99, b"x"])
        assert refused == 0
    finally:
        conn.close()
    shown = client.get(f"/v1/items/{item_id}")
    assert shown.content == r.content
    doc = shown.json()
    assert doc["state"] == "cancelled"
    assert {k: v for k, v in doc.items() if k not in ("state", "history")} == {
        k: v for k, v in posted.json().items() if k not in ("state", "history")
    }
    assert doc["history"][0] == posted.json()["history"][0]
    assert [h["event"] for h in doc["history"]] == ["enqueued", "cancelled"]
    assert doc["history"][1]["detail"] == "cancelled via API"
