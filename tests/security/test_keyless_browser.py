"""Keyless mode and the browser: no cross-site request and no DNS rebinding reaches the API.

Without keys every endpoint is open on loopback. A web page in the user's browser can still
send requests there: a cross-site form or ``fetch`` (text/plain, form-encoded, no preflight)
carries its page's ``Origin``; a rebinding page (its own name resolved to 127.0.0.1) carries its
own ``Host``. Both are refused before any handler runs; the same requests from a tool on the
machine (loopback Host, no Origin) pass. Real Redis, so the refused requests would otherwise
have queued an item and reloaded the tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.fixtures.api import LOOPBACK
from tests.security.conftest import Keys, bearer, keyed_app

ITEM = {
    "type": "incident",
    "impact": "user",
    "urgency": "low",
    "source": "browser",
    "external_id": "CSRF-1",
}
EVIL = "https://evil.example"
NO_HOST = (
    "host 'evil.example:8000' is not served: without API keys this service answers only to "
    "localhost, 127.0.0.1 and [::1] (any port)"
)


@pytest.fixture
def keyless(redis_url: str, single_set_tables: Path) -> Iterator[TestClient[Litestar]]:
    settings = Settings(redis_url=redis_url, tables=str(single_set_tables))
    with TestClient(create_app(settings), base_url=LOOPBACK) as c:
        yield c


def items_in(redis_url: str) -> int:
    return len(redis.Redis.from_url(redis_url).keys("rq:job:*"))


def test_a_cross_site_text_plain_post_queues_nothing(
    keyless: TestClient[Litestar], redis_url: str
) -> None:
    response = keyless.post(
        "/v1/items",
        content=json.dumps(ITEM),
        headers={"content-type": "text/plain", "origin": EVIL},
    )
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == (
        f"cross-origin request from '{EVIL}' refused: without API keys only pages on "
        "localhost, 127.0.0.1 and [::1] (any port) may call this service"
    )
    assert items_in(redis_url) == 0


def test_a_cross_site_json_post_is_refused_too(keyless: TestClient[Litestar]) -> None:
    response = keyless.post("/v1/items", json=ITEM, headers={"origin": EVIL})
    assert response.status_code == 403


def test_a_rebinding_host_is_421_for_reads_writes_and_admin(
    keyless: TestClient[Litestar], redis_url: str
) -> None:
    host = {"host": "evil.example:8000"}
    answers: list[Any] = [
        keyless.post("/v1/admin/tables/reload", headers=host),
        keyless.post("/v1/items", json=ITEM, headers=host),
        keyless.get("/v1/tables", headers=host),
    ]
    for response in answers:
        assert response.status_code == 421, response.text
        assert response.json()["detail"] == NO_HOST
    assert items_in(redis_url) == 0


def test_admin_reload_from_a_foreign_page_is_refused(keyless: TestClient[Litestar]) -> None:
    response = keyless.post("/v1/admin/tables/reload", headers={"origin": EVIL})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8000", None),
        ("localhost:8000", "http://localhost:8000"),
        ("[::1]:8000", "http://[::1]:8000"),
        ("localhost", None),
    ],
)
def test_tools_and_local_pages_are_served(
    keyless: TestClient[Litestar], redis_url: str, host: str, origin: str | None
) -> None:
    headers = {"host": host} | ({"origin": origin} if origin else {})
    created = keyless.post("/v1/items", json=ITEM, headers=headers)
    assert created.status_code == 201, created.text
    assert items_in(redis_url) > 0
    assert keyless.post("/v1/admin/tables/reload", headers=headers).status_code == 200


def test_with_keys_the_host_is_the_deployments_business(keys: Keys) -> None:
    with TestClient(keyed_app(keys, rate_limit="off")) as c:
        response = c.post(
            "/v1/priority",
            json={"type": "incident", "impact": "user", "urgency": "low"},
            headers={"host": "usm.example.org", **bearer(keys.score)},
        )
    assert response.status_code == 200, response.text
