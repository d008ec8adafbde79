"""``/v1/teams``: what waits for each team, the order it will be handed out, pull-mode claims."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Response

from service.api.queues import active_tables, item_store, problems
from service.core.base import Base, ShortText
from service.core.tables import TableSet, Team
from service.dispatch import keys
from service.dispatch.items import Item, ItemState, now_ms
from service.dispatch.leases import ClaimRecord, KeyReused, Leased, pop
from service.dispatch.stats import WorkerStat, read_queue_stats, read_worker_stats
from service.dispatch.store import ItemStore, hand_out_order, redis_errors
from service.errors import InvalidHeader, ItemConflict, NotFound
from service.metrics.instruments import ITEM_WAIT, ItemEvent, record

__all__ = [
    "IDEMPOTENCY_KEY",
    "ClaimRequest",
    "QueueView",
    "TeamQueue",
    "TeamView",
    "TeamsController",
    "known_team",
    "team_queue_names",
]


class QueueView(Base):
    priority: str
    queue: str
    """RQ queue name (`rq info` shows it)."""
    depth: int
    oldest_age_seconds: float
    overdue: int
    """Waiting items past their response target."""


class TeamView(Base):
    name: str
    mode: str
    """``push``: workers handle items; ``pull``: people claim them."""
    handler: str
    queues: list[QueueView]
    workers: WorkerStat


class Teams(Base):
    teams: list[TeamView]
    table_version: str


class TeamQueue(Base):
    team: str
    items: list[Item]
    """Waiting items in the order they will be handed out (history left out)."""


class ClaimRequest(Base):
    holder: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=64,
            description="Who claims. The lease's holder is this name plus a random tag "
            "(`lease.holder` in the answer): send that to complete or release the item.",
            examples=["ann"],
        ),
    ] = "anonymous"
    note: ShortText = ""


IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_ALLOWED = "1 to 255 visible ASCII characters, e.g. a UUID"

ClaimKey = Annotated[
    str | None,
    HeaderParameter(
        name=IDEMPOTENCY_KEY,
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        required=False,
        description="A token the caller makes up per claim (a UUID): a re-send of the claim "
        "with it (after a timeout or a 503) answers with the lease the first copy took, while "
        "its holder still has it, instead of leasing another item. Without it, every claim "
        f"leases another item. {_KEY_ALLOWED}.",
    ),
]


def known_team(tables: TableSet, name: str) -> Team:
    """The team called ``name``; 404 naming it and the known teams otherwise."""
    for team in tables.teams.team:
        if team.name == name:
            return team
    known = ", ".join(t.name for t in tables.teams.team)
    raise NotFound(f"unknown team '{name}'; known: {known}")


def team_queue_names(tables: TableSet, teams: list[str]) -> list[str]:
    return hand_out_order(tables, teams)


def _parts(state: State) -> tuple[TableSet, ItemStore]:
    return active_tables(state), item_store(state)


class TeamsController(Controller):
    path = "/v1/teams"
    tags = ["teams"]

    @get(
        "/",
        sync_to_thread=True,
        summary="Teams with queue depth per priority",
        responses=problems(503),
    )
    def list_teams(self, state: State) -> Teams:
        """Each team: depth, oldest age and overdue count per priority; workers up and busy."""
        tables, store = _parts(state)
        return Teams(table_version=tables.version, teams=_views(tables, store, tables.teams.team))

    @get(
        "/{team:str}",
        sync_to_thread=True,
        summary="One team with queue depth per priority",
        responses=problems(404, 503),
    )
    def one_team(self, team: FromPath[str], state: State) -> TeamView:
        """Depth, oldest age and overdue count per priority; workers up and busy."""
        tables, store = _parts(state)
        return _views(tables, store, [known_team(tables, team)])[0]

    @get(
        "/{team:str}/queue",
        sync_to_thread=True,
        summary="A team's items in hand-out order",
        responses=problems(400, 404, 503),
    )
    def queue(
        self,
        team: FromPath[str],
        state: State,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
    ) -> TeamQueue:
        """Waiting items, highest priority first, FIFO within a priority."""
        tables, store = _parts(state)
        known_team(tables, team)
        ids = store.waiting_ids(team_queue_names(tables, [team]), limit)
        items = [
            msgspec.structs.replace(i, history=[])
            for i in store.get_many(ids)
            if i.state is ItemState.QUEUED
        ]
        return TeamQueue(team=team, items=items)

    @post(
        "/{team:str}/claim",
        status_code=200,
        sync_to_thread=True,
        summary="Claim the next item (pull mode)",
        responses={
            204: ResponseSpec(data_container=None, description="Nothing waits (or `rq suspend`)."),
            **problems(400, 404, 409, 422, 503),
        },
        response_headers=[
            ResponseHeader(
                name=REPLAYED_HEADER,
                documentation_only=True,
                description=f"`true` when the answer is the lease an earlier claim with the same "
                f"`{IDEMPOTENCY_KEY}` took.",
            ),
        ],
    )
    def claim(
        self,
        team: FromPath[str],
        state: State,
        request: Request[Any, Any, Any],
        idempotency_key: ClaimKey = None,
        data: JSONBody[ClaimRequest | None] = None,
    ) -> Response[Item | None]:
        """The highest-priority waiting item, leased to the caller; 204 when none waits.

        Finish it with ``POST /v1/items/{id}/complete`` or give it back with ``/release``,
        sending ``{"holder": <lease.holder of this answer>}``; if the lease
        (USM_CLAIM_LEASE_SECONDS) runs out first, it returns to the front of its queue.
        Send an ``Idempotency-Key`` to retry safely: a claim that timed out may still have
        leased an item, and its re-send answers with that lease (``Idempotent-Replayed: true``).
        """
        tables, store = _parts(state)
        spec = known_team(tables, team)
        if spec.mode != "pull":
            raise ItemConflict(f"team '{team}' is in push mode: its workers handle its items")
        name = data.holder if data else "anonymous"
        # The tag tells two claims by one name apart: a lease that lapsed and was claimed
        # again (even by the same person) cannot be ended with the old holder.
        holder = f"{name}#{os.urandom(4).hex()}"
        lease_ms = int(store.config.claim_lease_seconds * 1000)
        claim_record = None
        if idempotency_key is not None:
            # Per API key: two callers that pick the same token never share a lease.
            caller = str(getattr(request.scope.get("user"), "name", ""))
            claim_record = ClaimRecord(keys.claim_key(caller, team, idempotency_key), name)
        try:
            with redis_errors():
                got = pop(
                    store.conn,
                    team_queue_names(tables, [team]),
                    [keys.wake_key(team)],
                    holder,
                    now_ms(),
                    lease_ms,
                    ItemState.CLAIMED,
                    honour_suspension=True,
                    record=claim_record,
                )
        except KeyReused:
            raise InvalidHeader(
                IDEMPOTENCY_KEY,
                f"this key was sent with a claim by another holder than '{name}'",
                _KEY_ALLOWED + ", new for every claim",
            ) from None
        if not isinstance(got, Leased):
            return Response(None, status_code=204)
        item: Item = store.get(got.id)
        if got.replayed:
            return Response(item, status_code=200, headers={REPLAYED_HEADER: "true"})
        record(ItemEvent.STARTED, got.team, got.priority)
        ITEM_WAIT.labels(got.team, got.priority).observe(
            max(0.0, (now_ms() - got.queued_ms) / 1000)
        )
        return Response(item, status_code=200)


def _views(tables: TableSet, store: ItemStore, teams: list[Team]) -> list[TeamView]:
    """Queue and worker state of ``teams``, two pipelined reads whatever the queue lengths."""
    now = datetime.now(UTC)
    names = [t.name for t in teams]
    priorities = [p.name for p in sorted(tables.levels.priority, key=lambda p: p.level)]
    with redis_errors():
        queues = read_queue_stats(store.conn, names, priorities, now)
        workers = {w.team: w for w in read_worker_stats(store.conn, names, now)}
    return [
        TeamView(
            name=t.name,
            mode=t.mode,
            handler=type(t.handler).__struct_config__.tag or "log",  # type: ignore[arg-type]
            queues=[
                QueueView(
                    priority=q.priority,
                    queue=keys.queue_name(q.team, q.priority),
                    depth=q.depth,
                    oldest_age_seconds=round(q.oldest_age_seconds, 3),
                    overdue=q.overdue,
                )
                for q in queues
                if q.team == t.name
            ],
            workers=workers[t.name],
        )
        for t in teams
    ]
