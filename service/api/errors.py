"""Exception handlers: every refusal is a problem document naming the field and allowed values.

Shape (``application/problem+json``)::

    {"status": 422, "title": "Unprocessable Entity",
     "detail": "unknown urgency 'hgih' - at `$.urgency`; allowed: immediate, ...",
     "field": "$.urgency", "allowed": ["immediate", ...]}
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import redis
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    InternalServerException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.utils.scope.state import ScopeState

from service.api.priority import MAX_BATCH, BatchRequest
from service.connection import unavailable
from service.core.calls import Call
from service.errors import (
    InvalidCall,
    InvalidEvent,
    InvalidHeader,
    ItemConflict,
    QueueUnavailable,
    UsmError,
)
from service.files.store import TableStore

__all__ = ["exception_handlers", "problem"]

log = logging.getLogger("usm.api")

_AT = re.compile(r" - at `(\$[^`]*)`")
_UNKNOWN = re.compile(r"unknown field `")
_MISSING = re.compile(r"missing required field `")
_LEVEL_FIELDS = ("impact", "urgency", "likelihood", "proximity", "type", "service")
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
"""A ``\\uD800``-``\\uDFFF`` escape that is not half of a pair: no character at all."""


def problem(
    status: int,
    detail: str,
    field: str | None = None,
    allowed: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "status": status,
        "title": HTTPStatus(status).phrase,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if allowed:
        body["allowed"] = allowed
    return Response(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _allowed_for(request: Request[Any, Any, Any], field: str) -> list[str]:
    """Allowed values for a call field or ``?version=``, from the loaded table sets."""
    store: TableStore | None = getattr(request.app.state, "tables", None)
    if store is None:
        return []
    if field == "query.version":
        return store.versions.names()
    last = re.sub(r"\[\d+\]$", "", field.rsplit(".", 1)[-1])
    if last not in _LEVEL_FIELDS:
        return []
    scorer = store.scorer(datetime.now(UTC))
    if last == "type":
        return list(scorer.call_types)
    if last == "service":
        return list(scorer.services)
    accepted: list[str] = getattr(scorer, last).accepted
    return list(accepted)


def _fields_for(request: Request[Any, Any, Any], at: str) -> list[str]:
    """Known fields of the object that held an unknown one, when it is a call."""
    handler = request.scope.get("route_handler")
    body = getattr(getattr(handler, "parsed_data_field", None), "annotation", None)
    if body is BatchRequest and at.startswith("$.calls["):
        body = Call
    fields = getattr(body, "__struct_fields__", None)
    return list(fields) if fields and at.count(".") <= 1 else []


def _body_allowed(request: Request[Any, Any, Any], at: str, msg: str) -> list[str]:
    """What the body may hold at ``at``, judged from what msgspec refused there."""
    if at == "$" or _UNKNOWN.search(msg) or _MISSING.search(msg):
        return _fields_for(request, at)
    if at == "$.calls" and "length" in msg:
        return [f"1 to {MAX_BATCH} calls"]
    return []


def _parameter(request: Request[Any, Any, Any], key: str) -> tuple[str, str]:
    """A handler parameter's name on the wire (a header's ``Idempotency-Key``, where litestar
    reports the Python name) and the bounds its declaration sets, in words ('' when none)."""
    handler = request.scope.get("route_handler")
    params = getattr(getattr(handler, "parsed_fn_signature", None), "parameters", {})
    kwarg = getattr(params.get(key), "kwarg_definition", None)
    name = getattr(kwarg, "name", None) or key
    low, high = getattr(kwarg, "min_length", None), getattr(kwarg, "max_length", None)
    pattern = getattr(kwarg, "pattern", None)
    if low is None and high is None:
        return name, ""
    bounds = f"{low or 0} to {high} characters" if high is not None else f"{low}+ characters"
    return name, f"{bounds} matching `{pattern}`" if pattern else bounds


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    messages: list[str] = []
    field: str | None = None
    allowed: list[str] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not (isinstance(item, dict) and item.get("message")):
            continue
        source, key, msg = item.get("source"), item.get("key"), str(item["message"])
        # litestar's own parameter checks give a ParamType (whose str() is "ParamType.HEADER").
        source = getattr(source, "value", source)
        if source == "body":
            at = "$" if key in (None, "data") else f"$.{key}"
            field = field or at
            if msg == "'data'":
                # litestar reports a missing body as the KeyError of its parameter name.
                msg = "a JSON request body is required"
            if not allowed:
                allowed = _body_allowed(request, at, msg)
            msg = f"{msg} - at `{at}`"
        elif key:
            name, bounds = _parameter(request, str(key))
            field = field or (
                f"{source}.{name.lower()}" if source == "header" else f"{source}.{key}"
            )
            msg = f"{msg} - in {source} parameter `{name if source == 'header' else key}`"
            if bounds and not allowed:
                allowed = [bounds]
        messages.append(msg)
    detail = "; ".join(messages) or str(exc.detail)
    if field and not allowed:
        allowed = _allowed_for(request, field)
    if allowed:
        detail = f"{detail}; allowed: {', '.join(allowed)}"
    return problem(400, detail, field, allowed)


def _usm(request: Request[Any, Any, Any], exc: UsmError) -> Response[Any]:
    if isinstance(exc, InvalidCall):
        return problem(exc.status_code, str(exc), f"$.{exc.field}", exc.allowed)
    if isinstance(exc, ItemConflict) and exc.field:
        return problem(exc.status_code, str(exc), f"$.{exc.field}")
    if isinstance(exc, InvalidHeader):
        return problem(exc.status_code, str(exc), f"header.{exc.header.lower()}", [exc.allowed])
    if isinstance(exc, InvalidEvent):
        # The field is the tool's own path: the person fixing it works in the tool.
        return problem(exc.status_code, str(exc), exc.path, exc.mapped)
    if isinstance(exc, QueueUnavailable):
        return problem(
            exc.status_code,
            str(exc) or "queue unavailable",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if exc.status_code >= 500:
        log.exception("internal error on %s %s", request.method, _path(request))
        return problem(exc.status_code, "internal error")
    return problem(exc.status_code, str(exc))


_BODY_CUT_SHORT = "client disconnected prematurely"
"""litestar's detail when the server ends the request body with a disconnect."""


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Refusals raised by litestar itself, reworded to name what was wrong and what is allowed."""
    status, detail, headers = exc.status_code, str(exc.detail), exc.headers
    method, path = request.method, _path(request)
    if isinstance(exc, MethodNotAllowedException):
        # litestar builds the Allow header from a set: sort for a stable message.
        allowed = sorted(
            m.strip() for m in (headers or {}).get("allow", "").split(",") if m.strip()
        )
        text = f"method {method} is not allowed on {path}"
        return problem(status, f"{text}; allowed: {', '.join(allowed)}", None, allowed, headers)
    if isinstance(exc, NotFoundException):
        return problem(status, f"no route {method} {path}; the API is described at /schema")
    if isinstance(exc, InternalServerException) and detail == _BODY_CUT_SHORT:
        # The server saw the body end before it was whole: granian says so for a malformed
        # chunked body (uvicorn answers 400 itself). The client's fault, not ours.
        text = (
            "request body is incomplete or its chunked encoding is malformed - at `$`; "
            "allowed: a body as long as Content-Length, or well-formed chunks"
        )
        return problem(400, text, "$", None, headers)
    if isinstance(exc, RequestEntityTooLarge):
        settings = getattr(request.app.state, "settings", None)
        limit = getattr(settings, "max_body_bytes", None)
        bound = f"at most {limit} bytes" if limit else "a smaller body"
        text = f"request body is too large - at `$`; allowed: {bound}"
        return problem(status, text, "$", [bound], headers)
    if isinstance(exc, ClientException) and isinstance(exc.__cause__, SerializationException):
        # litestar wraps msgspec's decode error: the body is not JSON at all.
        if not detail.startswith("JSON is malformed"):
            detail = f"JSON is malformed: {detail[:1].lower()}{detail[1:]}"
        detail = _lone_surrogate(request, detail)
        text = f"{detail} - at `$`; allowed: a JSON object"
        return problem(status, text, "$", ["a JSON object"], headers)
    return problem(status, detail, headers=headers)


def _path(request: Request[Any, Any, Any]) -> str:
    """The request's path, from the scope: ``request.url`` parses the client's ``Host`` header,
    and one such as ``127.0.0.1:80:80`` or ``h:99999`` raised there, turning every refusal
    into a 500."""
    scope = request.scope
    return scope.get("root_path", "") + scope["path"]


def _lone_surrogate(request: Request[Any, Any, Any], detail: str) -> str:
    """Name a lone UTF-16 surrogate escape, which msgspec reports as "truncated" input."""
    if "truncated" not in detail and "surrogate" not in detail:
        return detail
    body = ScopeState.from_scope(request.scope).body
    found = _LONE_SURROGATE.search(body) if isinstance(body, bytes) else None
    if found is None:
        return detail
    escape = found.group().decode()
    return (
        f"JSON is malformed: lone UTF-16 surrogate `{escape}` (byte {found.start()}) is not a "
        "character; a \\ud800-\\udbff escape must be followed by a \\udc00-\\udfff one"
    )


def _redis(request: Request[Any, Any, Any], exc: redis.RedisError) -> Response[Any]:
    """A Redis error no route turned into a service error: 503 when Redis is away or refuses."""
    err = unavailable(exc)
    if err is None:
        return _unexpected(request, exc)
    return _usm(request, err)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Details go to the log only: they may hold data the caller must not see.
    log.exception("unexpected error on %s %s", request.method, _path(request))
    return problem(500, "internal error")


exception_handlers: dict[type[Exception], Any] = {
    ValidationException: _validation,
    UsmError: _usm,
    HTTPException: _http,
    redis.RedisError: _redis,
    Exception: _unexpected,
}
