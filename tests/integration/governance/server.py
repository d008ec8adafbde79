"""A real ``usm api`` process on a free port, for tests where the wire and signals matter."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support import processes
from tests.support.redis_server import free_port

__all__ = ["ApiProcess"]


class ApiProcess(processes.ApiProcess):
    """Starts ``usm api`` with ``tables`` and ``env``; ``stop`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, tables: Path, log: Path, env: Mapping[str, str] = ()) -> None:  # type: ignore[assignment]
        port = free_port()
        usm = Path(sys.executable).parent / "usm"
        full = {**os.environ, "USM_TABLES_WATCH_INTERVAL": "0.2", **dict(env)}
        full.pop("USM_API_KEYS", None)
        full.pop("USM_API_KEYS_FILE", None)
        command = [str(usm), "api", "--port", str(port), "--tables", str(tables)]
        super().__init__(command, full, log, port, ready="/readyz", stop_timeout=15.0, append=False)
        self.start()
