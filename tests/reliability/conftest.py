"""Real processes for fault injection: an API (keys on), worker processes, all on loopback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.dispatch.config import DispatchConfig
from service.dispatch.store import ItemStore
from service.security.keys import hash_key, new_key
from tests.security.process import ApiProcess
from tests.support.processes import ROOT, UsmProcesses, wait_for

__all__ = ["HEADERS", "INCIDENT", "KEY", "ROOT", "Workers", "wait_for"]

KEY = new_key()
"""One key with every scope; the API runs with keys on, as in production."""
HEADERS = {"Authorization": f"Bearer {KEY}"}
INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "reliability"}


class Workers:
    """``usm worker`` processes for one team; SIGKILL-able, all killed at the end."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self._processes = UsmProcesses(workdir, env)
        self.procs = self._processes.procs

    def start(self, team: str = "service_desk", name: str | None = None) -> subprocess.Popen[bytes]:
        """A worker for ``team``; ``name`` (``--name``) is its lease holder name in Redis."""
        extra = ("--name", name) if name else ()
        return self._processes.worker(*extra, team=team)

    def kill_all(self) -> None:
        self._processes.stop_all()


@pytest.fixture
def env(redis_url: str, single_set_tables: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "USM_TABLES": str(single_set_tables),
        "USM_API_KEYS": f"reliability:score,dispatch,admin:{hash_key(KEY)}",
        "USM_RATE_LIMIT": "100000/second",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def api(tmp_path: Path, env: dict[str, str]) -> Iterator[ApiProcess]:
    server = ApiProcess(tmp_path / "api.log", env)
    server.start()
    yield server
    server.stop()
    assert KEY not in server.log()


@pytest.fixture
def workers(tmp_path: Path, env: dict[str, str]) -> Iterator[Workers]:
    w = Workers(tmp_path, env)
    yield w
    w.kill_all()


@pytest.fixture
def store(redis_client: redis.Redis) -> ItemStore:
    return ItemStore(redis_client, DispatchConfig())
