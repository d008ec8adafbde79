"""When usm changes a decision without the tool asking, the change goes into the outbox.

Three moments: a new table set comes into force and re-scores open work
(:func:`rescore_and_write_back`, the activation's re-score), someone re-scores an item over the
API (:func:`write_back`), and a reconciliation (``usm sources sync``) scores tickets whose
events were lost. Only sources with a write-back adapter are written to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis

from service.core.decision import Decision
from service.core.scoring import Scorer
from service.core.tables import TableSet
from service.dispatch.rescore import rescore_all
from service.sources.outbox import Outbox

__all__ = ["rescore_and_write_back", "write_back"]


def write_back(
    outbox: Outbox, tables: TableSet, source: str, ticket_id: str, decision: Decision
) -> bool:
    """Queue ``decision`` for the ticket when its source writes back; True when queued."""
    if not any(s.name == source and s.writeback is not None for s in tables.sources.source):
        return False
    return outbox.submit(source, ticket_id, decision, datetime.now(UTC)) > 0


def rescore_and_write_back(
    conn: redis.Redis, scorer: Scorer, fence: Callable[[], None] | None = None
) -> int:
    """The activation re-score (:func:`~service.dispatch.rescore.rescore_all`) plus write-back.

    Returns the number of items moved, like ``rescore_all``.
    """
    outbox = Outbox(conn)

    def changed(source: str, ticket_id: str, decision: Decision) -> None:
        write_back(outbox, scorer.tables, source, ticket_id, decision)

    return rescore_all(conn, scorer, fence, on_change=changed)
