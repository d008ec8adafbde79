"""Changing an item is compare-and-set: two writers that read the same revision both land."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import msgspec

from service.core.calls import Call
from service.core.decision import Decision
from service.core.scoring import Scorer
from service.dispatch.items import Item
from service.dispatch.store import ItemStore
from tests.integration.dispatch.conftest import Enqueue


def test_two_changes_made_from_the_same_read_both_land(
    store: ItemStore, scorer: Scorer, enqueue: Enqueue
) -> None:
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    both_read = threading.Barrier(2)
    rounds: dict[str, int] = {"impact": 0, "urgency": 0}

    def change(field: str, value: str) -> None:
        def decide(current: Item) -> tuple[Decision, Call, str]:
            rounds[field] += 1
            if rounds[field] == 1:
                both_read.wait(10)  # both have read revision 0 before either writes
            call = msgspec.structs.replace(current.call, **{field: value})
            return scorer.score(call, datetime.now(UTC)), call, f"{field}={value}"

        store.change(item.id, datetime.now(UTC), decide)

    threads = [
        threading.Thread(target=change, args=("impact", "organisation")),
        threading.Thread(target=change, args=("urgency", "immediate")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    after = store.get(item.id)
    assert (after.call.impact, after.call.urgency, after.priority) == (
        "organisation",
        "immediate",
        "P1",
    )
    assert sorted(rounds.values()) == [1, 2]  # the later writer re-read and decided again
    assert [h.event for h in after.history] == ["enqueued", "rescored", "rescored"]
