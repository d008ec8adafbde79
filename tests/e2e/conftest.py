"""Fixtures for tests that run the real ``usm serve``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.processes import ServeProcess
from tests.support.redis_server import free_port, without_preload
from tests.support.tables import single_set_tables

ServeFactory = Callable[..., ServeProcess]
"""``serve(port=None, log="serve.log", prefix=(), **env)``: a ``usm serve`` in the test's tmp
dir, its command line after ``prefix`` (e.g. ``unshare ...``)."""


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[ServeFactory]:
    """Builds ``usm serve`` processes (embedded Redis, 2026.1 tables); stops what is left.

    A failed test still stops its ``usm serve`` with SIGTERM, which stops its children.
    """
    started: list[ServeProcess] = []

    def serve(
        port: int | None = None,
        log: str = "serve.log",
        prefix: Sequence[str] = (),
        **env: str,
    ) -> ServeProcess:
        # Its embedded redis-server inherits the env, and cannot start under libfaketime.
        base = {
            k: v
            for k, v in without_preload().items()
            if k not in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "USM_API_KEYS")
            and not k.startswith("USM_LOG")
        }
        base.update(
            USM_DATA_DIR=str(tmp_path / "var"),
            USM_TABLES=str(single_set_tables(tmp_path)),
            USM_PORT=str(port or free_port()),
            **env,
        )
        process = ServeProcess(tmp_path, base, int(base["USM_PORT"]), log=log, prefix=prefix)
        started.append(process)
        return process

    yield serve
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            process.stop()
