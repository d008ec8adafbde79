"""Real processes for fault injection: an API (keys on), worker processes, all on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from service.dispatch.config import DispatchConfig
from service.dispatch.store import ItemStore
from service.security.keys import hash_key, new_key
from tests.security.process import ApiProcess

ROOT = Path(__file__).resolve().parents[2]
RUN_CLI = "import sys; from service.cli.main import main; sys.exit(main(sys.argv[1:]))"
KEY = new_key()
"""One key with every scope; the API runs with keys on, as in production."""
HEADERS = {"Authorization": f"Bearer {KEY}"}
INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "reliability"}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Workers:
    """``usm worker`` processes for one team; SIGKILL-able, all killed at the end."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, team: str = "service_desk") -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, "worker", "--team", team,
             "--lease", "1.5", "--reaper", "0.3"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


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
    server.start(timeout=40)
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
