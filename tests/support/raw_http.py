"""HTTP/1.1 requests written byte for byte, for what an HTTP client will not send.

httpx (h11) refuses or repairs a repeated ``Content-Length``, a ``+`` sign in one, a request
without ``Host``, a body longer than it says; hostile clients send them anyway. These helpers
put the exact bytes on a socket and read what comes back until the server closes.
"""

from __future__ import annotations

import re
import socket
import time

__all__ = ["exchange", "request", "statuses", "without"]


def request(
    path: str,
    body: bytes,
    headers: list[tuple[str, str]],
    method: str = "POST",
    version: str = "HTTP/1.1",
) -> bytes:
    """The request's bytes: the headers exactly as given (none added), then ``body``."""
    head = [f"{method} {path} {version}", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def exchange(port: int, data: bytes, idle: float = 1.0, timeout: float = 10.0) -> bytes:
    """Send ``data`` to 127.0.0.1:``port``; what comes back until the server closes, or
    ``idle`` seconds pass without more once something came (``timeout`` in all)."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        conn.settimeout(idle)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                if out:
                    break
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def statuses(answer: bytes) -> list[int]:
    """The status codes of the answers in ``answer``, in order."""
    return [int(s) for s in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


def without(answer: bytes, names: tuple[str, ...]) -> bytes:
    """``answer`` without the header lines ``names`` (lower case), for comparing two servers."""
    pattern = b"|".join(re.escape(n.encode()) for n in names)
    return re.sub(rb"(?im)^(?:" + pattern + rb"): [^\r\n]*\r\n", b"", answer)
