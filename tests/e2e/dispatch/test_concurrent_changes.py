"""Concurrent PATCHes of one item over HTTP against a real server process: no change is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.dispatch.conftest import Processes, wait_for
from tests.support.redis_server import free_port

ROUNDS = 30


@pytest.fixture
def api(processes: Processes) -> Iterator[str]:
    port = free_port()
    processes.start("api", "--port", str(port), log="api", USM_SERVER="uvicorn")
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("the API process", up, timeout=40)
    yield base


def _at_once(clients: list[httpx.Client], path: str, bodies: list[dict[str, str]]) -> list[int]:
    """PATCH ``path`` with each body from its own client, released together by a barrier."""
    start = threading.Barrier(len(bodies))
    answers: list[int] = []

    def send(client: httpx.Client, body: dict[str, str]) -> None:
        start.wait()
        answers.append(client.patch(path, json=body).status_code)

    threads = [
        threading.Thread(target=send, args=(c, b)) for c, b in zip(clients, bodies, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_two_patches_of_different_fields_at_once_both_land_every_round(api: str) -> None:
    changes = [{"impact": "organisation"}, {"urgency": "immediate"}]
    clients = [httpx.Client(base_url=api, timeout=30) for _ in changes]
    lost: list[tuple[int, Any]] = []
    try:
        for n in range(ROUNDS):
            created = clients[0].post(
                "/v1/items",
                json={
                    "type": "incident",
                    "impact": "user",
                    "urgency": "low",
                    "source": "race",
                    "external_id": f"R{n}",
                },
            )
            assert created.status_code == 201, created.text
            path = f"/v1/items/{created.json()['id']}"
            answers = _at_once(clients, path, changes)
            assert answers == [200, 200], answers
            item = clients[0].get(path).json()
            got = (item["call"]["impact"], item["call"]["urgency"], item["priority"])
            if got != ("organisation", "immediate", "P1"):
                lost.append((n, got))
            assert [h["event"] for h in item["history"]] == ["enqueued", "rescored", "rescored"]
    finally:
        for c in clients:
            c.close()
    assert lost == [], f"{len(lost)} of {ROUNDS} rounds lost a change: {lost}"
