"""The one place requests are authenticated and authorised: :class:`ApiKeyMiddleware`.

litestar runs route middleware after routing, so ``scope["path_template"]`` names the matched
route and :func:`~service.security.scopes.required_scope` says what it needs. Open routes pass
untouched; every other route needs a key holding its scope (401 without a valid key, 403 with the
wrong scope). The key itself is never stored on the request, logged or echoed: only the key's
*name* travels on (``request.user``), for logs and per-key rate limits.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import ASGIApp, Receive, Send
from litestar.types import Scope as LitestarScope

from service.security.keys import LOCAL, KeyRing, Principal
from service.security.scopes import Scope, is_open, required_scope

__all__ = ["WWW_AUTHENTICATE", "ApiKeyMiddleware", "presented_key"]

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="usm-dispatch"'}
"""Sent with every 401 (RFC 9110 requires a challenge)."""

_FALLBACK = Scope.ADMIN
"""What a route missing from the scope table needs: fail closed, only admins get through."""


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


class ApiKeyMiddleware:
    """Checks the API key and the route's scope; sets ``request.user`` to a :class:`Principal`.

    What litestar's ``AbstractAuthenticationMiddleware`` does (``scope["user"]``,
    ``scope["auth"]``, HTTP only), as a plain ASGI middleware reading the raw headers: the base
    class builds an ``ASGIConnection`` and a header map per request, which cost more than
    checking the key (bench/http.py, cProfile).
    """

    def __init__(self, app: ASGIApp, ring: KeyRing) -> None:
        self.app = app
        self.ring = ring

    async def __call__(self, scope: LitestarScope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            scope["user"] = self.authenticate(scope)
            scope["auth"] = None
        await self.app(scope, receive, send)

    def authenticate(self, scope: LitestarScope) -> Principal | None:
        """Who is calling, once they have shown a key with the scope this route needs.

        Raises:
            NotAuthorizedException: no key, or a key that is not configured (401).
            PermissionDeniedException: a valid key without the route's scope (403).
        """
        template: str = scope.get("path_template") or scope["path"]  # type: ignore[assignment]
        if is_open(template):
            return None
        if self.ring.empty:
            return LOCAL
        method = str(scope.get("method", "GET"))
        need = required_scope(template, method) or _FALLBACK
        key = presented_key(scope["headers"])
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
