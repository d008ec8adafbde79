"""Well-formed requests of the hottest routes, served in front of litestar: :class:`FastPath`.

``POST /v1/priority`` is what ticketing tools call most, and litestar's machinery around its
handler (routing, the exception middleware layers, the kwargs and signature model, the response
object, our request layer and access log as separate ASGI frames) cost more than scoring:
the service answered 0.66x the requests of a bare litestar + msgspec app (issue 14,
docs/benchmarks.md "HTTP"). This layer sits outside litestar and answers such a request itself
when it is *sure* of it, doing what the full path does in the same order:

1. the intake rules (JSON content type with a length, within the body limit; in keyless mode a
   loopback Host and Origin), the API key and the route's scope
   (:class:`~service.security.middleware.ApiKeyCheck`, the same object litestar's path uses);
2. the body read whole and handed to the route's :meth:`FastRoute.parse` (strict msgspec
   decode, query string), which has no side effects;
3. the per-key rate limit (:class:`~service.security.ratelimit.KeyRateLimiter`, counted once);
4. the route's :meth:`FastRoute.answer` (scoring, decision metrics, decision log);
5. the answer with the status and headers litestar sends (content type, length, the rate-limit
   headers), the HTTP metrics tallies (:mod:`service.api.http_metrics`) and the access line.

Anything it is not sure of goes to litestar unchanged, with the body already read replayed
through ``receive``: another method, path or content type, a missing or bad key, a body too
large, a body the strict decoder refuses, an unknown ``?version=``, a refusal of the rate
limit, an exception. So every 4xx keeps its single source (litestar's handlers and
``service.api.errors``). A request already counted by the rate limiter carries that result in
its scope (:data:`ADMITTED`), and :class:`~service.api.guard.RequestGuard` takes it instead of
counting the request again. The litestar routes stay registered: they document the API
(OpenAPI) and serve every request this layer passes on.

``USM_FAST_PATH=off`` turns it off; ``tests/integration/test_api_fast_path.py`` sends the same
calls and hostile inputs to servers with it on and off and compares status, headers, body,
access line, decision-log row and metrics.

``POST /v1/priority/batch`` rides it too (:class:`~service.api.priority.ScoreBatch`): the
strict decode skips litestar's decode-to-dicts-then-convert of every call.

Other routes join by adding a :class:`FastRoute` to :func:`fast_routes`: source events do
(``service/api/sources.py``, one route per configured source; only sources that score without
queueing, the item writes stay on litestar's route and its worker thread).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any, Protocol

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.api.access import AccessLog
from service.api.access import log as access_log
from service.api.http_metrics import route_metrics
from service.security import Security
from service.security.intake import BOM, is_json_media_type, loopback_host
from service.security.ratelimit import ALLOWANCE

__all__ = ["ADMITTED", "Answer", "FastPath", "FastRoute", "fast_routes", "with_fast_path"]

log = logging.getLogger("usm.api")

ADMITTED = "usm.admitted"
"""Scope key: ``(allowance, refusal)`` of a request the fast path counted against the rate
limit and then passed on; the request layer uses it instead of counting again."""

_PASS = object()
"""Not for the fast path: litestar's path answers the request."""

Answer = tuple[bytes, bytes]
"""What a fast route answers with status 200: the content type and the body."""


