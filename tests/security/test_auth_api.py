"""Keys and scopes on the live app: 401 without a valid key, 403 with the wrong scope."""

from __future__ import annotations

import logging

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import LOOPBACK
from tests.security.conftest import Keys, bearer, keyed_app

CALL = {"type": "incident", "impact": "department", "urgency": "high"}


def test_a_request_without_a_key_gets_401_with_a_bearer_challenge(
    client: TestClient[Litestar],
) -> None:
    r = client.post("/v1/priority", json=CALL)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="usm-dispatch"'
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == (
        "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
    )


def test_an_unknown_key_gets_401_without_echoing_it(client: TestClient[Litestar]) -> None:
    r = client.post("/v1/priority", json=CALL, headers=bearer("usm_not-a-configured-key"))
    assert r.status_code == 401
    assert r.json()["detail"] == "unknown API key"
    assert "usm_not-a-configured-key" not in r.text


def test_a_key_with_the_right_scope_is_served_by_either_header(
    client: TestClient[Litestar], keys: Keys
) -> None:
    r1 = client.post("/v1/priority", json=CALL, headers=bearer(keys.score))
    r2 = client.post("/v1/priority", json=CALL, headers={"X-API-Key": keys.score})
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert r1.json()["priority"] == r2.json()["priority"]


def test_a_key_without_the_scope_gets_403_naming_the_scope_needed(
    client: TestClient[Litestar], keys: Keys
) -> None:
    r = client.post("/v1/priority", json=CALL, headers=bearer(keys.dispatch))
    assert r.status_code == 403
    assert r.json() == {
        "status": 403,
        "title": "Forbidden",
        "detail": "this endpoint needs scope 'score'; API key 'dispatcher' has: dispatch",
    }


def test_reading_tables_needs_score_and_reloading_them_needs_admin(
    client: TestClient[Litestar], keys: Keys
) -> None:
    assert client.get("/v1/tables", headers=bearer(keys.score)).status_code == 200
    assert client.get("/v1/tables/versions", headers=bearer(keys.admin)).status_code == 403
    denied = client.post("/v1/admin/tables/reload", headers=bearer(keys.score))
    assert denied.status_code == 403
    assert "needs scope 'admin'" in denied.json()["detail"]
    allowed = client.post("/v1/admin/tables/reload", headers=bearer(keys.admin))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"] == "unchanged"


def test_a_key_with_every_scope_reaches_every_kind_of_route(
    client: TestClient[Litestar], keys: Keys
) -> None:
    scored = client.post("/v1/priority", json=CALL, headers=bearer(keys.everything))
    assert scored.status_code == 200
    assert client.get("/v1/tables", headers=bearer(keys.everything)).status_code == 200
    r = client.post("/v1/admin/tables/reload", headers=bearer(keys.everything))
    assert r.status_code == 200, r.text
    assert r.json()["result"] == "unchanged"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/schema/openapi.json"])
def test_probes_metrics_and_openapi_answer_without_a_key(
    client: TestClient[Litestar], path: str
) -> None:
    assert client.get(path).status_code == 200


def test_the_openapi_document_names_the_scheme_scope_and_refusals(
    client: TestClient[Litestar],
) -> None:
    doc = client.get("/schema/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer usm_...`",
    }
    op = doc["paths"]["/v1/priority"]["post"]
    assert op["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    assert "Needs an API key with scope `score`." in op["description"]
    assert {"401", "403", "413", "429"} <= set(op["responses"])
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_without_keys_everything_is_open_on_loopback(keys: Keys) -> None:
    from service.api.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings.from_env({})), base_url=LOOPBACK) as c:
        assert c.post("/v1/priority", json=CALL).status_code == 200


def test_keys_never_reach_the_logs(keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(keyed_app(keys, rate_limit="off")) as c:
        c.post("/v1/priority", json=CALL, headers=bearer(keys.score))
        c.post("/v1/priority", json=CALL, headers=bearer(keys.dispatch))
        c.post("/v1/priority", json=CALL, headers=bearer(keys.score + "x"))
        c.post("/v1/priority", json={"type": "nope"}, headers={"X-API-Key": keys.score})
        c.post("/v1/admin/tables/reload", headers=bearer(keys.admin))
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "scorer" in text or "API keys required" in text  # the capture did see our logs
    for key in (keys.score, keys.dispatch, keys.admin, keys.everything):
        assert key not in text
        assert key[4:20] not in text
