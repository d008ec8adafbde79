"""A sync of a ticket that did not change is ordered like every other write-back.

``usm sources sync`` answers an unchanged ticket with its item's current decision and, when the
tool does not show it, queues a write-back. It used to queue that decision without its revision:
the outbox then ordered it by the time of the sync, so a re-score landing between the sync's read
and its submit was overwritten in the tool by the older decision, and each sync bumped a pending
write-back's revision (its sender then starts over). Run against Zammad's search API stand-in
(:mod:`tests.e2e.sources.test_reconcile_contracts`) with a real Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.core.calls import Call
from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.dispatch.store import ItemStore
from service.sources import keys
from service.sources.outbox import Outbox, Revision
from service.sources.search.zammad import ZammadSearch
from tests.e2e.sources.test_reconcile_contracts import CONTRACTS, SINCE, Running, running

__all__ = ["running"]  # the fixture, shared with the reconcile contracts

ZAMMAD = [CONTRACTS[2]]


def _entry(running: Running, ticket: str) -> list[Any]:
    return running.conn.hmget(keys.entry_key(f"zammad:{ticket}"), "rev", "decided_ms", "state")


@pytest.mark.parametrize("running", ZAMMAD, ids=["zammad"], indirect=True)
def test_a_sync_leaves_a_pending_write_back_of_an_unchanged_ticket_alone(
    running: Running,
) -> None:
    first = running.sync(SINCE)
    assert first.actions == {"queued": 3} and first.written_back == 3
    before = [_entry(running, t) for t in running.contract.ids]
    # The sender has not run: the tool shows nothing yet, and the tickets did not change.
    again = running.sync(SINCE)
    assert again.actions == {"unchanged": 3}
    assert [_entry(running, t) for t in running.contract.ids] == before
    assert len(running.deliver()) == 3  # one write-back per ticket, not one per sync


@pytest.mark.parametrize("running", ZAMMAD, ids=["zammad"], indirect=True)
def test_a_re_score_during_a_sync_is_not_overwritten_by_the_older_decision(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    running.sync(SINCE)
    running.deliver()
    ticket = running.tool.tickets[0]
    assert ticket["id"] == 81 and ticket["usm_priority"] == "P2"
    ticket["usm_priority"] = "P4"  # changed by hand in Zammad: the sync will write it back
    store = ItemStore(running.conn)
    item = store.find("zammad", "81")
    assert item is not None
    call = Call(type="incident", impact="organisation", urgency="high")
    newer = running.loaded.scorer().score(call, datetime.now(UTC))
    assert newer.priority.name not in ("P2", "P4")
    shows = ZammadSearch.shows
    re_scored: list[int] = []

    def re_scored_meanwhile(
        self: ZammadSearch, payload: Any, decision: Decision, settings: WriteBackSettings
    ) -> bool:
        # Between the sync reading ticket 81's item and queueing its write-back, a re-score
        # over the API that decided before the sync started stores its decision and queues it
        # at its revision (a slow request).
        if payload["ticket"]["id"] == 81 and not re_scored:
            _, _, rev = store.rescore_revised(item.id, newer, decided, reason="PATCH")
            Outbox(running.conn).submit("zammad", "81", newer, decided, Revision(item.id, rev))
            re_scored.append(rev)
        return shows(self, payload, decision, settings)

    monkeypatch.setattr(ZammadSearch, "shows", re_scored_meanwhile)
    decided = datetime.now(UTC)
    report = running.sync(SINCE)
    assert report.actions == {"unchanged": 3} and re_scored
    running.deliver()
    assert ticket["usm_priority"] == newer.priority.name
