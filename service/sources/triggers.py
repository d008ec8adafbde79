"""When usm changes a decision without the tool asking, the change goes into the outbox.

Three moments: a new table set comes into force and re-scores open work
(:func:`rescore_and_write_back`, the activation's re-score), someone re-scores an item over the
API (:func:`write_back`), and a reconciliation (``usm sources sync``) scores tickets whose
events were lost. Only sources with a write-back adapter are written to. The fourth, a target
that passes unmet, is the target watch's (:mod:`service.sources.watch`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis

from service.core.decision import Decision
from service.core.scoring import Scorer
from service.core.tables import TableSet
from service.dispatch.rescore import rescore_all
from service.sources.outbox import Outbox, Revision
from service.sources.watch import watch_targets

__all__ = ["rescore_and_write_back", "write_back"]


def write_back(
    outbox: Outbox,
    tables: TableSet,
    source: str,
    ticket_id: str,
    decision: Decision,
    revision: Revision | None,
) -> bool:
    """Queue ``decision`` for the ticket when its source writes back; True when queued.

    ``revision`` is the item's revision the decision was stored at (None: the ticket has no
    item); a decision older than one already queued or sent is dropped, whenever it arrives.

    The ticket is also noted for the target watch (:mod:`service.sources.watch`): the new
    decision's targets still ahead are told to the tool when they pass unmet.
    """
    found = next((s for s in tables.sources.source if s.name == source), None)
    if found is None or found.writeback is None:
        return False
    now = datetime.now(UTC)
    queued = outbox.submit(source, ticket_id, decision, now, revision) > 0
    watch_targets(outbox.conn, found, ticket_id, decision, now)
    return queued


def rescore_and_write_back(
    conn: redis.Redis, scorer: Scorer, fence: Callable[[], None] | None = None
) -> int:
    """The activation re-score (:func:`~service.dispatch.rescore.rescore_all`) plus write-back.

    Returns the number of items moved, like ``rescore_all``.
    """
    outbox = Outbox(conn)

    def changed(source: str, ticket_id: str, decision: Decision, item: str, rev: int) -> None:
        write_back(outbox, scorer.tables, source, ticket_id, decision, Revision(item, rev))

    return rescore_all(conn, scorer, fence, on_change=changed)
