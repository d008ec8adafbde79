"""One access line per request: method, path, status, duration and the API key's *name*.

A raw ASGI wrapper around the whole app rather than a litestar middleware: it sees every
request, also those that match no route (404) or fail before a handler, and costs a closure and
a tuple per request; lines are written in batches (``bench/access_log.py`` measures it).
litestar's ``LoggingMiddleware`` reads and formats headers and bodies for every request, far
more than an access line needs. The key itself and the
``Authorization`` header are never read here: the name comes from the authentication middleware
(``scope["user"]``).

``USM_ACCESS_LOG=off`` turns it off; so does a log level above INFO.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import AccessEntry, write_access

__all__ = ["FLUSH_SECONDS", "AccessLog", "with_access_log"]

log = logging.getLogger("usm.access")

FLUSH_SECONDS = 0.05
"""Access lines wait at most this long; all lines of that time cost one write."""


class AccessLog:
    """Wraps an ASGI app; logs each HTTP request when its response has been sent.

    Lines are formatted lazily: a request only appends a tuple, and a timer writes every line
    gathered in the last :data:`FLUSH_SECONDS` at once (:func:`service.logs.write_access`);
    what is left when the app shuts down is written then.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._pending: list[AccessEntry] = []

    def __getattr__(self, name: str) -> Any:
        # The wrapped app's attributes (litestar's ``state``, ``debug``...) stay reachable.
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not log.isEnabledFor(logging.INFO):
            if str(scope["type"]) == "lifespan":  # not in litestar's Scope type
                await self.app(scope, receive, self._flush_on_shutdown(send))
            else:
                await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]  # what the server answers when the app fails before it responds

        # A plain function handing back send's awaitable: no coroutine of its own per message.
        def sending(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, sending)  # type: ignore[arg-type]
        finally:
            self.record(scope, status[0], (time.perf_counter() - start) * 1000)

    def record(self, scope: Any, status: int, ms: float) -> None:
        """Log one answered request (``service.api.fast`` logs the requests it answers here)."""
        user = scope.get("user")
        key = getattr(user, "name", None) or "-"
        if not self._pending:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)
        self._pending.append((time.time(), scope["method"], scope["path"], status, ms, key))

    def _flush(self) -> None:
        entries, self._pending = self._pending, []
        if entries:
            write_access(entries)

    def _flush_on_shutdown(self, send: Send) -> Send:
        async def sending(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self._flush()
            await send(message)

        return sending


def with_access_log(app: ASGIApp) -> ASGIApp:
    """``app`` wrapped in :class:`AccessLog`, unless ``USM_ACCESS_LOG=off``."""
    if os.environ.get("USM_ACCESS_LOG", "on").strip().lower() in ("off", "0", "false", "no"):
        return app
    return AccessLog(app)
