"""A real API server process (``usm api``) on a free loopback port, where the wire matters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.redis_server import free_port
from tests.support.tables import single_set_tables

__all__ = ["ApiProcess"]

ROOT = Path(__file__).resolve().parents[2]


class ApiProcess:
    """``usm --log-level DEBUG api`` (uvicorn unless ``env`` says otherwise) with ``env`` set."""

    def __init__(self, log_path: Path, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.env = {**os.environ, "USM_SERVER": "uvicorn", **env}
        self.env.update({"USM_HOST": "127.0.0.1", "USM_PORT": str(self.port)})
        if "USM_TABLES" not in self.env:  # only 2026.1: the active set must not depend on the date
            self.env["USM_TABLES"] = str(single_set_tables(log_path.parent))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli.main", "--log-level", "DEBUG", "api"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError(f"API did not answer within {timeout} s: {self.log()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
