"""A real ``redis-server`` per test session: free port, data in a temp dir, restartable."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from service.embedded_redis import find_redis_server, free_port

__all__ = ["RedisServer", "find_redis_server", "free_port", "without_preload"]


def without_preload(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default ``os.environ``) minus ``LD_PRELOAD``: redis-server cannot start under
    libfaketime, with which the suite is run at a future date to prove it calendar-independent."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k != "LD_PRELOAD"}


class RedisServer:
    """Owns one redis-server process; ``stop``/``start`` keep the port and data dir."""

    def __init__(
        self,
        data_dir: Path,
        appendonly: bool = True,
        port: int | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra = list(extra)
        """More ``--option value`` arguments (replication, sentinel tests)."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--logfile", str(self.data_dir / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, env=without_preload(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        client = redis.Redis.from_url(self.url)
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: a hung or partitioned server (connections stay open, nothing answers)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
