"""Every /v1 route is mapped to a scope in service/security/scopes.py, and the mapping holds."""

from __future__ import annotations

from litestar.routes import HTTPRoute

from service.api.app import create_app
from service.security.scopes import ROUTE_SCOPES, Scope, is_open, required_scope
from service.settings import Settings


def _routes() -> list[tuple[str, str]]:
    app = create_app(Settings.from_env({}))
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            found.append((route.path_format, method))
    return found


def test_every_v1_route_of_the_app_needs_a_named_scope() -> None:
    routes = [(p, m) for p, m in _routes() if p.startswith("/v1")]
    assert routes, "the app has no /v1 routes"
    unmapped = [f"{m} {p}" for p, m in routes if required_scope(p, m) is None and not is_open(p)]
    assert unmapped == [], f"add these to ROUTE_SCOPES in service/security/scopes.py: {unmapped}"


def test_every_entry_of_the_scope_table_names_a_route_of_the_app() -> None:
    paths = {p for p, _ in _routes()}
    assert sorted(set(ROUTE_SCOPES) - paths) == []


def test_every_route_outside_v1_is_either_open_or_mapped() -> None:
    other = [(p, m) for p, m in _routes() if not p.startswith("/v1")]
    unmapped = [f"{m} {p}" for p, m in other if not is_open(p) and required_scope(p, m) is None]
    assert unmapped == []


def test_scoring_reads_and_writes_need_the_score_scope() -> None:
    assert required_scope("/v1/priority", "POST") is Scope.SCORE
    assert required_scope("/v1/priority/batch", "POST") is Scope.SCORE
    assert required_scope("/v1/tables", "GET") is Scope.SCORE
    assert required_scope("/v1/tables/versions", "HEAD") is Scope.SCORE


def test_admin_actions_always_need_the_admin_scope() -> None:
    admin = [p for p, by in ROUTE_SCOPES.items() if Scope.ADMIN in by.values()]
    assert "/v1/admin/tables/reload" in admin
    assert required_scope("/v1/admin/tables/reload", "POST") is Scope.ADMIN
    assert required_scope("/v1/items/{item_id}/requeue", "POST") is Scope.ADMIN
    assert required_scope("/v1/dead-letters", "GET") is Scope.ADMIN
    assert required_scope("/v1/tables", "POST") is Scope.ADMIN


def test_probes_metrics_and_the_openapi_document_are_open() -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json", "/schema/swagger"):
        assert is_open(path)
    assert not is_open("/v1/priority")


def test_only_source_events_authenticate_themselves_among_v1_routes() -> None:
    # They carry the tool's own signature instead of a usm key; nothing else under /v1 may.
    assert is_open("/v1/sources/{source}/events")
    opened = [p for p, _ in _routes() if p.startswith("/v1") and is_open(p)]
    assert sorted(set(opened)) == ["/v1/sources/{source}/events"]
