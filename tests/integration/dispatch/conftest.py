"""Fixtures for dispatch tests: an item store on the session's real Redis and call helpers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from service.core.calls import Call
from service.core.scoring import Scorer
from service.dispatch.config import DispatchConfig
from service.dispatch.items import Item
from service.dispatch.store import ItemStore
from service.files.handlers import PythonHandlers
from service.files.loader import LoadedSet, load_all


@pytest.fixture(scope="session")
def table_sets(tables_dir: Path) -> dict[str, LoadedSet]:
    return {s.version: s for s in load_all(tables_dir)}


@pytest.fixture
def base_set(table_sets: dict[str, LoadedSet]) -> LoadedSet:
    """The 2026.1 set: the one in force today, and the "old" set of re-score tests."""
    return table_sets["2026.1"]


@pytest.fixture
def scorer(base_set: LoadedSet) -> Scorer:
    return base_set.scorer()


@pytest.fixture
def config() -> DispatchConfig:
    return DispatchConfig(
        lease_seconds=2.0,
        reaper_seconds=0.5,
        max_deliveries=5,
        python_handlers=PythonHandlers(("tests.integration.dispatch.handlers",)),
    )


@pytest.fixture
def store(redis_client: redis.Redis, config: DispatchConfig) -> ItemStore:
    return ItemStore(redis_client, config)


@pytest.fixture
def calls_by_priority(scorer: Scorer) -> dict[str, Call]:
    """One incident call for each priority the matrix can produce, all for the same team."""
    now = datetime.now(UTC)
    found: dict[str, Call] = {}
    for impact in scorer.impact.allowed:
        for urgency in scorer.urgency.allowed:
            call = Call(type="incident", impact=impact, urgency=urgency, category="workplace")
            decision = scorer.score(call, now)
            found.setdefault(decision.priority.name, call)
    return found


Enqueue = Callable[..., Item]


@pytest.fixture
def enqueue(store: ItemStore, scorer: Scorer) -> Enqueue:
    counter = iter(range(1_000_000))

    def put(call: Call, external_id: str | None = None, source: str = "test") -> Item:
        now = datetime.now(UTC)
        ext = external_id or f"ext-{next(counter)}"
        item, _ = store.enqueue(call, scorer.score(call, now), source, ext, {"n": ext}, now)
        return item

    return put
