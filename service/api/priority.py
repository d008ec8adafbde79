"""``POST /v1/priority`` and ``/v1/priority/batch``: score calls, no side effects."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from time import perf_counter
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, MediaType, Request, Response, post
from litestar.exceptions import ValidationException
from litestar.params import JSONBody, QueryParameter

from service.core.base import Base
from service.core.calls import Call, UncheckedCall
from service.core.decision import Decision
from service.core.encoded import EncodedBatch
from service.core.scoring import Scorer
from service.files.store import TableStore
from service.governance.decision_log import DecisionLog
from service.metrics.decisions import record_decision, record_encoded
from service.security.ratelimit import ALLOWANCE, charge_calls

__all__ = [
    "MAX_BATCH",
    "BatchRequest",
    "BatchResponse",
    "PriorityController",
    "ScoreBatch",
    "ScoreOne",
    "UncheckedBatch",
    "decide",
    "keep",
    "scorer_for",
]

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


class UncheckedBatch(Base, gc=False):
    """:class:`BatchRequest` as the fast path decodes it: calls unchecked
    (:class:`UncheckedCall`), each distinct set of values checked once when it is scored."""

    calls: Annotated[list[UncheckedCall], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


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


def decide(tables: TableStore, call: Call, version: str | None) -> tuple[Decision, float]:
    """The decision for one call and the seconds scoring took; no side effects.

    ``POST /v1/priority`` on either path: the handler below, or :class:`ScoreOne` in front of
    litestar. Both then :func:`keep` it.
    """
    now = datetime.now(UTC)
    started = perf_counter()
    decision = scorer_for(tables, now, version).score(call, now)
    return decision, perf_counter() - started


def keep(decision_log: DecisionLog, call: Call, decision: Decision, seconds: float) -> None:
    """Count one decision (decision metrics) and append it to the decision log."""
    record_decision(decision, seconds)
    decision_log.append(call, decision)


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
        decision, seconds = decide(tables, data, version)
        keep(decision_log, data, decision, seconds)
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
        # (service/core/encoded.py): the annotation keeps the documented schema, the bytes pass
        # through as they are.
        return cast("Response[BatchResponse]", Response(batch.body(), media_type=MediaType.JSON))


async def _score_in_parts(
    scorer: Scorer, calls: list[Call] | list[UncheckedCall], now: datetime
) -> EncodedBatch:
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


_decode_unchecked = msgspec.json.Decoder(UncheckedCall).decode
_VERSION = re.compile(rb"version=([A-Za-z0-9._-]{1,64})")
"""The one query string the fast path reads; any other goes to litestar's parsing."""


class ScoreOne:
    """``POST /v1/priority`` for :mod:`service.api.fast`: the well-formed calls, same answer.

    It answers only what it is sure of: a body that msgspec's strict decoder takes as a
    :class:`Call` (litestar's lax conversion accepts all of those, with the same result), and
    no query string or a loaded ``?version=``. Everything else, litestar answers. The call is
    decoded unchecked and checked when the scorer's memo first meets its values, as a batch's.
    """

    method = "POST"
    paths: tuple[str, ...] = ("/v1/priority",)
    template = "/v1/priority"

    def __init__(self, state: Any) -> None:
        self.tables: TableStore = state.tables
        self.decision_log: DecisionLog = state.decision_log

    def parse(
        self, body: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[UncheckedCall, str | None] | None:
        return _decode_unchecked(body), _version(self.tables, query)

    def answer(self, parsed: tuple[UncheckedCall, str | None], scope: Any) -> tuple[bytes, bytes]:
        # Scored as a batch of one (service/core/encoded.py): the decision's bytes and its log
        # row are joined from the memoised prototype; no Decision is built or encoded.
        call, version = parsed
        now = datetime.now(UTC)
        started = perf_counter()
        scorer = scorer_for(self.tables, now, version)
        batch = scorer.score_encoded((call,), now)  # raises before any side effect
        seconds = perf_counter() - started
        record_encoded(batch, scorer.version, seconds)
        self.decision_log.append_encoded(batch.calls[0], batch.rows[0])
        return b"application/json", batch.decision(0)


def _version(tables: TableStore, query: bytes) -> str | None:
    """``?version=`` when it is the whole query string and names a loaded set, None without a
    query string.

    Raises:
        ValueError: Any other query string: the fast path passes the request to litestar,
            which parses it and answers.
    """
    if not query:
        return None
    match = _VERSION.fullmatch(query)
    version = None if match is None else match.group(1).decode()
    if version is None or version not in tables.versions.names():
        raise ValueError("not a loaded ?version=")
    return version


_decode_batch = msgspec.json.Decoder(UncheckedBatch).decode


class ScoreBatch:
    """``POST /v1/priority/batch`` for :mod:`service.api.fast`, as :class:`ScoreOne` does.

    The batch's other calls are charged to the rate limit after scoring (litestar's handler
    charges first): a batch that fails to score goes to litestar uncharged, which then charges
    and refuses it, so both paths count the same. The calls are decoded unchecked
    (:class:`UncheckedBatch`) and checked as scoring meets their values: one a :class:`Call`
    refuses fails scoring the same way, and litestar's full decode answers its 400.
    """

    method = "POST"
    paths: tuple[str, ...] = ("/v1/priority/batch",)
    template = "/v1/priority/batch"

    def __init__(self, state: Any) -> None:
        self.tables: TableStore = state.tables
        self.decision_log: DecisionLog = state.decision_log

    def parse(
        self, body: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[list[UncheckedCall], str | None] | None:
        return _decode_batch(body).calls, _version(self.tables, query)

    async def answer(
        self, parsed: tuple[list[UncheckedCall], str | None], scope: Any
    ) -> tuple[bytes, bytes]:
        calls, version = parsed
        now = datetime.now(UTC)
        started = perf_counter()
        scorer = scorer_for(self.tables, now, version)
        batch = await _score_in_parts(scorer, calls, now)
        seconds = perf_counter() - started
        allowance = scope.get("state", {}).get(ALLOWANCE)
        if allowance is not None and len(calls) > 1:
            await allowance.charge(len(calls) - 1)
        record_encoded(batch, scorer.version, seconds)
        self.decision_log.extend_batch(batch)
        return b"application/json", batch.body()
