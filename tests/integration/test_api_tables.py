"""``GET /v1/tables``, the health probes, and the OpenAPI description with its browsable UIs."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from tests.fixtures.api import api_tables, app, client

__all__ = ["api_tables", "app", "client"]

Client = TestClient[Litestar]


def test_the_active_tables_show_version_hash_levels_matrix_and_targets(client: Client) -> None:
    response = client.get("/v1/tables")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == "2026.1"
    assert body["hash"].startswith("sha256:")
    assert body["effective_from"] == "2026-01-01T00:00:00Z"
    tables = body["tables"]
    levels = tables["levels"]
    assert [lv["name"] for lv in levels["impact"]] == [
        "organisation",
        "department",
        "group",
        "user",
    ]
    assert [lv["name"] for lv in levels["urgency"]] == ["immediate", "high", "normal", "low"]
    assert [(t["priority"], t["label"], t["response"], t["resolve"]) for t in body["targets"]] == [
        ("P1", "critical", "PT15M", "PT4H"),
        ("P2", "high", "PT30M", "PT8H"),
        ("P3", "normal", "PT2H", "P2D"),
        ("P4", "low", "PT8H", "P5D"),
        ("P5", "planning", "P2D", "P20D"),
    ]
    # The full files are there too; msgspec writes their durations in seconds.
    assert (levels["priority"][0]["name"], levels["priority"][0]["response"]) == ("P1", "PT900S")
    assert tables["matrix"]["matrix"]["department"] == {
        "immediate": "P1",
        "high": "P2",
        "normal": "P3",
        "low": "P4",
    }
    assert tables["risk"]["urgency"]["likely"]["imminent"] == "high"
    assert tables["routing"]["default_team"] == "service_desk"
    assert set(tables) == {
        "set",
        "levels",
        "matrix",
        "call_types",
        "risk",
        "services",
        "teams",
        "routing",
        "sources",
    }


def test_the_tables_hash_is_the_one_decisions_carry(client: Client) -> None:
    tables = client.get("/v1/tables").json()
    decision = client.post("/v1/priority", json={"type": "wish", "impact": 4, "urgency": 4}).json()
    assert (decision["table_version"], decision["table_hash"]) == (
        tables["version"],
        tables["hash"],
    )


def test_the_versions_list_marks_the_active_one(client: Client) -> None:
    response = client.get("/v1/tables/versions")
    assert response.status_code == 200
    (only,) = response.json()
    assert only["version"] == "2026.1"
    assert only["active"] is True
    assert only["title"] == "USM worked example"


def test_healthz_says_the_process_answers(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_the_table_version_in_force(client: Client) -> None:
    tables = client.get("/v1/tables").json()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "table_version": "2026.1",
        "table_hash": tables["hash"],
    }


def test_the_openapi_document_lists_every_endpoint_of_the_foundation(client: Client) -> None:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["info"]["title"] == "usm-dispatch"
    paths = doc["paths"]
    assert {"/v1/priority", "/v1/priority/batch", "/v1/tables", "/healthz", "/readyz"} <= set(paths)
    assert "post" in paths["/v1/priority"]
    assert "post" in paths["/v1/priority/batch"]
    assert "get" in paths["/v1/tables"]
    params = paths["/v1/priority"]["post"].get("parameters", [])
    assert any(p["name"] == "version" and p["in"] == "query" for p in params)
    assert "Call" in doc["components"]["schemas"]
    assert "Decision" in doc["components"]["schemas"]


def test_the_browsable_api_pages_answer(client: Client) -> None:
    for path in ("/schema", "/schema/swagger"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<title>usm-dispatch</title>" in response.text


def test_the_openapi_document_describes_every_call_field(client: Client) -> None:
    schema = client.get("/schema/openapi.json").json()["components"]["schemas"]["Call"]
    fields = schema["properties"]
    assert list(fields) == [
        "type",
        "impact",
        "urgency",
        "likelihood",
        "proximity",
        "service",
        "category",
        "reported_at",
    ]
    assert all(spec.get("description") for spec in fields.values())
    assert schema["required"] == ["type"]
