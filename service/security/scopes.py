"""Which scope each route needs: one declarative table, keyed by route path template.

A route's *path template* is litestar's ``path_format`` (``/v1/items/{item_id}``), the same
string litestar puts in ``scope["path_template"]`` after routing, so the middleware looks a
request up here in O(1). A /v1 route missing from :data:`ROUTE_SCOPES` is refused to everyone
but ``admin`` keys (fail closed), and ``tests/security/test_scopes.py`` fails until it is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

__all__ = [
    "OPEN_PREFIXES",
    "ROUTE_SCOPES",
    "SELF_AUTHENTICATED",
    "Scope",
    "is_open",
    "required_scope",
]


class Scope(StrEnum):
    """What an API key may do. Scopes are independent: ``admin`` does not imply the others."""

    SCORE = "score"
    """Score calls and read the table sets: ``/v1/priority*``, ``GET /v1/tables*``."""
    DISPATCH = "dispatch"
    """Queue, read, change, cancel, claim and complete items; read team queues."""
    ADMIN = "admin"
    """Reload tables, re-queue items, read dead letters."""


_ANY = "*"
"""Method wildcard in :data:`ROUTE_SCOPES`."""

ROUTE_SCOPES: Mapping[str, Mapping[str, Scope]] = {
    # Scoring: pure, no side effects.
    "/v1/priority": {_ANY: Scope.SCORE},
    "/v1/priority/batch": {_ANY: Scope.SCORE},
    "/v1/tables": {"GET": Scope.SCORE, _ANY: Scope.ADMIN},
    "/v1/tables/versions": {"GET": Scope.SCORE, _ANY: Scope.ADMIN},
    "/v1/admin/tables/reload": {_ANY: Scope.ADMIN},
    # Dispatch: items, teams, pull-mode claims.
    "/v1/items": {_ANY: Scope.DISPATCH},
    "/v1/items/{item_id}": {_ANY: Scope.DISPATCH},
    "/v1/items/{item_id}/complete": {_ANY: Scope.DISPATCH},
    "/v1/items/{item_id}/release": {_ANY: Scope.DISPATCH},
    "/v1/teams": {_ANY: Scope.DISPATCH},
    "/v1/teams/{team}": {_ANY: Scope.DISPATCH},
    "/v1/teams/{team}/queue": {_ANY: Scope.DISPATCH},
    "/v1/teams/{team}/claim": {_ANY: Scope.DISPATCH},
    # Admin: actions that override the normal flow.
    "/v1/items/{item_id}/requeue": {_ANY: Scope.ADMIN},
    "/v1/dead-letters": {_ANY: Scope.ADMIN},
}
"""Route path template -> HTTP method (or ``*``) -> required scope."""

OPEN_PREFIXES: tuple[str, ...] = ("/healthz", "/readyz", "/metrics", "/schema")
"""Probes, metrics and the OpenAPI document stay open: orchestrators and Prometheus hold no keys."""


SELF_AUTHENTICATED: frozenset[str] = frozenset({"/v1/sources/{source}/events"})
"""Routes that need no API key because the handler authenticates them itself: ticketing tools
sign their events with the source's own scheme (``service/sources/signatures.py``) and hold no
usm key. A request without a valid signature gets 401 there, before anything is read."""


def is_open(path_template: str) -> bool:
    """True for routes that need no key (probes, metrics, OpenAPI, signed source events)."""
    return path_template.startswith(OPEN_PREFIXES) or path_template in SELF_AUTHENTICATED


def required_scope(path_template: str, method: str) -> Scope | None:
    """The scope ``method path_template`` needs, or None when the table does not name it.

    Args:
        path_template: litestar's path template of the matched route, e.g. ``/v1/items/{item_id}``.
        method: the HTTP method, upper case.
    """
    by_method = ROUTE_SCOPES.get(path_template.rstrip("/") or "/")
    if by_method is None:
        return None
    if method == "HEAD":
        method = "GET"
    return by_method.get(method) or by_method.get(_ANY)
