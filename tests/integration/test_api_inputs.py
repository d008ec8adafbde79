"""Inputs a real ticketing tool sends: ranks as text, content types, a BOM, a lone surrogate.

ServiceNow sends impact and urgency as strings ("2"); some Windows tools start a UTF-8 body with a
byte-order mark; browsers and form posts send text/plain or form-encoded bodies.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import api_tables, app, client

__all__ = ["api_tables", "app", "client"]

Client = TestClient[Litestar]
CALL = {"type": "incident", "impact": "department", "urgency": "high"}


def post_raw(client: Client, body: bytes, content_type: str | None) -> Any:
    headers = {"content-type": content_type} if content_type is not None else {}
    return client.post("/v1/priority", content=body, headers=headers)


def test_a_rank_sent_as_text_scores_like_the_rank(client: Client) -> None:
    as_text = client.post("/v1/priority", json={"type": "incident", "impact": "2", "urgency": "1"})
    as_number = client.post("/v1/priority", json={"type": "incident", "impact": 2, "urgency": 1})
    assert as_text.status_code == 200, as_text.text
    assert as_text.json()["priority"] == as_number.json()["priority"]
    assert as_text.json()["impact"] == {"name": "department", "level": 2}


def test_every_value_an_error_lists_as_allowed_is_accepted(client: Client) -> None:
    for field in ("impact", "urgency"):
        refused = client.post("/v1/priority", json={**CALL, field: "hgih"})
        assert refused.status_code == 422
        allowed = refused.json()["allowed"]
        assert "1" in allowed
        for value in allowed:
            answer = client.post("/v1/priority", json={**CALL, field: value})
            assert answer.status_code == 200, f"{field}={value!r}: {answer.text}"


def test_a_rank_as_text_works_in_a_batch_and_out_of_range_text_is_refused(client: Client) -> None:
    answer = client.post("/v1/priority/batch", json={"calls": [{**CALL, "urgency": "4"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["decisions"][0]["urgency"]["name"] == "low"
    refused = client.post("/v1/priority", json={**CALL, "urgency": "9"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "unknown urgency '9' - at `$.urgency`; allowed: immediate, high, normal, low, 1, 2, 3, 4"
    )


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", json.dumps(CALL).encode()),
        ("application/x-www-form-urlencoded", b"type=incident&impact=user&urgency=high"),
        ("multipart/form-data; boundary=x", b"--x\r\n\r\nincident\r\n--x--\r\n"),
        ("application/xml", b"<call><type>incident</type></call>"),
        ("application/json; charset=latin-1", json.dumps(CALL).encode()),
        (None, json.dumps(CALL).encode()),
    ],
)
def test_a_body_that_is_not_declared_json_is_415(
    client: Client, content_type: str | None, body: bytes
) -> None:
    response = post_raw(client, body, content_type)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"
    given = f"'{content_type}'" if content_type else "none"
    assert response.json()["detail"] == (
        f"content type {given} is not JSON - send `Content-Type: application/json` (UTF-8); "
        "allowed: application/json, application/<type>+json"
    )


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=UTF-8", "application/vnd.snow+json"],
)
def test_json_content_types_are_accepted(client: Client, content_type: str) -> None:
    assert post_raw(client, json.dumps(CALL).encode(), content_type).status_code == 200


def test_a_utf8_byte_order_mark_is_accepted(client: Client) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(CALL).encode()
    response = post_raw(client, body, "application/json")
    assert response.status_code == 200, response.text
    assert response.json()["priority"]["name"] == "P2"


@pytest.mark.parametrize(
    ("body", "escape", "at"),
    [
        (b'{"type": "incident", "category": "\\ud800", "impact": 1, "urgency": 1}', "\\ud800", 34),
        (b'{"type": "incident", "category": "\\ud83dx"}', "\\ud83d", 34),
        (b'{"type": "incident", "category": "\\udc00"}', "\\udc00", 34),
    ],
)
def test_a_lone_surrogate_is_named_not_called_truncated(
    client: Client, body: bytes, escape: str, at: int
) -> None:
    response = post_raw(client, body, "application/json")
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == (
        f"JSON is malformed: lone UTF-16 surrogate `{escape}` (byte {at}) is not a character; "
        "a \\ud800-\\udbff escape must be followed by a \\udc00-\\udfff one - at `$`; "
        "allowed: a JSON object"
    )


def test_a_truncated_body_is_still_called_truncated(client: Client) -> None:
    response = post_raw(
        client, b'{"type": "incident", "category": "\\ud83d\\ude00', "application/json"
    )
    assert response.status_code == 400
    assert "truncated" in response.json()["detail"]
