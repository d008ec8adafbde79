"""Put the security layer into the OpenAPI document: the key schemes and the refusals it makes.

Route handlers belong to their features; the security layer documents, for every route it
guards, the ``401``/``403``/``429`` it may answer and the scope the route needs, ``413`` and
``422`` for every request body, and the ``404``/``409``/``503`` the shared error handler answers
on the Redis-backed scopes. schemathesis checks every answered status is documented
(tests/security/test_fuzz_api.py). It runs once at start-up, before the document is served.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
    SecurityScheme,
)

from service.security.scopes import is_open, required_scope

__all__ = ["document_security"]

_METHODS = ("get", "put", "post", "delete", "patch")

_PROBLEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["status", "title", "detail"],
    properties={
        "status": Schema(type=OpenAPIType.INTEGER),
        "title": Schema(type=OpenAPIType.STRING),
        "detail": Schema(type=OpenAPIType.STRING),
        "field": Schema(type=OpenAPIType.STRING),
        "allowed": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING)),
    },
)
_INT_HEADER = OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER))
_STR_HEADER = OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING))


def _problem(description: str, headers: dict[str, OpenAPIHeader] | None = None) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={"application/problem+json": OpenAPIMediaType(schema=_PROBLEM)},
        headers=headers,  # type: ignore[arg-type]
    )


_REFUSALS = {
    "401": _problem(
        "No API key, or a key that is not configured.",
        {"WWW-Authenticate": _STR_HEADER},
    ),
    "403": _problem("The API key lacks the scope this endpoint needs (named in `detail`)."),
    "429": _problem(
        "The API key's rate limit is used up; retry after `Retry-After` seconds.",
        {"Retry-After": _INT_HEADER, "RateLimit-Limit": _INT_HEADER},
    ),
}
_BODY_REFUSALS = {
    "413": _problem("The request body is larger than `USM_MAX_BODY_BYTES`."),
    "422": _problem(
        "The body is well-formed but names something the active table set does not know; "
        "`field` and `allowed` say what and which values are accepted."
    ),
}


_QUEUE_REFUSALS = {
    "404": _problem("The item, team or other resource named in the request does not exist."),
    "409": _problem("The item's state does not allow this (e.g. cancelling a completed item)."),
    "503": _problem(
        "Redis is unreachable; nothing was changed. Retry after `Retry-After` seconds.",
        {"Retry-After": _INT_HEADER},
    ),
}
"""What the shared error handler answers for the Redis-backed scopes (``dispatch``, ``admin``):
``NotFound``, ``ItemConflict`` and ``QueueUnavailable``. Scoring needs no Redis."""


def _guard(op: Operation, scope: str) -> None:
    op.security = [{"bearerAuth": []}, {"apiKeyHeader": []}]
    note = f"Needs an API key with scope `{scope}`."
    op.description = f"{op.description}\n\n{note}" if op.description else note
    op.responses = op.responses or {}
    for status, response in _REFUSALS.items():
        op.responses.setdefault(status, response)
    if scope != "score":
        for status, response in _QUEUE_REFUSALS.items():
            op.responses.setdefault(status, response)


def document_security(app: Litestar) -> None:
    """Add key schemes, per-operation scopes and the 401/403/413/422/429 answers to the document."""
    doc = app.openapi_schema
    doc.components = doc.components or Components()
    doc.components.security_schemes = {
        **(doc.components.security_schemes or {}),
        "bearerAuth": SecurityScheme(
            type="http", scheme="bearer", description="`Authorization: Bearer usm_...`"
        ),
        "apiKeyHeader": SecurityScheme(
            type="apiKey", name="X-API-Key", security_scheme_in="header"
        ),
    }
    for path, item in (doc.paths or {}).items():
        for method in _METHODS:
            op: Operation | None = getattr(item, method)
            if op is None:
                continue
            if op.request_body is not None:
                op.responses = op.responses or {}
                for status, response in _BODY_REFUSALS.items():
                    op.responses.setdefault(status, response)
            if is_open(path):
                continue
            scope = required_scope(path, method.upper())
            _guard(op, scope.value if scope is not None else "admin")
