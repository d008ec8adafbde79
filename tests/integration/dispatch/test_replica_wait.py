"""Item writes are acknowledged only once a replica has them (``WAIT``), against a real primary
and replica: a replica that stops confirming turns writes into 503s, and metrics say so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.fixtures.api import LOOPBACK
from tests.support.processes import wait_for
from tests.support.redis_server import RedisServer

INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "wait"}
UNCONFIRMED = (
    "the write was confirmed by 0 of the 1 replica(s) required in time, so it may not survive "
    "a failover; retry"
)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary", appendonly=False)
    primary.start()
    replica = RedisServer(
        tmp_path / "replica",
        appendonly=False,
        extra=["--replicaof", "127.0.0.1", str(primary.port)],
    )
    replica.start()
    conn = redis.Redis(port=primary.port)
    wait_for(
        "the replica to sync",
        lambda: conn.info("replication").get("slave0", {}).get("state") == "online",
    )
    conn.close()
    yield primary, replica
    replica.stop()
    primary.stop()


def _client(primary: RedisServer, tables: Path, replicas: str) -> TestClient[Any]:
    settings = Settings(
        redis_url=primary.url,
        tables=str(tables),
        redis_wait_replicas=replicas,
        redis_timeout_seconds=2.0,
        redis_wait_timeout_seconds=0.3,
    )
    return TestClient(create_app(settings), base_url=LOOPBACK, raise_server_exceptions=False)


def _confirmed(send: Callable[[], Any]) -> Any:
    """``send()``'s answer once it is not "unconfirmed": sent again while the healthy replica
    misses the 0.3 s WAIT, as it can on a busy machine (a CI run with one core held did). Each
    request sent this way is safe to repeat: creates are keyed by external id, and a claim that
    was not confirmed put its item back."""

    def answered() -> Any:
        r = send()
        unconfirmed = r.status_code == 503 and r.json().get("detail") == UNCONFIRMED
        return None if unconfirmed else r

    return wait_for("an answer the replica confirmed", answered)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_writes_wait_for_the_replica_and_answer_503_once_it_stops_confirming(
    pair: tuple[RedisServer, RedisServer], single_set_tables: Path
) -> None:
    primary, replica = pair
    with _client(primary, single_set_tables, "auto") as c:
        r = _confirmed(lambda: c.post("/v1/items", json={**INCIDENT, "external_id": "1"}))
        assert r.status_code in (200, 201), r.text  # 200: an unconfirmed first try stored it
        # Confirmed means the replica holds it now, not eventually.
        on_replica = redis.Redis(port=replica.port)
        job = f"rq:job:{r.json()['id']}"
        if r.status_code == 201:
            assert on_replica.exists(job) == 1
        else:  # stored by the unconfirmed try, answered by the replay
            wait_for("the replica to hold the item", lambda: on_replica.exists(job))
        page = c.get("/metrics").text
        assert _metric(page, "usm_redis_connected_replicas") == 1
        assert _metric(page, "usm_redis_replicas_required") == 1
        assert f'address="127.0.0.1:{primary.port}",role="master"' in page
        before = _metric(page, "usm_redis_wait_timeouts_total")

        replica.freeze()  # connected but silent: the primary still counts it, WAIT cannot
        try:
            r = c.post("/v1/items", json={**INCIDENT, "external_id": "2"})
        finally:
            replica.thaw()
        assert r.status_code == 503, r.text
        assert r.json()["detail"] == UNCONFIRMED
        assert r.headers["retry-after"] == "1"
        assert _metric(c.get("/metrics").text, "usm_redis_wait_timeouts_total") == before + 1
        # The caller's retry is idempotent: the same item, now confirmed.
        again = _confirmed(lambda: c.post("/v1/items", json={**INCIDENT, "external_id": "2"}))
        assert again.status_code == 200, again.text


def test_with_waiting_off_a_silent_replica_does_not_hold_writes(
    pair: tuple[RedisServer, RedisServer], single_set_tables: Path
) -> None:
    primary, replica = pair
    with _client(primary, single_set_tables, "0") as c:
        replica.freeze()
        try:
            r = c.post("/v1/items", json={**INCIDENT, "external_id": "off"})
        finally:
            replica.thaw()
        assert r.status_code == 201, r.text
        assert _metric(c.get("/metrics").text, "usm_redis_replicas_required") == 0


def _state(primary: RedisServer, item_id: str) -> str:
    conn = redis.Redis(port=primary.port)
    try:
        return (conn.hget(f"rq:job:{item_id}", "usm_state") or b"").decode()
    finally:
        conn.close()


CHANGE = {"type": "change", "impact": "user", "urgency": "low", "source": "wait"}
"""Routed to change_advisory, a pull team: people claim its items."""


def test_an_unconfirmed_claim_puts_the_item_back_instead_of_hiding_it_for_the_lease(
    pair: tuple[RedisServer, RedisServer], single_set_tables: Path
) -> None:
    primary, replica = pair
    with _client(primary, single_set_tables, "auto") as c:
        r = _confirmed(lambda: c.post("/v1/items", json={**CHANGE, "external_id": "c1"}))
        assert r.status_code in (200, 201), r.text
        item_id = r.json()["id"]
        replica.freeze()
        try:
            r = c.post("/v1/teams/change_advisory/claim", json={"holder": "ann"})
        finally:
            replica.thaw()
        assert r.status_code == 503, r.text
        # Nobody got the lease, so nobody would finish it: it waits in its queue again.
        assert _state(primary, item_id) == "queued"
        r = _confirmed(lambda: c.post("/v1/teams/change_advisory/claim", json={"holder": "ann"}))
        assert r.status_code == 200 and r.json()["id"] == item_id, r.text


CLAIM = "/v1/teams/change_advisory/claim"


def test_the_api_reaper_outlives_a_reap_no_replica_confirmed(
    pair: tuple[RedisServer, RedisServer], single_set_tables: Path
) -> None:
    primary, replica = pair
    settings = Settings(
        redis_url=primary.url,
        tables=str(single_set_tables),
        redis_wait_timeout_seconds=0.3,
        claim_lease_seconds=1.0,
        reaper_seconds=0.2,
    )
    with TestClient(create_app(settings), base_url=LOOPBACK) as c:
        # With a 0.3 s WAIT a loaded machine's replica can miss the deadline (503); the create
        # and the keyed claims are idempotent, so they are sent again until confirmed.
        def accepted(path: str, body: dict[str, Any], key: str | None = None) -> Any:
            headers = {"Idempotency-Key": key} if key else {}
            return wait_for(
                f"POST {path} confirmed",
                lambda: (
                    (r := c.post(path, json=body, headers=headers)).status_code in (200, 201)
                    and r.json()
                ),
            )

        item_id = accepted("/v1/items", {**CHANGE, "external_id": "r1"})["id"]
        assert accepted(CLAIM, {"holder": "a"}, "claim-a")["id"] == item_id
        replica.freeze()  # the reaper takes the expired claim back; no replica confirms it
        try:
            wait_for("the expired claim reaped", lambda: _state(primary, item_id) == "queued")
        finally:
            replica.thaw()
        assert accepted(CLAIM, {"holder": "b"}, "claim-b")["id"] == item_id
        wait_for("the second expired claim reaped", lambda: _state(primary, item_id) == "queued")
