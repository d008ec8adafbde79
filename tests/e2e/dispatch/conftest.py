"""Real worker and API processes for the dispatch end-to-end tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.dispatch.config import DispatchConfig
from service.dispatch.store import ItemStore
from tests.support.processes import ROOT, RUN_CLI, UsmProcesses, wait_for

__all__ = ["ROOT", "RUN_CLI", "Processes", "handled", "wait_for"]

RECORD = "tests.integration.dispatch.handlers:record"
Processes = UsmProcesses


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


@pytest.fixture
def processes(tmp_path: Path, redis_url: str, handler_tables: Path) -> Iterator[Processes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "USM_TABLES": str(handler_tables),
        "USM_TEST_RECORD": str(tmp_path / "handled.txt"),
        "PYTHONPATH": str(ROOT),
        "USM_PYTHON_HANDLERS": RECORD,
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
