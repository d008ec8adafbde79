"""A real API server process (``usm api``) on a free loopback port, where the wire matters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support import processes
from tests.support.redis_server import free_port
from tests.support.tables import single_set_tables

__all__ = ["ApiProcess"]


class ApiProcess(processes.ApiProcess):
    """``usm --log-level DEBUG api`` (uvicorn unless ``env`` says otherwise) with ``env`` set."""

    def __init__(self, log_path: Path, env: dict[str, str], port: int | None = None) -> None:
        port = port or free_port()
        full = {**os.environ, "USM_SERVER": "uvicorn", **env}
        full.update({"USM_HOST": "127.0.0.1", "USM_PORT": str(port)})
        if "USM_TABLES" not in full:  # only 2026.1: the active set must not depend on the date
            full["USM_TABLES"] = str(single_set_tables(log_path.parent))
        command = [sys.executable, "-m", "service.cli.main", "--log-level", "DEBUG", "api"]
        super().__init__(command, full, log_path, port)
