"""Real worker and API processes for the dispatch end-to-end tests."""

from __future__ import annotations

import os
import shutil
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

ROOT = Path(__file__).resolve().parents[3]
RECORD = "tests.integration.dispatch.handlers:record"
RUN_CLI = "import sys; from service.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="session")
def handler_tables(tmp_path_factory: pytest.TempPathFactory, single_set_tables: Path) -> Path:
    """The 2026.1 tables only, with service_desk's handler recording each item to a file."""
    target = tmp_path_factory.mktemp("tables") / "tables"
    shutil.copytree(single_set_tables, target)
    for teams in target.glob("*/teams.toml"):
        text = teams.read_text()
        line = 'name = "service_desk"\n'
        assert line in text
        teams.write_text(
            text.replace(line, f'{line}handler = {{ kind = "python", target = "{RECORD}" }}\n')
        )
    return target


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Processes:
    """Starts ``usm`` sub-commands and kills whatever is left at the end."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, log: str = "worker", **env: str) -> subprocess.Popen[bytes]:
        out = open(self.workdir / f"{log}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def worker(self, *extra: str, **env: str) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", "--team", "service_desk", "--lease", "1.5", "--reaper", "0.3", *extra, **env
        )

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def processes(tmp_path: Path, redis_url: str, handler_tables: Path) -> Iterator[Processes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "USM_TABLES": str(handler_tables),
        "USM_TEST_RECORD": str(tmp_path / "handled.txt"),
        "PYTHONPATH": str(ROOT),
    }
    procs = Processes(tmp_path, env)
    yield procs
    procs.stop_all()


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    return tmp_path / "handled.txt"


def handled(record_file: Path) -> list[tuple[str, str, int]]:
    """``(item id, priority, pid)`` per handled item, in the order handled."""
    if not record_file.exists():
        return []
    rows = []
    for line in record_file.read_text().splitlines():
        item_id, priority, pid = line.split()
        rows.append((item_id, priority, int(pid)))
    return rows


@pytest.fixture
def store(redis_client: redis.Redis) -> ItemStore:
    return ItemStore(redis_client, DispatchConfig())
