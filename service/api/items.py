"""``/v1/items``: queue a scored call for its team, read it, re-score it, cancel it, finish it.

Writes are idempotent where callers retry: ``POST /v1/items`` on (source, external_id).
Redis down: these routes answer 503 with Retry-After while scoring keeps working.
"""

from __future__ import annotations

from datetime import UTC, datetime
from time import perf_counter
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.datastructures import ResponseHeader, State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Response
from msgspec import UNSET, UnsetType

from service.api.queues import active_tables, item_store, problems, table_store
from service.api.teams import known_team, team_queue_names
from service.core.base import Base, Name, ShortText
from service.core.calls import Call, LevelInput
from service.core.decision import Decision
from service.dispatch.items import Item, now_ms
from service.dispatch.leases import Outcome, finish
from service.dispatch.rescore import rescore_call
from service.dispatch.store import redis_errors
from service.errors import ItemConflict
from service.metrics.decisions import record_decision
from service.metrics.instruments import ITEM_HANDLING, ItemEvent, record
from service.sources.outbox import Revision
from service.sources.triggers import write_back

__all__ = [
    "DeadLetters",
    "DeadLettersController",
    "ItemPatch",
    "ItemRequest",
    "ItemsController",
    "LeaseAction",
]

Source = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="The calling system, e.g. `servicenow`.",
        examples=["servicenow"],
    ),
]
ExternalId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        description="The caller's reference (ticket number); retries with it return one item.",
        examples=["INC0012345"],
    ),
]
Limit = Annotated[
    int, QueryParameter(name="limit", ge=1, le=1000, description="At most this many.")
]


class ItemRequest(Call, kw_only=True):
    """A call to score and queue, with the caller's reference and an optional payload."""

    source: Source
    external_id: ExternalId
    payload: dict[str, Any] | None = None
    """Free JSON object handed to the team's handler (bounded, USM_MAX_PAYLOAD_BYTES)."""

    def call(self) -> Call:
        return Call(**{f: getattr(self, f) for f in Call.__struct_fields__})


class ItemPatch(Base, kw_only=True):
    """Changed call fields; the item is re-scored and moves queue if priority or team changed.

    A field left out keeps its value; ``null`` clears it.
    """

    type: Name | UnsetType = UNSET
    impact: LevelInput | UnsetType | None = UNSET
    urgency: LevelInput | UnsetType | None = UNSET
    likelihood: LevelInput | UnsetType | None = UNSET
    proximity: LevelInput | UnsetType | None = UNSET
    service: Name | UnsetType | None = UNSET
    category: ShortText | UnsetType | None = UNSET
    reason: ShortText = ""
    """Why it changed; kept in the item's history."""


class LeaseAction(Base):
    """Body of complete/release: who holds the lease, and a note for the history."""

    holder: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=200,
            description="The lease holder: `lease.holder` of the item the claim returned "
            "(a worker's name for an item a worker holds). Anyone else is refused with 409.",
            examples=["ann#5f0c2a9e"],
        ),
    ]
    note: ShortText = ""


class DeadLetters(Base):
    items: list[Item]


REPLAYED_HEADER = "Idempotent-Replayed"
"""Set to ``true`` on a 200 that answers with an item created by an earlier request."""
DIFFERS_HEADER = "USM-Ignored-Fields"
"""On such a 200: the fields whose sent value differs from the stored item's, comma-separated.
They were not applied; ``PATCH /v1/items/{id}`` changes an item."""


def _differing(item: Item, call: Call, payload: dict[str, Any] | None) -> list[str]:
    """Fields of a repeated create whose value differs from the item it names (as sent)."""
    fields = [f for f in Call.__struct_fields__ if getattr(item.call, f) != getattr(call, f)]
    return [*fields, "payload"] if item.payload != payload else fields