class FastRoute(Protocol):
    """One route the fast path serves (one method, exact paths)."""

    method: str
    """``POST``..."""
    paths: tuple[str, ...]
    """The request paths served, exactly as ``scope["path"]`` (no trailing-slash variants)."""
    template: str
    """litestar's path template of the route: the scope rule and the metrics label."""

    def parse(self, body: bytes, query: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
        """What the request asks, or None when litestar should answer it. No side effects.

        ``headers`` are the raw ASGI headers (a source's signature check reads them).
        """

    def answer(self, parsed: Any, scope: Scope) -> Answer | Awaitable[Answer]:
        """Do the work and encode the 200 answer (a coroutine when it must wait, e.g. on
        Redis); raising passes the request to litestar.

        ``scope`` holds the request's rate-limit allowance (``ALLOWANCE`` in its state), for
        routes that charge more than one request (a batch). A charge the limiter refuses
        (:class:`~litestar.exceptions.TooManyRequestsException`, the allowance marked
        ``refused``) is answered by litestar as that refusal, without counting again; charge
        only after everything that may fail otherwise, so that litestar's path, which charges
        first, counts the same.
        """


class _Route:
    """A :class:`FastRoute` with what the layer needs per request, looked up once."""

    __slots__ = ("metrics", "route", "rule")

    def __init__(self, route: FastRoute) -> None:
        self.route = route
        self.metrics = route_metrics(route.method, route.template)
        # What ApiKeyCheck reads from a routed scope.
        self.rule: dict[str, Any] = {"path_template": route.template, "method": route.method}


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first hands out ``messages`` (the body already read), then the rest."""
    pending = iter(messages)

    async def replayed() -> Any:
        for message in pending:
            return message
        return await receive()

    return replayed


class FastPath:
    """Serves well-formed requests of a few routes itself; passes all others to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[FastRoute],
        security: Security,
        max_body: int,
        access: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.access = access
        self.auth = security.auth
        self.limiter = security.limiter
        self.keyless = security.ring.empty
        self.max_body = max_body
        self.routes = {(r.method, path): _Route(r) for r in routes for path in r.paths}

    def __getattr__(self, name: str) -> Any:
        # The wrapped app's attributes (litestar's ``state``...) stay reachable, as AccessLog's.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            route = self.routes.get((scope["method"], scope["path"]))  # type: ignore[typeddict-item]
            if route is not None and not scope.get("root_path"):
                await self._serve(route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _principal(self, route: _Route, scope: Scope) -> Any:
        """The key's principal when the intake rules and the key check pass, else :data:`_PASS`
        (litestar's path answers: it refuses the request, or reads what this does not)."""
        raw: list[tuple[bytes, bytes]] = scope["headers"]  # type: ignore[assignment]
        headers = dict(raw)
        if len(headers) != len(raw) or b"transfer-encoding" in headers:
            return _PASS  # repeated headers or a chunked body: rare, litestar's path reads them
        if not is_json_media_type(headers.get(b"content-type", b"").decode("latin-1")):
            return _PASS
        length = headers.get(b"content-length", b"")
        if not length.isdigit() or not 0 < int(length) <= self.max_body:
            return _PASS
        if self.keyless:
            host = headers.get(b"host")
            if host is not None and not loopback_host(host.decode("latin-1")):
                return _PASS
            if b"origin" in headers:
                return _PASS  # browsers send it; its rule stays the intake's
        route.rule["headers"] = raw
        try:
            return self.auth.authenticate(route.rule, headers)  # type: ignore[arg-type]
        except Exception:  # 401/403: litestar's path refuses it again
            return _PASS

    async def _serve(self, route: _Route, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        principal = self._principal(route, scope)
        if principal is _PASS:
            await self.app(scope, receive, send)
            return
        messages, body = await _read(receive, self.max_body)
        parsed = None
        if body is not None and not body.startswith(BOM):
            try:
                query: bytes = scope["query_string"]  # type: ignore[typeddict-item]
                parsed = route.route.parse(body, query, scope["headers"])  # type: ignore[arg-type]
            except Exception:  # nothing happened yet: litestar answers
                parsed = None
        if parsed is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        metrics = route.metrics
        metrics.running.value += 1
        limiter = self.limiter
        limited = limiter is not None and limiter.limits(principal)
        allowance = None
        admitted = False
        try:
            if limited:
                allowance = await limiter.admit(scope, principal)  # type: ignore[union-attr]
            admitted = True
            result = route.route.answer(parsed, scope)
            if not isinstance(result, tuple):
                result = await result
            content_type, answer = result
        except Exception as exc:  # litestar answers, with the count made here
            metrics.running.value -= 1
            if limited:
                held = scope["state"].get(ALLOWANCE) if admitted else None  # type: ignore[typeddict-item]
                refused = not admitted or (held is not None and held.refused)
                scope[ADMITTED] = (allowance, exc if refused else None)  # type: ignore[literal-required]
            await self.app(scope, _replay(messages, receive), send)
            return
        await self._send(route, scope, send, principal, started, allowance, content_type, answer)

    async def _send(
        self,
        route: _Route,
        scope: Scope,
        send: Send,
        principal: Any,
        started: float,
        allowance: Any,
        content_type: bytes,
        answer: bytes,
    ) -> None:
        """Send the 200 answer; count it (HTTP metrics) and log it (access line)."""
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(answer))]
        if allowance is not None:
            headers += allowance.raw_headers()
        status = 500
        ended = 0.0
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            status = 200
            ended = perf_counter()
            await send({"type": "http.response.body", "body": answer, "more_body": False})
        finally:
            route.metrics.finished(status, (ended or perf_counter()) - started)
            access = self.access
            if access is not None and access_log.isEnabledFor(logging.INFO):
                scope["user"] = principal
                access.record(scope, status, (perf_counter() - started) * 1000)


async def _read(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The request's messages read so far, and its whole body (None: not whole, or too large)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None  # a disconnect: litestar's path sees it
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            return messages, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def fast_routes(app: Any) -> list[FastRoute]:
    """The fast routes of the litestar ``app`` (its state holds what they need)."""
    from service.api.priority import ScoreBatch, ScoreOne
    from service.api.sources import source_routes

    return [ScoreOne(app.state), ScoreBatch(app.state), *source_routes(app.state)]


def _off() -> bool:
    return os.environ.get("USM_FAST_PATH", "on").strip().lower() in ("off", "0", "false", "no")


def with_fast_path(app: ASGIApp, routes: Callable[[Any], list[FastRoute]] = fast_routes) -> ASGIApp:
    """``app`` (litestar, maybe wrapped in :class:`AccessLog`) behind a :class:`FastPath`.

    Unchanged when ``USM_FAST_PATH=off``, or when ``app`` is not the service's app (no
    ``security`` in its state: a bench's bare app).
    """
    if _off():
        return app
    access = app if isinstance(app, AccessLog) else None
    inner: Any = access.app if access is not None else app
    state = getattr(inner, "state", None)
    security = None if state is None else state.get("security")
    settings = None if state is None else state.get("settings")
    if not isinstance(security, Security) or settings is None:
        return app
    return FastPath(app, routes(inner), security, settings.max_body_bytes, access)
