"""One stack per test session (per xdist worker): Redis, a real RT 5 and a real ``usm api``.

RT's USM scrip posts to the API's fixed port, so the API can be stopped and started again on
the same port (the reconciliation test) without touching RT.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.processes import ApiProcess
from tests.support.redis_server import RedisServer, free_port
from tests.support.rt import SERVICE_PASSWORD, SERVICE_USER, RtServer, rt_installed
from tests.support.tables import REPO_TABLES, SINGLE_VERSION

EVENTS_SECRET = "rt-scrip-token"


@dataclass
class Stack:
    redis: redis.Redis
    redis_url: str
    rt: RtServer
    api: ApiProcess
    tables: Path
    env: dict[str, str]


def _tables(root: Path, rt_url: str) -> Path:
    """Only 2026.1 (so the date does not pick the set), its RT source pointing at this RT."""
    target = root / "tables"
    shutil.copytree(REPO_TABLES / SINGLE_VERSION, target / SINGLE_VERSION)
    sources = target / SINGLE_VERSION / "sources.toml"
    sources.write_text(sources.read_text().replace("http://127.0.0.1:8080", rt_url))
    return target


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert rt_installed(), "Request Tracker 5 is missing: run scripts/dev test (it installs it)"
    root = tmp_path_factory.mktemp("rt-stack")
    server = RedisServer(root / "redis")
    (root / "redis").mkdir()
    server.start()
    api_port = free_port()
    rt = RtServer(root / "rt", f"http://127.0.0.1:{api_port}/v1/sources/rt/events", EVENTS_SECRET)
    rt.install()
    rt.start()
    tables = _tables(root, f"http://127.0.0.1:{rt.port}")
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "USM_TABLES": str(tables),
        "USM_TABLES_WATCH_INTERVAL": "0.2",
        "USM_WRITEBACK_SECONDS": "0.2",
        "USM_SOURCE_RT_SECRET": EVENTS_SECRET,
        "USM_SOURCE_RT_TOKEN": f"{SERVICE_USER}:{SERVICE_PASSWORD}",
    }
    for key in ("USM_API_KEYS", "USM_API_KEYS_FILE"):
        env.pop(key, None)
    usm = str(Path(sys.executable).parent / "usm")
    api = ApiProcess(
        [usm, "api", "--port", str(api_port), "--tables", str(tables)],
        env,
        root / "api.log",
        api_port,
        ready="/readyz",
        stop_timeout=15.0,
    )
    api.start(timeout=60.0)
    try:
        yield Stack(redis.Redis.from_url(server.url), server.url, rt, api, tables, env)
    finally:
        api.stop()
        rt.stop()
        server.stop()
