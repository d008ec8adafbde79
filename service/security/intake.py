"""What a request must look like before any handler reads it: JSON bodies, and in keyless mode
only loopback Host and Origin.

- A body for a handler that decodes JSON must say it is JSON (``application/json`` or
  ``application/<anything>+json``, UTF-8): anything else is 415. Without this, ``text/plain`` or a
  form post is decoded as JSON anyway, and a browser may send both cross-site without asking.
- A UTF-8 byte-order mark at the start of a JSON body (some Windows tools write one) is dropped:
  it is not JSON, but it says nothing but "UTF-8".
- Without API keys every endpoint is open to whoever reaches loopback, including a web page in
  the user's browser. Two rules close that: the ``Host`` must be a loopback name (421 otherwise;
  a page on ``evil.example`` that re-resolves its name to 127.0.0.1 still sends its own name,
  "DNS rebinding"), and an ``Origin``, when sent, must be a loopback page (403 otherwise: a
  cross-site form or ``fetch`` always carries its page's origin). Tools such as curl or a
  ticketing system send no Origin. With keys configured these rules are off: keys are the guard,
  and behind a proxy or in Kubernetes the Host is whatever the deployment calls the service.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.middleware.base import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

__all__ = [
    "BOM",
    "JSON_MEDIA_TYPE",
    "IntakeMiddleware",
    "MisdirectedRequest",
    "UnsupportedMediaType",
    "is_json_media_type",
    "loopback_host",
]

BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte-order mark."""

JSON_MEDIA_TYPE = "application/json"
"""What a JSON body should be sent as; ``application/<x>+json`` is accepted too."""

_LOOPBACK_NAMES = "localhost, 127.0.0.1 and [::1] (any port)"


class UnsupportedMediaType(HTTPException):
    """A body that is not declared as UTF-8 JSON."""

    status_code = 415


class MisdirectedRequest(HTTPException):
    """A request for a host name this keyless, loopback-only service does not answer to."""

    status_code = 421


def is_json_media_type(content_type: str) -> bool:
    """True for ``application/json`` and ``application/<x>+json``, UTF-8 or without charset."""
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    kind, _, subtype = media.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``[::1]``, with or without a port."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    name = name.removesuffix(".")
    if name == "localhost":
        return True
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts):
        return True
    return name == "::1"


def _takes_json(scope: Scope) -> bool:
    """Whether the matched route decodes a JSON body (it declares a ``data`` parameter)."""
    handler = scope.get("route_handler")
    return getattr(handler, "parsed_data_field", None) is not None


def _has_body(headers: dict[str, str]) -> bool:
    length = headers.get("content-length", "")
    return (length.strip() not in ("", "0")) or "transfer-encoding" in headers


class IntakeMiddleware(ASGIMiddleware):
    """Refuses non-JSON bodies (415) and, without keys, foreign Host (421) or Origin (403)."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, keyless: bool) -> None:
        self.keyless = keyless

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.keyless:
            self._check_loopback(headers)
        if _takes_json(scope) and _has_body(headers):
            content_type = headers.get("content-type", "")
            if not is_json_media_type(content_type):
                given = f"'{content_type}'" if content_type else "none"
                raise UnsupportedMediaType(
                    detail=(
                        f"content type {given} is not JSON - send "
                        f"`Content-Type: {JSON_MEDIA_TYPE}` (UTF-8); allowed: "
                        f"{JSON_MEDIA_TYPE}, application/<type>+json"
                    )
                )
            receive = _without_bom(receive)
        await next_app(scope, receive, send)

    @staticmethod
    def _check_loopback(headers: dict[str, str]) -> None:
        host = headers.get("host")
        if host is not None and not loopback_host(host):
            raise MisdirectedRequest(
                detail=(
                    f"host '{host}' is not served: without API keys this service answers only "
                    f"to {_LOOPBACK_NAMES}"
                )
            )
        origin = headers.get("origin")
        if origin is not None and not loopback_host(urlsplit(origin).netloc or origin):
            raise PermissionDeniedException(
                detail=(
                    f"cross-origin request from '{origin}' refused: without API keys only pages "
                    f"on {_LOOPBACK_NAMES} may call this service"
                )
            )


def _without_bom(receive: Receive) -> Receive:
    """``receive`` with a UTF-8 byte-order mark dropped from the start of the body."""
    first = True

    async def wrapped() -> ReceiveMessage:
        nonlocal first
        message: Any = await receive()
        if first and message["type"] == "http.request":
            first = False
            body: bytes = message.get("body", b"")
            if body.startswith(BOM):
                message = {**message, "body": body[len(BOM) :]}
        return message  # type: ignore[no-any-return]

    return wrapped
