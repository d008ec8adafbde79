"""An ASGI wrapper that notes what reaches the app it wraps (the fast path's fallback tests)."""

from __future__ import annotations

from typing import Any

__all__ = ["Recorder"]


class Recorder:
    """litestar's app, noting the body of each HTTP request it gets (what the fast path passed
    on, and whether the body arrived whole)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        read = bytearray()

        async def reading() -> Any:
            message = await receive()
            read.extend(message.get("body", b""))
            return message

        try:
            await self.app(scope, reading, send)
        finally:
            self.bodies.append(bytes(read))
