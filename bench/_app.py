"""The bench's apps: the product's ``create_app`` with ceiling endpoints, and a bare app.

The ceilings exist only here, never in the product's routes. They decode the same request type
and return a constant of the response type the product returns.

- :func:`create_bench_app`: the product's app (all its middleware, exception handlers, plugins)
  with the ceilings mounted beside its routes: product minus ceiling is what scoring costs.
- :func:`create_bare_app`: the ceilings alone on a plain ``Litestar`` (no middleware, no plugins,
  no stores): what litestar + msgspec cost on this server, the stack the product is held to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, get, post

from bench._common import default_scorer
from service.api.app import create_app
from service.api.priority import BatchRequest, BatchResponse
from service.core.calls import Call
from service.core.decision import Decision
from service.settings import Settings

__all__ = ["BARE_BATCH_PATH", "BARE_PATH", "create_bare_app", "create_bench_app"]

BARE_PATH = "/bench/bare"
BARE_BATCH_PATH = "/bench/bare/batch"

_NOW = datetime.now(UTC)
_SCORER = default_scorer()
# Same shape as the product's answer to bench/_common.call_body(): same fields, same steps.
_DECISION = _SCORER.score(
    Call(type="incident", impact="group", urgency=2, service="email", category="hardware"), _NOW
)


@post(BARE_PATH, status_code=200, include_in_schema=False)
async def bare(data: Call) -> Decision:
    """Ceiling of ``POST /v1/priority``: decode the call, answer a constant decision."""
    return _DECISION


@post(BARE_BATCH_PATH, status_code=200, include_in_schema=False)
async def bare_batch(data: BatchRequest) -> BatchResponse:
    """Ceiling of the batch endpoint: decode the batch, one constant decision per call."""
    return BatchResponse(decisions=[_DECISION] * len(data.calls))


def create_bench_app(settings: Settings) -> Any:
    """The product's app with the two ceilings mounted beside its routes."""
    return create_app(settings, extra_handlers=[bare, bare_batch])


@get("/healthz", include_in_schema=False)
async def _healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_bare_app(settings: Settings) -> Any:
    """The two ceilings on a plain litestar app: no middleware, plugins, stores or metrics."""
    return Litestar(route_handlers=[bare, bare_batch, _healthz], openapi_config=None)
