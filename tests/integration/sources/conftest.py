"""Fixtures of the source tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from service.sources import keys
from service.sources.outbox import Outbox
from tests.integration.sources.outbox_support import Receiver


@pytest.fixture
def outbox(redis_client: redis.Redis) -> Outbox:
    """An outbox without entries."""
    for key in redis_client.scan_iter(f"{keys.ENTRY_PREFIX}*"):
        redis_client.delete(key)
    return Outbox(redis_client)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP server standing in for RT's REST2 API."""
    r = Receiver()
    yield r
    r.stop()
