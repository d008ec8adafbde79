"""Every refusal of the priority API: a 4xx problem document naming the field and what is allowed.

None of these may ever be a 500. Exact ``detail`` strings are asserted so a reworded message is a
deliberate change.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import api_tables, app, client

__all__ = ["api_tables", "app", "client"]

Client = TestClient[Litestar]

CALL_FIELDS = [
    "type",
    "impact",
    "urgency",
    "likelihood",
    "proximity",
    "service",
    "category",
    "reported_at",
]
URGENCY_NAMES = ["immediate", "high", "normal", "low"]
URGENCIES = [*URGENCY_NAMES, "1", "2", "3", "4"]
IMPACT_NAMES = ["organisation", "department", "group", "user"]
CALL_TYPES = ["incident", "service_request", "change", "wish", "risk"]
OK = {"type": "incident", "impact": "user", "urgency": "high"}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# name -> (path, JSON body or raw bytes, status, detail, field, allowed)
CASES: dict[str, tuple[str, Any, int, str, str | None, list[str]]] = {
    "malformed JSON": (
        "/v1/priority",
        b'{"type": "incident",',
        400,
        "JSON is malformed: input data was truncated - at `$`; allowed: a JSON object",
        "$",
        ["a JSON object"],
    ),
    "not JSON at all": (
        "/v1/priority",
        b'<call type="incident"/>',
        400,
        "JSON is malformed: invalid character (byte 0) - at `$`; allowed: a JSON object",
        "$",
        ["a JSON object"],
    ),
    "empty body": (
        "/v1/priority",
        b"",
        400,
        "a JSON request body is required - at `$`; allowed: " + ", ".join(CALL_FIELDS),
        "$",
        CALL_FIELDS,
    ),
    "a list instead of an object": (
        "/v1/priority",
        [OK],
        400,
        "Expected `object`, got `array` - at `$`; allowed: " + ", ".join(CALL_FIELDS),
        "$",
        CALL_FIELDS,
    ),
    "wrong type of a field": (
        "/v1/priority",
        {**OK, "urgency": True},
        400,
        "Expected `int | str | null`, got `bool` - at `$.urgency`; allowed: "
        + ", ".join(URGENCIES),
        "$.urgency",
        URGENCIES,
    ),
    "rank out of range": (
        "/v1/priority",
        {**OK, "impact": 0},
        400,
        "Expected `int` >= 1 - at `$.impact`; allowed: "
        + ", ".join([*IMPACT_NAMES, "1", "2", "3", "4"]),
        "$.impact",
        [*IMPACT_NAMES, "1", "2", "3", "4"],
    ),
    "unknown field": (
        "/v1/priority",
        {**OK, "priority": "P1"},
        400,
        "Object contains unknown field `priority` - at `$`; allowed: " + ", ".join(CALL_FIELDS),
        "$",
        CALL_FIELDS,
    ),
    "missing call type": (
        "/v1/priority",
        {"impact": "user", "urgency": "high"},
        400,
        "Object missing required field `type` - at `$`; allowed: " + ", ".join(CALL_FIELDS),
        "$",
        CALL_FIELDS,
    ),
    "badly written call type": (
        "/v1/priority",
        {**OK, "type": "Incident"},
        400,
        "Expected `str` matching regex '^[a-z][a-z0-9_]{0,62}$' - at `$.type`; allowed: "
        + ", ".join(CALL_TYPES),
        "$.type",
        CALL_TYPES,
    ),
    "reported time without a timezone": (
        "/v1/priority",
        {**OK, "reported_at": "2026-03-02T09:00:00"},
        400,
        "Expected `datetime` with a timezone component - at `$.reported_at`",
        "$.reported_at",
        [],
    ),
    "reported time so late that the targets overflow": (
        "/v1/priority",
        {**OK, "reported_at": "9999-12-31T23:00:00Z"},
        422,
        "reported_at 9999-12-31T23:00:00+00:00 puts the P4 targets after the year 9999"
        " - at `$.reported_at`",
        "$.reported_at",
        [],
    ),
    "unknown urgency name": (
        "/v1/priority",
        {**OK, "urgency": "hgih"},
        422,
        "unknown urgency 'hgih' - at `$.urgency`; allowed: " + ", ".join(URGENCIES),
        "$.urgency",
        URGENCIES,
    ),
    "unknown urgency level": (
        "/v1/priority",
        {**OK, "urgency": 7},
        422,
        "unknown urgency level 7 - at `$.urgency`; allowed: " + ", ".join(URGENCIES),
        "$.urgency",
        URGENCIES,
    ),
    "unknown call type": (
        "/v1/priority",
        {**OK, "type": "problem"},
        422,
        "unknown call type 'problem' - at `$.type`; allowed: " + ", ".join(CALL_TYPES),
        "$.type",
        CALL_TYPES,
    ),
    "likelihood on an incident": (
        "/v1/priority",
        {**OK, "likelihood": "likely"},
        422,
        "likelihood applies only to proactive call types (risk), not to 'incident'; "
        "leave it out - at `$.likelihood`",
        "$.likelihood",
        [],
    ),
    "empty batch": (
        "/v1/priority/batch",
        {"calls": []},
        400,
        "Expected `array` of length >= 1 - at `$.calls`; allowed: 1 to 10000 calls",
        "$.calls",
        ["1 to 10000 calls"],
    ),
    "batch over ten thousand": (
        "/v1/priority/batch",
        {"calls": [OK] * 10_001},
        400,
        "Expected `array` of length <= 10000 - at `$.calls`; allowed: 1 to 10000 calls",
        "$.calls",
        ["1 to 10000 calls"],
    ),
    "unknown field next to the calls": (
        "/v1/priority/batch",
        {"calls": [OK], "mode": "fast"},
        400,
        "Object contains unknown field `mode` - at `$`; allowed: calls",
        "$",
        ["calls"],
    ),
    "unknown field in one call of a batch": (
        "/v1/priority/batch",
        {"calls": [OK, {**OK, "prio": 1}]},
        400,
        "Object contains unknown field `prio` - at `$.calls[1]`; allowed: "
        + ", ".join(CALL_FIELDS),
        "$.calls[1]",
        CALL_FIELDS,
    ),
    "wrong type in one call of a batch": (
        "/v1/priority/batch",
        {"calls": [OK, {**OK, "urgency": [1]}]},
        400,
        "Expected `int | str | null`, got `array` - at `$.calls[1].urgency`; allowed: "
        + ", ".join(URGENCIES),
        "$.calls[1].urgency",
        URGENCIES,
    ),
    "missing call type in one call of a batch": (
        "/v1/priority/batch",
        {"calls": [{"impact": 1, "urgency": 1}]},
        400,
        "Object missing required field `type` - at `$.calls[0]`; allowed: "
        + ", ".join(CALL_FIELDS),
        "$.calls[0]",
        CALL_FIELDS,
    ),
    "unknown level in one call of a batch": (
        "/v1/priority/batch",
        {"calls": [OK, OK, {**OK, "urgency": "hgih"}]},
        422,
        "unknown urgency 'hgih' - at `$.calls[2].urgency`; allowed: " + ", ".join(URGENCIES),
        "$.calls[2].urgency",
        URGENCIES,
    ),
    "unknown version": (
        "/v1/priority?version=1999.9",
        OK,
        400,
        "unknown table version '1999.9' - in query parameter `version`; allowed: 2026.1",
        "query.version",
        ["2026.1"],
    ),
    "unknown version for a batch": (
        "/v1/priority/batch?version=latest",
        {"calls": [OK]},
        400,
        "unknown table version 'latest' - in query parameter `version`; allowed: 2026.1",
        "query.version",
        ["2026.1"],
    ),
}


@pytest.mark.parametrize(
    ("path", "body", "status", "detail", "field", "allowed"), CASES.values(), ids=list(CASES)
)
def test_a_bad_request_names_the_field_and_the_allowed_values(
    client: Client,
    path: str,
    body: Any,
    status: int,
    detail: str,
    field: str | None,
    allowed: list[str],
) -> None:
    if isinstance(body, bytes):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    problem = _problem(response, status)
    assert problem["detail"] == detail
    assert problem.get("field") == field
    assert problem.get("allowed", []) == allowed


def test_a_wrong_method_is_405_listing_the_allowed_methods(client: Client) -> None:
    problem = _problem(client.get("/v1/priority"), 405)
    assert problem["detail"] == "method GET is not allowed on /v1/priority; allowed: OPTIONS, POST"
    assert problem["allowed"] == ["OPTIONS", "POST"]
    allow = client.get("/v1/priority").headers["allow"]
    assert {m.strip() for m in allow.split(",")} == {"OPTIONS", "POST"}


def test_an_unknown_route_is_404_pointing_at_the_api_description(client: Client) -> None:
    problem = _problem(client.post("/v1/priorities", json=OK), 404)
    assert problem["detail"] == "no route POST /v1/priorities; the API is described at /schema"


def test_an_oversized_body_is_413_naming_the_limit(client: Client, app: Litestar) -> None:
    limit = app.state.settings.max_body_bytes
    body = json.dumps({"calls": [OK] * (limit // len(json.dumps(OK)) + 1)}).encode()
    assert len(body) > limit
    response = client.post(
        "/v1/priority/batch", content=body, headers={"content-type": "application/json"}
    )
    problem = _problem(response, 413)
    assert problem["detail"] == (
        f"request body is too large - at `$`; allowed: at most {limit} bytes"
    )
    assert problem["field"] == "$"


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_call_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from([*CALL_TYPES, "x"]) | _json,
        "impact": st.sampled_from([*IMPACT_NAMES, 1, 4, 9]) | _json,
        "urgency": st.sampled_from([*URGENCY_NAMES, 1, 4, 9]) | _json,
        "likelihood": st.sampled_from(["likely", 2]) | _json,
        "proximity": st.sampled_from(["near", 2]) | _json,
        "service": st.sampled_from(["email", "mail"]) | _json,
        "category": _json,
        "reported_at": st.sampled_from(
            ["2026-01-01T00:00:00Z", "2026-01-01", "9999-12-31T23:59:59+01:00"]
        )
        | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
        | _json,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_call_like | _json, batch=st.booleans())
def test_no_body_ever_gets_a_server_error(client: Client, body: Any, batch: bool) -> None:
    if batch:
        response = client.post("/v1/priority/batch", json={"calls": [body]})
    else:
        response = client.post("/v1/priority", json=body)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code != 200:
        problem = response.json()
        assert problem["detail"]
        assert response.headers["content-type"] == "application/problem+json"
