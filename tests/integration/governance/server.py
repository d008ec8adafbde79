"""A real ``usm api`` process on a free port, for tests where the wire and signals matter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.redis_server import free_port

__all__ = ["ApiProcess"]


class ApiProcess:
    """Starts ``usm api`` with ``tables`` and ``env``; ``stop`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, tables: Path, log: Path, env: Mapping[str, str] = ()) -> None:  # type: ignore[assignment]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        usm = Path(sys.executable).parent / "usm"
        full = {**os.environ, "USM_TABLES_WATCH_INTERVAL": "0.2", **dict(env)}
        full.pop("USM_API_KEYS", None)
        full.pop("USM_API_KEYS_FILE", None)
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [str(usm), "api", "--port", str(self.port), "--tables", str(tables)],
            env=full,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"usm api exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"usm api not ready in 30 s: {self.log.read_text()}")

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
