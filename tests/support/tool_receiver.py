"""A real HTTP server on a free loopback port standing in for a ticketing tool's REST API.

The contract tests point a source's write-back ``base_url`` at it and read back exactly what usm
sent: method, path, headers and body. Answers are chosen per request by a function of the path,
so a test can play GLPI's ``initSession`` (which answers a session token) or a tool that fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["Answer", "Received", "ToolReceiver"]


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    """Header names as sent; a name sent twice keeps its last value."""
    body: bytes


@dataclass(frozen=True)
class Answer:
    """What the stand-in answers."""

    status: int = 204
    body: bytes = b""
    content_type: str = "application/json"


class ToolReceiver:
    """Records every request; answers ``answer(received)`` (default: 204, empty)."""

    def __init__(self, answer: Callable[[Received], Answer] | None = None) -> None:
        self.answer = answer or (lambda _r: Answer())
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                got = Received(
                    method=self.command,
                    path=self.path,
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                )
                with receiver._lock:
                    receiver.received.append(got)
                reply = receiver.answer(got)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads ``received``, not stderr."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the tool's base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests(self) -> list[Received]:
        """A snapshot of what arrived so far, in arrival order."""
        with self._lock:
            return list(self.received)

    def __enter__(self) -> ToolReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
