"""Every size the API accepts is bounded, and each bound answers a 4xx naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.fixtures.api import LOOPBACK

CALL = {"type": "incident", "impact": "user", "urgency": "low"}
ITEM = {**CALL, "source": "snow", "external_id": "INC1"}


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient[Any]]:
    settings = Settings.from_env(
        {}, redis_url=redis_url, max_body_bytes=1_000_000, max_payload_bytes=1024
    )
    with TestClient(create_app(settings), base_url=LOOPBACK) as c:
        yield c


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client: TestClient[Any]) -> None:
    r = client.post(
        "/v1/priority/batch",
        content=b'{"calls": [' + b" " * 1_000_001 + b"]}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


def test_a_batch_over_ten_thousand_calls_is_refused_naming_calls(redis_url: str) -> None:
    settings = Settings.from_env({}, redis_url=redis_url)  # the default 8 MiB body fits 10,001
    with TestClient(create_app(settings), base_url=LOOPBACK) as c:
        r = c.post("/v1/priority/batch", json={"calls": [CALL] * 10_001})
    assert r.status_code == 400
    assert r.json()["field"] == "$.calls"
    assert "length <= 10000" in r.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [
        ("category", "x" * 201, "length <= 200"),
        ("impact", "x" * 65, "length <= 64"),
        ("impact", 1001, "<= 1000"),
        ("type", "x" * 64, "regex"),
    ],
)
def test_over_long_call_fields_are_refused_naming_the_field(
    client: TestClient[Any], field: str, value: object, bound: str
) -> None:
    r = client.post("/v1/priority", json={**CALL, field: value})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == f"$.{field}"
    assert bound in r.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [("source", "s" * 65, "length <= 64"), ("external_id", "e" * 201, "length <= 200")],
)
def test_over_long_item_references_are_refused_naming_the_field(
    client: TestClient[Any], field: str, value: str, bound: str
) -> None:
    r = client.post("/v1/items", json={**ITEM, field: value})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == f"$.{field}"
    assert bound in r.json()["detail"]


def test_an_item_payload_over_its_limit_is_refused_naming_payload(
    client: TestClient[Any],
) -> None:
    r = client.post("/v1/items", json={**ITEM, "payload": {"blob": "x" * 2000}})
    assert r.status_code == 422
    assert r.json()["field"] == "$.payload"
    assert r.json()["detail"].startswith("payload is 2011 bytes encoded; at most 1024 allowed")
    ok = client.post("/v1/items", json={**ITEM, "payload": {"blob": "x" * 900}})
    assert ok.status_code == 201


def test_a_deeply_nested_payload_is_a_4xx_not_a_crash(client: TestClient[Any]) -> None:
    deep = b'{"type":"incident","impact":"user","urgency":"low","source":"s","external_id":"d",'
    deep += b'"payload":{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
    r = client.post("/v1/items", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["detail"] == "request body is nested too deeply to decode - at `$`"
    assert client.get("/healthz").status_code == 200
