"""What keeps an item small in Redis: its decision stored once while it waits, and a warning when
the Redis in use would keep item hashes in their large form."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from service.core.calls import Call
from service.dispatch import keys
from service.dispatch.encoding import SETTING, check_hash_encoding
from service.dispatch.items import CURRENT_DECISION
from service.dispatch.rescore import rescore_all
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue
from worker.runner import Worker


def test_a_waiting_item_holds_its_decision_once_and_a_new_one_keeps_the_first(
    store: ItemStore,
    enqueue: Enqueue,
    calls_by_priority: dict[str, Call],
    base_set: LoadedSet,
    redis_client: redis.Redis,
) -> None:
    item = enqueue(calls_by_priority["P5"])
    history = keys.history_key(item.id)
    [entry] = redis_client.lrange(history, 0, -1)
    # The enqueued entry names the hash's decision instead of holding a second copy of it.
    assert entry.endswith(b"\n" + CURRENT_DECISION)
    assert store.get(item.id).history[0].decision == item.decision

    now = datetime.now(UTC)
    urgent = calls_by_priority["P2"]
    new = base_set.scorer().score(urgent, now)
    store.rescore(item.id, new, now, urgent, "escalated")
    first = redis_client.lindex(history, 0)
    assert first is not None and not first.endswith(b"\n" + CURRENT_DECISION)
    got = store.get(item.id)
    assert [e.event for e in got.history] == ["enqueued", "rescored"]
    assert got.history[0].decision == item.decision
    assert got.history[1].decision == got.decision == new


def test_a_mass_rescore_keeps_the_decision_an_item_was_enqueued_with(
    store: ItemStore, enqueue: Enqueue, table_sets: dict[str, LoadedSet]
) -> None:
    item = enqueue(Call(type="incident", impact="group", urgency="high"))  # P3, P2 in 2027.1
    assert rescore_all(store.conn, table_sets["2027.1"].scorer()) == 1
    got = store.get(item.id)
    assert [e.event for e in got.history] == ["enqueued", "rescored"]
    assert got.history[0].decision == item.decision
    assert got.decision.priority.name == "P2" and got.history[1].decision == got.decision


@pytest.fixture
def setting(redis_client: redis.Redis) -> Iterator[None]:
    """The session's Redis setting as it was, once the test is over."""
    before = redis_client.config_get(SETTING)[SETTING]
    yield
    redis_client.config_set(SETTING, before)


def test_a_redis_that_would_store_items_large_is_named_with_the_setting_to_change(
    redis_client: redis.Redis,
    setting: None,
    base_set: LoadedSet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_client.config_set(SETTING, 64)  # Redis's own default
    with caplog.at_level(logging.WARNING, logger="usm.dispatch"):
        assert check_hash_encoding(redis_client) == 64
        Worker(redis_client, base_set.tables, ["service_desk"]).run(burst=True)
    warned = [r.getMessage() for r in caplog.records if "hash-max-listpack-value" in r.getMessage()]
    assert len(warned) == 2  # the check, and the worker at start
    assert "hash-max-listpack-value 64" in warned[0] and "Set it to 1024" in warned[0]


def test_a_redis_set_up_for_items_gets_no_warning(
    redis_client: redis.Redis, setting: None, caplog: pytest.LogCaptureFixture
) -> None:
    redis_client.config_set(SETTING, 1024)
    with caplog.at_level(logging.WARNING, logger="usm.dispatch"):
        assert check_hash_encoding(redis_client) == 1024
    assert not caplog.records
