"""The one place requests are authenticated and authorised: :class:`ApiKeyCheck`.

The API's one request layer (``service.api.guard``) calls it; litestar runs route middleware
after routing, so ``scope["path_template"]`` names the matched
route and :func:`~service.security.scopes.required_scope` says what it needs. Open routes pass
untouched; every other route needs a key holding its scope (401 without a valid key, 403 with the
wrong scope). The key itself is never stored on the request, logged or echoed: only the key's
*name* travels on (``request.user``), for logs and per-key rate limits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import Scope as LitestarScope

from service.security.keys import LOCAL, KeyRing, Principal
from service.security.scopes import Scope, is_open, required_scope

__all__ = ["WWW_AUTHENTICATE", "ApiKeyCheck", "presented_key"]

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="usm-dispatch"'}
"""Sent with every 401 (RFC 9110 requires a challenge)."""

_FALLBACK = Scope.ADMIN
"""What a route missing from the scope table needs: fail closed, only admins get through."""
_UNKNOWN = object()
_RULES_KEPT = 1024
"""(route, method) answers remembered; routes are few, this only bounds odd methods."""


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (raw ASGI headers)."""
    api_key: str | None = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                return key.strip()
        elif name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1").strip() or None
    return api_key


class ApiKeyCheck:
    """Checks the API key and the route's scope; the caller sets ``request.user`` to the result.

    What litestar's ``AbstractAuthenticationMiddleware`` does (``scope["user"]``,
    ``scope["auth"]``, HTTP only), reading the raw headers: the base class builds an
    ``ASGIConnection`` and a header map per request, which cost more than checking the key
    (bench/http.py, cProfile).
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._rules: dict[tuple[str, str], Scope | object | None] = {}
        """(route template, method) -> the scope it needs, or None for open routes."""

    def authenticate(
        self, scope: LitestarScope, headers: dict[bytes, bytes] | None = None
    ) -> Principal | None:
        """Who is calling, once they have shown a key with the scope this route needs.

        Args:
            scope: The routed request.
            headers: ``dict(scope["headers"])`` when the caller has it: read instead of the raw
                list unless a header name repeats.

        Raises:
            NotAuthorizedException: no key, or a key that is not configured (401).
            PermissionDeniedException: a valid key without the route's scope (403).
        """
        template: str = scope.get("path_template") or scope["path"]  # type: ignore[assignment]
        method = str(scope.get("method", "GET"))
        rule = self._rules.get((template, method), _UNKNOWN)
        if rule is _UNKNOWN:
            rule = None if is_open(template) else (required_scope(template, method) or _FALLBACK)
            if len(self._rules) < _RULES_KEPT:
                self._rules[(template, method)] = rule
        need = cast(Scope | None, rule)
        if need is None:
            return None
        if self.ring.empty:
            return LOCAL
        raw = cast("list[tuple[bytes, bytes]]", scope["headers"])
        if headers is not None and len(headers) == len(raw):
            key = _key_of(headers)
        else:
            key = presented_key(raw)
        if key is None:
            raise NotAuthorizedException(
                "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                headers=WWW_AUTHENTICATE,
            )
        principal: Principal | None = self.ring.verify(key)
        if principal is None:
            raise NotAuthorizedException("unknown API key", headers=WWW_AUTHENTICATE)
        if need not in principal.scopes:
            held = ", ".join(sorted(s.value for s in principal.scopes))
            raise PermissionDeniedException(
                f"this endpoint needs scope '{need.value}'; API key '{principal.name}' has: {held}"
            )
        return principal


def _key_of(headers: dict[bytes, bytes]) -> str | None:
    """:func:`presented_key` for headers without repeated names, read from their dict."""
    value = headers.get(b"authorization")
    if value is not None:
        scheme, _, key = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return key.strip()
    api_key = headers.get(b"x-api-key")
    return None if api_key is None else (api_key.decode("latin-1").strip() or None)
