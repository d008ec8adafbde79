"""Everything a routed request passes before its handler, in one ASGI layer: :class:`RequestGuard`.

In order: the HTTP metrics start counting (:mod:`service.api.http_metrics`), the intake rules
(:class:`~service.security.intake.Intake`: JSON bodies; loopback Host/Origin without keys), the
API key and the route's scope (:class:`~service.security.middleware.ApiKeyCheck`), the per-key
rate limit (:class:`~service.security.ratelimit.KeyRateLimiter`). A refusal raised by any of
them is counted with its status and answered by litestar's exception handling outside.

These were four litestar middleware layers, each with its own coroutine frame and three with
their own ``send`` wrapper; a request through all four cost more than the handler of
``POST /v1/priority`` (bench/http.py, in-process profile). Here one frame and one ``send``
wrapper do it all, and the checks keep their own modules.

A request the fast path (:mod:`service.api.fast`) counted against the rate limit and then
passed on carries that count (``ADMITTED``); it is used instead of counting again.

litestar runs this after routing (it is app middleware), so ``scope["path_template"]`` and
``scope["route_handler"]`` name the matched route.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from service.api.fast import ADMITTED
from service.api.http_metrics import EXCLUDED, route_metrics
from service.security import Security
from service.security.intake import without_bom
from service.security.ratelimit import Allowance

__all__ = ["RequestGuard"]


class RequestGuard:
    """HTTP metrics, intake, API key and rate limit for every routed HTTP request."""

    def __init__(self, app: ASGIApp, security: Security) -> None:
        self.app = app
        self.intake = security.intake
        self.auth = security.auth
        self.limiter = security.limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path_template") or scope["path"]  # type: ignore[assignment]
        counted = path not in EXCLUDED
        method: str = scope["method"]  # type: ignore[typeddict-item]
        started = perf_counter()
        status = 200
        ended = 0.0
        allowance: Allowance | None = None

        async def sending(message: Any) -> None:  # an HTTP send event
            nonlocal status, ended
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                # Read now: a batch's charge lowers the remaining count after admission.
                if allowance is not None and not allowance.refused:
                    message["headers"] = [*message.get("headers", ()), *allowance.raw_headers()]
            elif kind == "http.response.body":
                ended = perf_counter()
            await send(message)

        metrics = route_metrics(method, path) if counted else None
        if metrics is not None:
            metrics.running.value += 1
        try:
            headers = dict(scope["headers"])  # once, in C, for the checks below
            if self.intake.check(scope, headers):
                receive = without_bom(receive)
            user = scope["user"] = self.auth.authenticate(scope, headers)
            scope["auth"] = None
            limiter = self.limiter
            if limiter is not None and limiter.limits(user):
                admitted = scope.pop(ADMITTED, None)  # type: ignore[misc]
                if admitted is None:
                    allowance = await limiter.admit(scope, user)  # type: ignore[arg-type]
                else:  # counted by the fast path, which passed the request on: not again
                    allowance, refusal = admitted
                    if refusal is not None:
                        raise refusal
            await self.app(scope, receive, sending)
        except Exception as exc:
            # Answered by litestar's exception handling outside this layer.
            status = int(getattr(exc, "status_code", 500))
            raise
        finally:
            if metrics is not None:
                metrics.finished(status, (ended or perf_counter()) - started)
