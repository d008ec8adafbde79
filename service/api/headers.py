"""A bound on request headers for uvicorn's httptools protocol: 431 past ``max_header_bytes``.

uvicorn bounds headers only in its h11 protocol (``h11_max_incomplete_event_size``); with
httptools (the faster one, chosen by ``bench/http.py``) nothing does. httptools keeps a header
that arrives in pieces by joining the pieces, so one 50 MB header took 7 s of the event loop and
held ``/healthz`` for 5 s (issue 12 #12). This subclass counts the bytes of a request's head as
they arrive and answers 431 and closes the connection once they pass the limit, before the
parser has much to join. granian (hyper) has its own bound, set to the same number in
``server.py``.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["BoundedHttpToolsProtocol", "bounded", "too_large_response"]


def too_large_response(limit: int) -> bytes:
    """The whole 431 answer: a problem document naming the limit; the connection closes."""
    body = json.dumps(
        {
            "status": 431,
            "title": "Request Header Fields Too Large",
            "detail": f"request headers are too large; allowed: at most {limit} bytes",
        }
    ).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a limit on the size of each request's head.

    ``max_header_bytes`` is a class attribute, set by :func:`bounded` (uvicorn builds one
    protocol per connection from the class it is given).
    """

    max_header_bytes = 64 * 1024
    """Request line plus headers; ``Settings.max_header_bytes`` (``USM_MAX_HEADER_BYTES``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the 431 is on its way and the connection closing: read nothing more
        if self._in_head:
            # Counted before the parser sees the bytes, up to the blank line that ends the head
            # (it may start in the previous chunk, hence the tail).
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            before = self._head_bytes - len(self._tail)
            head = before + (end + 4 if end >= 0 else len(window))
            if head > self.max_header_bytes:
                self._refuse()
                return
            self._head_bytes += len(data)
            self._tail = window[-3:]
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""

    def _refuse(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(too_large_response(self.max_header_bytes))
            self.transport.close()


def bounded(limit: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to hand to uvicorn, refusing heads larger than ``limit`` bytes."""
    return type(
        BoundedHttpToolsProtocol.__name__, (BoundedHttpToolsProtocol,), {"max_header_bytes": limit}
    )