class ItemsController(Controller):
    path = "/v1/items"
    tags = ["items"]

    @post(
        "/",
        sync_to_thread=True,
        summary="Score a call and queue it for its team",
        responses={
            200: ResponseSpec(
                data_container=Item,
                description="A repeat: the item (source, external_id) already names, unchanged. "
                f"`{REPLAYED_HEADER}: true`; `{DIFFERS_HEADER}` lists the fields sent with "
                "another value than the item holds (not applied: PATCH changes an item).",
            ),
            **problems(400, 422, 503),
        },
        response_headers=[
            ResponseHeader(
                name=REPLAYED_HEADER,
                documentation_only=True,
                description="`true` when the answer is an item an earlier request created (200).",
            ),
            ResponseHeader(
                name=DIFFERS_HEADER,
                documentation_only=True,
                description="On a repeat (200) whose body differs from the stored item: the "
                "differing fields, e.g. `impact, payload`; they were not applied.",
            ),
        ],
    )
    def create(self, data: JSONBody[ItemRequest], state: State) -> Response[Item]:
        """201 with the new item; 200 with the existing one when (source, external_id) is known.

        A repeat never changes the item, whatever its body says: the answer says it is one
        (``Idempotent-Replayed``) and which sent fields were not applied (``USM-Ignored-Fields``),
        so a caller that meant an update can tell and send a PATCH.
        """
        now = datetime.now(UTC)
        call = data.call()
        started = perf_counter()
        decision = table_store(state).scorer(now).score(call, now)
        record_decision(decision, perf_counter() - started)
        item, created = item_store(state).enqueue(
            call, decision, data.source, data.external_id, data.payload, now
        )
        log = state.get("decision_log")
        if created and log is not None:
            log.append(call, decision)
        headers = {"Location": f"{self.path}/{item.id}"}
        if not created:
            headers[REPLAYED_HEADER] = "true"
            differing = _differing(item, call, data.payload)
            if differing:
                headers[DIFFERS_HEADER] = ", ".join(differing)
        return Response(item, status_code=201 if created else 200, headers=headers)

    @get(
        "/{item_id:str}",
        sync_to_thread=True,
        summary="An item with its decision and history",
        responses=problems(404, 503),
    )
    def read(self, item_id: FromPath[str], state: State) -> Item:
        """State, decision, payload and the history of decisions and state changes."""
        return item_store(state).get(item_id)

    @patch(
        "/{item_id:str}",
        sync_to_thread=True,
        summary="Change call fields and re-score",
        responses=problems(400, 404, 409, 422, 503),
    )
    def change(self, item_id: FromPath[str], data: JSONBody[ItemPatch], state: State) -> Item:
        """Re-score with the changed fields; a waiting item moves if priority or team changed."""
        now = datetime.now(UTC)
        scorer = table_store(state).scorer(now)
        changes = {
            f: getattr(data, f)
            for f in Call.__struct_fields__
            if f in ItemPatch.__struct_fields__ and getattr(data, f) is not UNSET
        }
        what = ", ".join(f"{k}={v!r}" for k, v in changes.items()) or "no field"
        reason = f"changed {what}" + (f": {data.reason}" if data.reason else "")

        def decide(item: Item) -> tuple[Decision, Call, str]:
            # Applied to the call as stored at this moment: a concurrent PATCH of another
            # field is kept, not overwritten with what this request read earlier.
            call = msgspec.structs.replace(item.call, **changes)
            return rescore_call(scorer, call, item.decision, now), call, reason

        updated, _, revision = item_store(state).change_revised(item_id, now, decide)
        outbox = state.get("outbox")
        if outbox is not None:
            # usm changed the decision without the tool asking: the ticket must show it too.
            write_back(
                outbox,
                scorer.tables,
                updated.source,
                updated.external_id,
                updated.decision,
                Revision(updated.id, revision),
            )
        return updated

    @delete(
        "/{item_id:str}",
        status_code=200,
        sync_to_thread=True,
        summary="Cancel an item",
        responses=problems(404, 409, 503),
    )
    def cancel(self, item_id: FromPath[str], state: State) -> Item:
        """Removes it from its queue (or lease, or the dead letters); 409 when already done."""
        return item_store(state).cancel(item_id, datetime.now(UTC), reason="cancelled via API")

    @post(
        "/{item_id:str}/complete",
        status_code=200,
        sync_to_thread=True,
        summary="Complete a claimed item",
        responses=problems(400, 404, 409, 503),
    )
    def complete(self, item_id: FromPath[str], state: State, data: JSONBody[LeaseAction]) -> Item:
        """Finish a claimed (or started) item; only its lease holder may (409 otherwise)."""
        return _end(state, item_id, Outcome.COMPLETED, data)

    @post(
        "/{item_id:str}/release",
        status_code=200,
        sync_to_thread=True,
        summary="Give a claimed item back",
        responses=problems(400, 404, 409, 503),
    )
    def release(self, item_id: FromPath[str], state: State, data: JSONBody[LeaseAction]) -> Item:
        """Give a claimed item back to the front of its queue; only its lease holder may."""
        return _end(state, item_id, Outcome.RELEASED, data)

    @post(
        "/{item_id:str}/requeue",
        status_code=200,
        sync_to_thread=True,
        summary="Re-queue a dead letter",
        responses=problems(404, 409, 503),
    )
    def requeue(self, item_id: FromPath[str], state: State) -> Item:
        """Put a dead-lettered item back at the end of its queue (admin)."""
        return item_store(state).requeue(item_id, datetime.now(UTC))


def _end(state: State, item_id: str, outcome: Outcome, data: LeaseAction) -> Item:
    store = item_store(state)
    store.get(item_id)  # 404 for an unknown item, before any lease question
    ttl = store.config.result_ttl
    with redis_errors():
        done = finish(store.conn, item_id, data.holder, outcome, now_ms(), ttl, data.note)
    if not done:
        # Read after the refusal: the state that refused it. The current holder is not named,
        # so a stale caller learns it lost the lease, not whom to impersonate.
        now = store.get(item_id)
        why = "its lease is held by another holder" if now.lease else f"it is {now.state.value}"
        raise ItemConflict(
            f"item '{item_id}' is not held by '{data.holder}': {why}; only the lease holder "
            "(`lease.holder` of the claim's answer) may complete or release it",
            field="holder",
        )
    after = store.get(item_id)
    if outcome is Outcome.COMPLETED:
        record(ItemEvent.COMPLETED, after.team, after.priority)
        taken = [h.at for h in after.history if h.event in ("claimed", "started")]
        if taken:
            seconds = (after.history[-1].at - taken[-1]).total_seconds()
            ITEM_HANDLING.labels(after.team, after.priority).observe(max(0.0, seconds))
    return after


class DeadLettersController(Controller):
    path = "/v1/dead-letters"
    tags = ["items"]

    @get(
        "/",
        sync_to_thread=True,
        summary="Items that failed after their retries",
        responses=problems(400, 404, 503),
    )
    def list_dead(
        self,
        state: State,
        team: Annotated[str | None, QueryParameter(name="team")] = None,
        limit: Limit = 100,
    ) -> DeadLetters:
        """Dead-lettered items, oldest first; re-queue one with POST /v1/items/{id}/requeue."""
        tables = active_tables(state)
        teams = [known_team(tables, team).name] if team else [t.name for t in tables.teams.team]
        store = item_store(state)
        ids = store.dead_letter_ids(team_queue_names(tables, teams), limit)
        return DeadLetters(items=store.get_many(ids))
