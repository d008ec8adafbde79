"""Reconciliation: pull tickets changed since the last sync, so lost events lose nothing.

Webhooks get lost (usm down, network, a tool that gave up). ``usm sources sync <source>`` asks
the tool's search API (:mod:`service.sources.search`, one module per write-back adapter) for
every ticket updated since the last successful sync, minus :data:`MARGIN` for clocks and search
indexes that lag, gets each in the payload form the tool's webhook sends, and runs it through the
same mapping and item rules as a live event. Decisions the ticket does not show yet go to the
write-back outbox, each with the item's revision it was stored at, like every other write-back:
an unchanged ticket's decision is read together with its revision (:func:`_current`), so a
re-score landing meanwhile is never overwritten by it, and a write-back of that same revision
already waiting is left as it is (a sync of an unchanged ticket changes nothing).

The cursor: the mark stored after a sync is the moment that sync *started*, and only a sync
that read every page stores it; a failed one leaves the mark, so the next run covers the same
span again. Anything updated after a sync started is found by the next one, so there is no gap.
Applying a ticket twice changes nothing (idempotent on the ticket id), so overlaps are harmless.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import msgspec
import redis

from service.core.decision import Decision
from service.core.mapping import compiled, map_event, tool_text
from service.core.scoring import Scorer
from service.core.sources import Source
from service.dispatch.keys import PREFIX
from service.dispatch.store import ItemStore
from service.errors import InvalidEvent, NotFound
from service.sources.inbound import Action, SourceAnswer, handle_event
from service.sources.outbox import Outbox, Revision
from service.sources.search.base import PAGE_SIZE, Fetch, fetch, finder
from service.sources.secrets import secrets_for

__all__ = ["MARGIN", "SyncReport", "sync_source"]

log = logging.getLogger("usm.sources.sync")

MARGIN = timedelta(minutes=2)
"""Look this much further back than the last sync: the tool's clock may differ a little, and
search indexes (Jira, Zammad's Elasticsearch) show a change a moment after it happened."""

FIRST = timedelta(days=1)
"""How far back the first sync of a source looks."""


def _sync_key(source: str) -> str:
    return f"{PREFIX}:sources:sync:{source}"


class SyncReport(msgspec.Struct, kw_only=True):
    """What one sync did."""

    source: str
    since: datetime
    tickets: int = 0
    actions: dict[str, int] = {}
    written_back: int = 0
    refused: list[str] = []
    """``<ticket>: <reason>`` for tickets the mapping refuses (fix them in the tool)."""


def last_sync(conn: redis.Redis, source: str) -> datetime | None:
    """When the last complete sync of ``source`` started, if one did."""
    mark = conn.get(_sync_key(source))
    return datetime.fromisoformat(bytes(mark).decode()) if mark else None  # type: ignore[arg-type]


def sync_source(
    conn: redis.Redis,
    source: Source,
    scorer: Scorer,
    since: datetime | None = None,
    *,
    transport: Fetch | None = None,
    page_size: int = PAGE_SIZE,
) -> SyncReport:
    """Pull the source's tickets changed since the last sync and apply them like live events.

    Args:
        since: Start here instead of at the last sync's mark (minus :data:`MARGIN`).
        transport: Sends the search requests (default: the network, the source's timeout).
        page_size: Tickets asked for per page.

    Raises:
        NotFound: the source has no write-back settings (no tool API to search).
        OSError: the tool cannot be reached or refused a search; the mark stays, so the next
            run covers the same span and nothing is skipped.
    """
    wb = source.writeback
    if wb is None:
        raise NotFound(
            f"source '{source.name}' cannot be synced: reconciliation searches the tool's API, "
            "so the source needs a [source.writeback] with adapter and base_url"
        )
    search = finder(wb.adapter)
    started = datetime.now(UTC)
    if since is None:
        mark = last_sync(conn, source.name)
        since = mark - MARGIN if mark else started - FIRST
    report = SyncReport(source=source.name, since=since)
    store, outbox = ItemStore(conn), Outbox(conn)
    token = secrets_for(source.name).token
    send = transport or fetch(wb.timeout)
    for payload in search.tickets(send, wb, token, since, started, page_size):
        report.tickets += 1
        now = datetime.now(UTC)
        try:
            event = map_event(source, payload)
            answer, _, revision = handle_event(source, event, scorer, store, now)
        except InvalidEvent as exc:
            report.refused.append(f"{_ticket(source, payload)}: {exc}")
            continue
        report.actions[answer.action.value] = report.actions.get(answer.action.value, 0) + 1
        d, stored = answer.decision, None
        if answer.item_id is not None and revision is not None:
            stored = Revision(answer.item_id, revision)
        elif answer.action is Action.UNCHANGED:
            d, stored = _current(store, answer)
        # Only what the tool does not show yet: a second run writes nothing.
        if d is not None and not search.shows(payload, d, wb):
            report.written_back += outbox.submit(source.name, event.ticket_id, d, now, stored) > 0
    conn.set(_sync_key(source.name), started.isoformat())
    return report


def _current(store: ItemStore, answer: SourceAnswer) -> tuple[Decision | None, Revision | None]:
    """The unchanged ticket's item's decision with the revision it was stored at, in one read.

    The answer holds the item's decision without its revision; written back without one, it
    would be ordered by the time of the sync and overwrite a re-score made meanwhile.
    """
    found = store.find_with_revision(answer.source, answer.ticket_id)
    if found is None or found[0].id != answer.item_id:
        return None, None  # gone or replaced meanwhile: its own write-back is the newer one
    item, revision = found
    return item.decision, Revision(item.id, revision)


def _ticket(source: Source, payload: object) -> str:
    """The ticket id for a refusal message (the mapping may refuse the id itself)."""
    return tool_text(compiled(source.ticket_id).search(payload)) or "(no ticket id)"
