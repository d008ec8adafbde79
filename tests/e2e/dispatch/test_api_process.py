"""The items API as a real server process (uvicorn) with a real worker process, through faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.dispatch.conftest import Processes, handled, wait_for
from tests.support.redis_server import RedisServer, free_port

INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "e2e"}


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


def test_items_posted_over_http_are_handled_by_a_worker_process(
    api: str, processes: Processes, record_file: Path
) -> None:
    processes.worker()
    top = httpx.post(
        f"{api}/v1/items",
        json={**INCIDENT, "impact": "organisation", "urgency": "immediate", "external_id": "H1"},
    )
    assert top.status_code == 201
    item_id = top.json()["id"]
    wait_for("the worker", lambda: [i for i, _, _ in handled(record_file)] == [item_id])
    done = wait_for(
        "completion",
        lambda: (r := httpx.get(f"{api}/v1/items/{item_id}").json())["state"] == "completed" and r,
    )
    assert [h["event"] for h in done["history"]] == ["enqueued", "started", "completed"]


def test_redis_stopped_and_started_during_traffic_loses_no_accepted_item(
    api: str, processes: Processes, redis_server: RedisServer, record_file: Path
) -> None:
    processes.worker()
    accepted: dict[str, str] = {}
    refusals: list[httpx.Response] = []
    scored_while_down: list[int] = []
    outage = threading.Event()

    def post_all() -> None:
        with httpx.Client(timeout=5) as client:
            for n in range(300):
                body = {**INCIDENT, "external_id": f"R{n}"}
                while True:  # a ticketing tool retrying until the item is accepted
                    try:
                        r = client.post(f"{api}/v1/items", json=body)
                    except httpx.HTTPError:
                        time.sleep(0.05)
                        continue
                    if r.status_code in (200, 201):
                        accepted[body["external_id"]] = r.json()["id"]
                        break
                    refusals.append(r)
                    if outage.is_set():
                        scored_while_down.append(
                            client.post(f"{api}/v1/priority", json={"type": "incident",
                                        "impact": "user", "urgency": "low"}).status_code
                        )  # fmt: skip
                    time.sleep(0.05)

    sender = threading.Thread(target=post_all)
    sender.start()
    wait_for("some traffic", lambda: len(accepted) >= 50)
    outage.set()
    redis_server.stop()
    # The outage lasts until the sender met it (a 503, then scoring that still answers), however
    # slowly a loaded machine runs the sender.
    wait_for("a refusal and a scoring answer during the outage", lambda: scored_while_down)
    redis_server.start()
    outage.clear()
    sender.join(120)
    assert not sender.is_alive()
    assert len(accepted) == 300 and len(set(accepted.values())) == 300
    assert refusals, "the outage produced no 503"
    assert all(r.status_code == 503 and r.headers["retry-after"] for r in refusals)
    assert scored_while_down and set(scored_while_down) == {200}
    wanted = set(accepted.values())
    wait_for(
        "every accepted item handled",
        lambda: wanted <= {i for i, _, _ in handled(record_file)},
        timeout=60,
    )

    def all_completed() -> Any:
        states = {httpx.get(f"{api}/v1/items/{i}").json()["state"] for i in wanted}
        return states == {"completed"}

    wait_for("every accepted item completed", all_completed, timeout=30)
