"""The order of a ticket's write-backs holds for as long as its item is kept.

The outbox entry of a sent decision expires (``done_ttl``, the result TTL: 7 days), and a
decision the tool got through its event's answer never passes the outbox. Both once let an older
revision through: the entry knew no newer one. The submit now asks the item itself (the ticket's
current item, the item's revision), which is kept while it is open and for the result TTL after.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis

from service.core.calls import Call
from service.core.decision import Decision
from service.dispatch import keys as item_keys
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from service.sources import keys
from service.sources.outbox import Outbox, Revision
from tests.integration.sources.outbox_support import decision, rt_item
from tests.support.processes import wait_for

CALL = Call(type="incident", impact="user", urgency="high")


@pytest.fixture
def store(redis_client: redis.Redis) -> ItemStore:
    return ItemStore(redis_client)


def _send_all(outbox: Outbox) -> list[Decision]:
    """Claim and mark done what is due, as a sender whose tool accepts everything would."""
    sent = []
    now = datetime.now(UTC).timestamp()
    for entry in outbox.claim(now, 60):
        assert outbox.still_newest(entry, now, 10)
        assert outbox.done(entry, now)
        sent.append(entry.decision)
    return sent


def test_an_older_revision_is_dropped_after_the_sent_entry_expired(
    redis_client: redis.Redis, store: ItemStore, default_set: LoadedSet
) -> None:
    outbox = Outbox(redis_client, done_ttl=1)
    item = rt_item(redis_client, default_set, "41")
    older, newer = decision(default_set, "group"), decision(default_set, "organisation")
    _, _, rev_n = store.rescore_revised(item.id, older, datetime.now(UTC), reason="N")
    _, _, rev_n1 = store.rescore_revised(item.id, newer, datetime.now(UTC), reason="N+1")
    assert outbox.submit("rt", "41", newer, datetime.now(UTC), Revision(item.id, rev_n1)) > 0
    assert _send_all(outbox) == [newer]
    entry = keys.entry_key("rt:41")
    wait_for("the sent entry to expire", lambda: not redis_client.exists(entry))
    # N's write-back, delayed past the entry's life, arrives: the item still says N+1.
    assert outbox.submit("rt", "41", older, datetime.now(UTC), Revision(item.id, rev_n)) == 0
    assert _send_all(outbox) == []


def test_an_older_revision_is_dropped_when_the_tool_got_the_newer_one_in_its_answer(
    redis_client: redis.Redis, store: ItemStore, default_set: LoadedSet
) -> None:
    """An RT scrip applies the event's answer itself: revision N+1 never passes the outbox."""
    outbox = Outbox(redis_client)
    item = rt_item(redis_client, default_set, "42")
    older, newer = decision(default_set, "group"), decision(default_set, "organisation")
    _, _, rev_n = store.rescore_revised(item.id, older, datetime.now(UTC), reason="activation")
    assert outbox.submit("rt", "42", older, datetime.now(UTC), Revision(item.id, rev_n)) > 0
    assert _send_all(outbox) == [older]
    store.rescore_revised(item.id, newer, datetime.now(UTC), reason="changed in rt")
    # N's write-back is submitted again (a retried submit): RT shows N+1 from its answer.
    assert outbox.submit("rt", "42", older, datetime.now(UTC), Revision(item.id, rev_n)) == 0
    assert _send_all(outbox) == []


def test_a_decision_of_an_item_no_longer_kept_is_dropped(
    redis_client: redis.Redis, store: ItemStore, default_set: LoadedSet
) -> None:
    outbox = Outbox(redis_client)
    item = rt_item(redis_client, default_set, "43")
    old = decision(default_set, "group")
    store.cancel(item.id, datetime.now(UTC), reason="closed in rt")
    # The ended item's result TTL passed: its records are gone.
    redis_client.delete(item_keys.job_key(item.id), item_keys.idem_key("rt", "43"))
    assert outbox.submit("rt", "43", old, datetime.now(UTC), Revision(item.id, 1)) == 0
    assert _send_all(outbox) == []
    # A ticket without an item (a source that never queues) is ordered by decision time.
    assert outbox.submit("rt", "43", old, datetime.now(UTC), None) > 0
