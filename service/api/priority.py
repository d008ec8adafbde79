"""``POST /v1/priority`` and ``/v1/priority/batch``: score calls, no side effects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from time import perf_counter
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, MediaType, Request, Response, post
from litestar.exceptions import ValidationException
from litestar.params import JSONBody, QueryParameter

from service.core.base import Base
from service.core.calls import Call
from service.core.decision import Decision
from service.core.scoring import Scorer
from service.core.wire import EncodedBatch
from service.files.store import TableStore
from service.governance.decision_log import DecisionLog
from service.metrics.decisions import record_decision, record_encoded
from service.security.ratelimit import charge_calls

__all__ = ["MAX_BATCH", "BatchRequest", "BatchResponse", "PriorityController", "scorer_for"]

MAX_BATCH = 10_000
PART = 1000
"""Calls scored (and decisions encoded) between two chances for other requests to run."""

VersionParam = Annotated[
    str | None,
    QueryParameter(
        name="version",
        description="Score with this table set version instead of the active one (replay, audit).",
    ),
]


def scorer_for(tables: TableStore, now: datetime, version: str | None) -> Scorer:
    """The scorer for ``?version=``, or for the set active at ``now`` when it is not given.

    Raises:
        ValidationException: The version is not loaded; answered as a 400 naming the query
            parameter and listing the loaded versions.
    """
    if version is not None and version not in tables.versions.names():
        raise ValidationException(
            extra=[
                {
                    "source": "query",
                    "key": "version",
                    "message": f"unknown table version '{version}'",
                }
            ]
        )
    return tables.scorer(now, version)


class BatchRequest(Base):
    """Up to 10,000 calls, scored in order."""

    calls: Annotated[list[Call], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class BatchResponse(Base):
    """One decision per call, in the order of the request."""

    decisions: list[Decision]


def _parts(request: Request[Any, Any, Any]) -> tuple[TableStore, DecisionLog]:
    """The table store and decision log from the app's state.

    Read from state rather than injected: litestar resolves two dependencies of one handler in
    an anyio task group, which cost about a seventh of a request's time (bench/http.py, py-spy).
    """
    state = request.app.state
    return state.tables, state.decision_log


class PriorityController(Controller):
    path = "/v1/priority"
    tags = ["priority"]

    @post("/", status_code=200, summary="Score one call")
    async def score(
        self,
        data: JSONBody[Call],
        request: Request[Any, Any, Any],
        version: VersionParam = None,
    ) -> Decision:
        """Priority, team, targets and explanation for one call or risk. Needs no Redis."""
        tables, decision_log = _parts(request)
        now = datetime.now(UTC)
        started = perf_counter()
        decision = scorer_for(tables, now, version).score(data, now)
        record_decision(decision, perf_counter() - started)
        decision_log.append(data, decision)
        return decision

    @post("/batch", status_code=200, summary="Score many calls")
    async def score_batch(
        self,
        data: JSONBody[BatchRequest],
        request: Request[Any, Any, Any],
        version: VersionParam = None,
    ) -> Response[BatchResponse]:
        """Decisions for up to 10,000 calls, in order; one bad call fails the batch, naming it.

        Each call counts against the key's rate limit like a request of its own.
        """
        await charge_calls(request, len(data.calls) - 1)
        tables, decision_log = _parts(request)
        now = datetime.now(UTC)
        started = perf_counter()
        scorer = scorer_for(tables, now, version)
        batch = await _score_in_parts(scorer, data.calls, now)
        record_encoded(batch, scorer.version, perf_counter() - started)
        decision_log.extend_batch(batch)
        # Encoded by the scorer, a decision's bytes from its memoised prototype plus its times
        # (service/core/wire.py): the annotation keeps the documented schema, the bytes pass
        # through as they are.
        return cast("Response[BatchResponse]", Response(batch.body(), media_type=MediaType.JSON))


async def _score_in_parts(scorer: Scorer, calls: list[Call], now: datetime) -> EncodedBatch:
    """``scorer.score_encoded`` a part at a time, letting other requests run in between.

    A 10,000-call batch scored in one go held the event loop for tens of milliseconds
    (``/healthz`` median 1.6 -> 56 ms under batch load, issue 12 #10; bench/batch_loop.py).
    """
    if len(calls) <= PART:
        return scorer.score_encoded(calls, now)
    batch = EncodedBatch()
    for first in range(0, len(calls), PART):
        scorer.score_encoded(calls[first : first + PART], now, first, batch)
        await asyncio.sleep(0)
    return batch
