"""One access line per request: method, path, status, duration and the API key's *name*.

A raw ASGI wrapper around the whole app rather than a litestar middleware: it sees every
request, also those that match no route (404) or fail before a handler, and it costs one closure
and one log record per request. litestar's ``LoggingMiddleware`` reads and formats headers and
bodies for every request, which is far more than an access line needs. The key itself and the
``Authorization`` header are never read here: the name comes from the authentication middleware
(``scope["user"]``).

``USM_ACCESS_LOG=off`` turns it off; so does a log level above INFO.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "with_access_log"]

log = logging.getLogger("usm.access")

_FORMAT = "%s %s %d %.1fms key=%s"
"""``POST /v1/items 201 2.3ms key=ticketing``: the message, formatted only when written."""


class AccessLog:
    """Wraps an ASGI app; logs each HTTP request when its response has been sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._make = log.makeRecord

    def __getattr__(self, name: str) -> Any:
        # The wrapped app's attributes (litestar's ``state``, ``debug``...) stay reachable.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers when the app fails before it responds

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._write(scope, status, (time.perf_counter() - start) * 1000)

    def _write(self, scope: Any, status: int, ms: float) -> None:
        user = scope.get("user")
        key = getattr(user, "name", None) or "-"
        method, path = scope["method"], scope["path"]
        # makeRecord + handle: no caller lookup (``findCaller`` walks the stack on every call).
        record = self._make(
            log.name, logging.INFO, "", 0, _FORMAT, (method, path, status, ms, key), None
        )
        record.fields = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(ms, 3),
            "key": key,
        }
        log.handle(record)


def with_access_log(app: ASGIApp) -> ASGIApp:
    """``app`` wrapped in :class:`AccessLog`, unless ``USM_ACCESS_LOG=off``."""
    if os.environ.get("USM_ACCESS_LOG", "on").strip().lower() in ("off", "0", "false", "no"):
        return app
    return AccessLog(app)
