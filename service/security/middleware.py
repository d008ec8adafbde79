"""The one place requests are authenticated and authorised: an ``AbstractAuthenticationMiddleware``.

litestar runs route middleware after routing, so ``scope["path_template"]`` names the matched
route and :func:`~service.security.scopes.required_scope` says what it needs. Open routes pass
untouched; every other route needs a key holding its scope (401 without a valid key, 403 with the
wrong scope). The key itself is never stored on the request, logged or echoed: only the key's
*name* travels on (``request.user``), for logs and per-key rate limits.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.types import ASGIApp

from service.security.keys import LOCAL, KeyRing, Principal
from service.security.scopes import Scope, is_open, required_scope

__all__ = ["WWW_AUTHENTICATE", "ApiKeyMiddleware", "presented_key"]

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="usm-dispatch"'}
"""Sent with every 401 (RFC 9110 requires a challenge)."""

_FALLBACK = Scope.ADMIN
"""What a route missing from the scope table needs: fail closed, only admins get through."""


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, if any."""
    auth = connection.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = connection.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    """Checks the API key and the route's scope; sets ``request.user`` to a :class:`Principal`."""

    def __init__(self, app: ASGIApp, ring: KeyRing) -> None:
        super().__init__(app, scopes={ScopeType.HTTP})
        self.ring = ring

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Who is calling, once they have shown a key with the scope this route needs.

        Raises:
            NotAuthorizedException: no key, or a key that is not configured (401).
            PermissionDeniedException: a valid key without the route's scope (403).
        """
        template: str = connection.scope.get("path_template") or connection.scope["path"]
        if is_open(template):
            return AuthenticationResult(user=None, auth=None)
        if self.ring.empty:
            return AuthenticationResult(user=LOCAL, auth=None)
        method = str(connection.scope.get("method", "GET"))
        need = required_scope(template, method) or _FALLBACK
        key = presented_key(connection)
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
        return AuthenticationResult(user=principal, auth=None)
