"""Refusals for hostile bodies that slip past the typed decoders.

msgspec raises ``RecursionError`` ("maximum recursion depth exceeded while deserializing an
object") for JSON nested deeper than the interpreter's stack allows, e.g. an item ``payload`` of
50,000 nested arrays that still fits the body limit. Without a handler that is a 500; it is the
caller's fault, so it gets a 400 naming the problem.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response

__all__ = ["HOSTILE_HANDLERS", "too_deep"]

log = logging.getLogger("usm.security")


def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """400 for a body nested too deeply to decode; any other ``RecursionError`` stays a 500."""
    if "deserializing" not in str(exc):
        log.error("recursion error on %s %s", request.method, request.url.path, exc_info=exc)
        return Response(
            {"status": 500, "title": "Internal Server Error", "detail": "internal error"},
            status_code=500,
            media_type="application/problem+json",
        )
    return Response(
        {
            "status": 400,
            "title": "Bad Request",
            "detail": "request body is nested too deeply to decode - at `$`",
            "field": "$",
        },
        status_code=400,
        media_type="application/problem+json",
    )


HOSTILE_HANDLERS: dict[type[Exception], Any] = {RecursionError: too_deep}
"""Exception handlers ``create_app`` adds beside the service's own."""
