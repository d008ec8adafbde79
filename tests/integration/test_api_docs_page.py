"""The API docs page works offline: every script and style comes from the service itself.

litestar's default pages load Scalar from a CDN at ``@latest``; ours are Swagger UI from the
pinned ``swagger-ui-bundle-v2`` package, served under ``/schema/assets``.
"""

from __future__ import annotations

import re

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import api_tables, app, client

__all__ = ["api_tables", "app", "client"]

Client = TestClient[Litestar]
ATTRIBUTE = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']*)["']""")


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
def test_the_docs_page_references_only_the_services_own_files(client: Client, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    urls = ATTRIBUTE.findall(response.text)
    assert urls, "the page loads its UI from somewhere"
    assert [u for u in urls if not u.startswith("/schema/assets/")] == []


def test_every_asset_the_page_names_is_served(client: Client) -> None:
    urls = ATTRIBUTE.findall(client.get("/schema").text)
    kinds = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "max-age=86400, public"
        kinds[url.rsplit(".", 1)[-1]] = response
    assert kinds["js"].headers["content-type"].startswith("text/javascript")
    assert kinds["css"].headers["content-type"].startswith("text/css")
    bundle = client.get("/schema/assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle
    assert len(bundle) > 100_000


def test_an_unknown_asset_is_404(client: Client) -> None:
    assert client.get("/schema/assets/../../pyproject.toml").status_code == 404
    assert client.get("/schema/assets/nope.js").status_code == 404
