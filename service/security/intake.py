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

from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.types import Receive, ReceiveMessage, Scope

__all__ = [
    "BOM",
    "JSON_MEDIA_TYPE",
    "Intake",
    "MisdirectedRequest",
    "UnsupportedMediaType",
    "is_json_media_type",
    "loopback_host",
    "without_bom",
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


_judged: dict[str, bool] = {}
"""Content types seen -> whether they are JSON: clients send the same one or two every time."""


def is_json_media_type(content_type: str) -> bool:
    """True for ``application/json`` and ``application/<x>+json``, UTF-8 or without charset."""
    known = _judged.get(content_type)
    if known is None:
        known = _is_json_media_type(content_type)
        if len(_judged) < 256:  # bounded: any client may send any string
            _judged[content_type] = known
    return known


def _is_json_media_type(content_type: str) -> bool:
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


class Intake:
    """Refuses non-JSON bodies (415) and, without keys, foreign Host (421) or Origin (403).

    Called by the API's one request layer (``service.api.guard``) for every HTTP request, after
    routing. It decodes only the few headers it reads.
    """

    def __init__(self, keyless: bool) -> None:
        self.keyless = keyless

    def check(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """Refuse a request that breaks a rule; True when its body is JSON to read without a BOM.

        Args:
            scope: The routed request.
            headers: ``dict(scope["headers"])`` (the last of repeated headers counts, but for
                the keyless Host and Origin rules every one of them does).

        Raises:
            UnsupportedMediaType: a body for a JSON route, not declared as UTF-8 JSON (415).
            MisdirectedRequest: keyless mode, a Host that is not loopback (421).
            PermissionDeniedException: keyless mode, an Origin that is not loopback (403).
        """
        if self.keyless:
            host, origin = headers.get(b"host"), headers.get(b"origin")
            self._check_loopback(
                None if host is None else host.decode("latin-1"),
                None if origin is None else origin.decode("latin-1"),
            )
            raw: list[tuple[bytes, bytes]] = scope["headers"]  # type: ignore[assignment]
            if len(raw) != len(headers):
                # A repeated name: the dict kept only the last Host or Origin, so
                # ``Host: evil.example`` followed by ``Host: localhost`` passed. Every one counts.
                for name, value in raw:
                    if name == b"host":
                        self._check_loopback(value.decode("latin-1"), None)
                    elif name == b"origin":
                        self._check_loopback(None, value.decode("latin-1"))
        if not _takes_json(scope):
            return False
        length = headers.get(b"content-length")
        has_body = (length is not None and length.strip() not in (b"", b"0")) or (
            b"transfer-encoding" in headers
        )
        if not has_body:
            return False
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not is_json_media_type(content_type):
            given = f"'{content_type}'" if content_type else "none"
            raise UnsupportedMediaType(
                detail=(
                    f"content type {given} is not JSON - send "
                    f"`Content-Type: {JSON_MEDIA_TYPE}` (UTF-8); allowed: "
                    f"{JSON_MEDIA_TYPE}, application/<type>+json"
                )
            )
        return True

    @staticmethod
    def _check_loopback(host: str | None, origin: str | None) -> None:
        if host is not None and not loopback_host(host):
            raise MisdirectedRequest(
                detail=(
                    f"host '{host}' is not served: without API keys this service answers only "
                    f"to {_LOOPBACK_NAMES}"
                )
            )
        if origin is not None and not loopback_host(urlsplit(origin).netloc or origin):
            raise PermissionDeniedException(
                detail=(
                    f"cross-origin request from '{origin}' refused: without API keys only pages "
                    f"on {_LOOPBACK_NAMES} may call this service"
                )
            )


def without_bom(receive: Receive) -> Receive:
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
