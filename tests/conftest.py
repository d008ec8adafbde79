"""Fixtures every layer may use: the table sets, and one real Redis per test session."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.files.loader import LoadedSet, load_all
from tests.support.redis_server import RedisServer
from tests.support.tables import single_set_tables as copy_single_set

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "tables"


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """Undo what ``usm``'s ``main()`` run in-process does to logging (``service.logs.setup``).

    It points the root logger at the ``sys.stderr`` of that moment, which under ``capsys`` is a
    capture closed when the test ends: the next test's records then fail with "I/O operation on
    closed file". It also sets ``USM_LOG_LEVEL``/``USM_LOG_FORMAT``, which later processes inherit.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    env = {k: os.environ.get(k) for k in ("USM_LOG_LEVEL", "USM_LOG_FORMAT")}
    yield
    for handler in root.handlers[:]:
        # pytest's own handlers are subclasses; setup() installs a plain StreamHandler.
        if type(handler) is logging.StreamHandler and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tables_dir() -> Path:
    """The committed ``tables/`` with every version: only for tests about versions, since which
    set is active there depends on the date (2027.1 takes effect on 2027-01-01)."""
    return TABLES


@pytest.fixture(scope="session")
def single_set_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tables directory holding only 2026.1, so the active set is the same on any date."""
    return copy_single_set(tmp_path_factory.mktemp("single-set"))


@pytest.fixture(scope="session")
def default_set() -> LoadedSet:
    """The worked example ``tables/2026.1`` (``tables/`` also holds a future version, 2027.1)."""
    return next(s for s in load_all(TABLES) if s.version == "2026.1")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for this session (per xdist worker), AOF on."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session's Redis, flushed before and after the test."""
    if redis_server.proc is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    if redis_server.proc is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
