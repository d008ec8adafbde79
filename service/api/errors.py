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

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from service.api.priority import BatchRequest
from service.core.calls import Call
from service.errors import InvalidCall, QueueUnavailable, UsmError
from service.files.store import TableStore

__all__ = ["exception_handlers", "problem"]

log = logging.getLogger("usm.api")

_AT = re.compile(r" - at `(\$[^`]*)`")
_UNKNOWN = re.compile(r"unknown field `")
_LEVEL_FIELDS = ("impact", "urgency", "likelihood", "proximity", "type", "service")


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
    """Allowed values for a call field, from the active table set (empty if not a level)."""
    last = re.sub(r"\[\d+\]$", "", field.rsplit(".", 1)[-1])
    if last not in _LEVEL_FIELDS:
        return []
    store: TableStore | None = getattr(request.app.state, "tables", None)
    if store is None:
        return []
    scorer = store.scorer(datetime.now(UTC))
    if last == "type":
        return list(scorer.call_types)
    if last == "service":
        return list(scorer.services)
    return list(getattr(scorer, last).allowed)


def _fields_for(request: Request[Any, Any, Any], at: str) -> list[str]:
    """Known fields of the object that held an unknown one, when it is a call."""
    handler = request.scope.get("route_handler")
    body = getattr(getattr(handler, "parsed_data_field", None), "annotation", None)
    if body is BatchRequest and at.startswith("$.calls["):
        body = Call
    fields = getattr(body, "__struct_fields__", None)
    return list(fields) if fields and at.count(".") <= 1 else []


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    messages: list[str] = []
    field: str | None = None
    allowed: list[str] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not (isinstance(item, dict) and item.get("message")):
            continue
        source, key, msg = item.get("source"), item.get("key"), str(item["message"])
        if source == "body":
            at = "$" if key in (None, "data") else f"$.{key}"
            field = field or at
            msg = f"{msg} - at `{at}`"
            unknown = _UNKNOWN.search(msg)
            if unknown and not allowed:
                allowed = _fields_for(request, at)
        elif key:
            field = field or f"{source}.{key}"
            msg = f"{msg} - in {source} parameter `{key}`"
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
    if isinstance(exc, QueueUnavailable):
        return problem(
            exc.status_code,
            str(exc) or "queue unavailable",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if exc.status_code >= 500:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return problem(exc.status_code, "internal error")
    return problem(exc.status_code, str(exc))


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Details go to the log only: they may hold data the caller must not see.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "internal error")


exception_handlers: dict[type[Exception], Any] = {
    ValidationException: _validation,
    UsmError: _usm,
    HTTPException: _http,
    Exception: _unexpected,
}
