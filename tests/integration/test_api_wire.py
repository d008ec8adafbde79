"""The priority API over a real socket: ``usm api`` in a subprocess on a free port.

What only the wire shows: the content types sent, body limits enforced by the server stack
(with and without a Content-Length), and problem documents as bytes on the socket. Run on both
ASGI servers ``usm api`` supports.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.table_edits import copy_default
from tests.support.processes import ApiProcess
from tests.support.redis_server import free_port

USM = Path(sys.executable).with_name("usm")
LIMIT = 4096
OK = {"type": "incident", "impact": "user", "urgency": "high"}


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``usm api`` on a free loopback port with a small body limit, stopped after the module."""
    tables = tmp_path_factory.mktemp("wire-tables")
    copy_default(tables)
    port = free_port()
    env = {
        **os.environ,
        "USM_SERVER": request.param,
        "USM_TABLES": str(tables),
        "USM_HOST": "127.0.0.1",
        "USM_PORT": str(port),
        "USM_MAX_BODY_BYTES": str(LIMIT),
    }
    env.pop("REDIS_URL", None)
    log = tmp_path_factory.mktemp("wire-log") / "server.log"
    server = ApiProcess([str(USM), "api"], env, log, port, append=False)
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


def test_a_decision_is_sent_as_json(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/priority", json=OK, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["priority"]["name"] == "P4"


def test_a_refusal_is_sent_as_a_problem_document(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/priority", json={**OK, "urgency": "hgih"}, timeout=5)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith("unknown urgency 'hgih' - at `$.urgency`")


def test_malformed_json_on_the_wire_is_a_400_problem(base_url: str) -> None:
    response = httpx.post(
        f"{base_url}/v1/priority",
        content=b"{",
        headers={"content-type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "$"


def test_a_body_over_the_limit_is_413_when_its_length_is_declared(base_url: str) -> None:
    body = b'{"calls": [' + b",".join([b'{"type":"wish","impact":4,"urgency":4}'] * 200) + b"]}"
    assert len(body) > LIMIT
    response = httpx.post(
        f"{base_url}/v1/priority/batch",
        content=body,
        headers={"content-type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        f"request body is too large - at `$`; allowed: at most {LIMIT} bytes"
    )


def test_a_body_over_the_limit_is_413_when_it_is_streamed_in_chunks(base_url: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"calls": ['
        for i in range(200):
            yield (b"," if i else b"") + b'{"type":"wish","impact":4,"urgency":4}'
        yield b"]}"

    response = httpx.post(
        f"{base_url}/v1/priority/batch",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_a_body_under_the_limit_is_scored(base_url: str) -> None:
    calls = [OK] * 20
    response = httpx.post(f"{base_url}/v1/priority/batch", json={"calls": calls}, timeout=5)
    assert response.status_code == 200
    assert len(response.json()["decisions"]) == 20


def test_a_wrong_method_on_the_wire_carries_an_allow_header(base_url: str) -> None:
    response = httpx.delete(f"{base_url}/v1/priority", timeout=5)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"OPTIONS", "POST"}
    assert response.json()["allowed"] == ["OPTIONS", "POST"]
    assert response.headers["content-type"] == "application/problem+json"


def test_an_unknown_route_on_the_wire_is_a_404_problem(base_url: str) -> None:
    response = httpx.get(f"{base_url}/v2/priority", timeout=5)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_the_openapi_document_is_served(base_url: str) -> None:
    response = httpx.get(f"{base_url}/schema/openapi.json", timeout=5)
    assert response.status_code == 200
    assert "/v1/priority" in response.json()["paths"]
