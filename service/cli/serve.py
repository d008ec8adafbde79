"""``usm api`` (the HTTP API alone) and ``usm serve`` (Redis if needed, workers, and the API).

``usm serve`` is the README's run command: with no ``REDIS_URL`` it starts its own Redis
(:mod:`service.embedded_redis`), then one ``usm worker`` process per push-mode team, then the API
in this process; on SIGINT/SIGTERM it stops them in reverse order: API, workers (each finishes
its current item), Redis. A worker that dies is restarted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from service.security import preflight
from service.settings import Settings

__all__ = ["WorkerPool", "register"]

log = logging.getLogger("usm.serve")

_RUN_CLI = "import sys; from service.cli.main import main; sys.exit(main(sys.argv[1:]))"
"""The ``usm`` entry point run with this interpreter, wherever the console script lives."""

_WORKER_GRACE = 30.0
"""Seconds a worker gets to finish its current item on shutdown before it is killed."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="bind address (USM_HOST, default 127.0.0.1)")
    p.add_argument("--port", default=None, type=int, help="port (USM_PORT, default 8000)")
    p.add_argument("--tables", default=None, help="table set directory (USM_TABLES)")
    p.add_argument(
        "--server",
        default=None,
        choices=("uvicorn", "granian"),
        help="ASGI server (USM_SERVER, default uvicorn: see docs/benchmarks.md)",
    )


def register(sub: Any) -> None:
    api = sub.add_parser("api", help="run the HTTP API only (Redis from REDIS_URL)")
    _common(api)
    api.set_defaults(func=_api)
    serve = sub.add_parser(
        "serve", help="run the API, one worker per team and, without REDIS_URL, Redis"
    )
    _common(serve)
    serve.add_argument(
        "--no-workers", action="store_true", help="start no workers (run them elsewhere)"
    )
    serve.set_defaults(func=_serve)


def _api(args: argparse.Namespace) -> int:
    from service.api.server import run_api

    settings = Settings.from_env(host=args.host, port=args.port, tables=args.tables)
    preflight(settings)  # refuse bad keys or an open non-loopback bind before starting anything
    run_api(settings, args.server)
    return 0


class WorkerPool:
    """One ``usm worker`` child per team, restarted if it dies, stopped gracefully."""

    def __init__(self, teams: list[str], env: dict[str, str]) -> None:
        self.teams = teams
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="worker-pool", daemon=True)

    def start(self) -> None:
        for team in self.teams:
            self._spawn(team)
        self._watch.start()

    def _spawn(self, team: str) -> None:
        # Own session: a Ctrl-C reaches `usm serve` only, which then stops workers one signal
        # at a time (a second signal would interrupt the item in hand).
        self.procs[team] = subprocess.Popen(
            [sys.executable, "-c", _RUN_CLI, "worker", "--team", team],
            env=self.env,
            start_new_session=True,
        )
        log.info("worker for team %s started (pid %d)", team, self.procs[team].pid)

    def _watch_loop(self) -> None:
        from service.metrics.multiprocess import child_exited

        while not self._stopping.wait(1.0):
            for team, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stopping.is_set():
                    log.warning("worker for team %s exited (%s); restarting", team, proc.returncode)
                    child_exited(proc.pid)
                    self._spawn(team)

    def stop(self, grace: float = _WORKER_GRACE) -> None:
        """SIGTERM every worker (finish the current item), SIGKILL those still busy after grace."""
        self._stopping.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for team, proc in self.procs.items():
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("worker for team %s did not stop in %.0fs; killing it", team, grace)
                proc.kill()
                proc.wait()


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, tables=args.tables)
    preflight(settings)  # refuse bad keys or an open non-loopback bind before starting anything
    data = Path(settings.data_dir)
    # Before anything imports prometheus_client: API and workers share one /metrics.
    from service.metrics.multiprocess import prepare

    prepare(data / "metrics")
    from service.api.server import run_api
    from service.embedded_redis import EmbeddedRedis, EmbeddedRedisError
    from service.files.loader import load_all
    from service.files.store import TableStore
    from worker.runner import worker_teams

    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(data, settings.redis_port, settings.redis_appendfsync)
        try:
            url = embedded.start()
        except EmbeddedRedisError as exc:
            raise SystemExit(f"usm serve: {exc}") from None
        settings = msgspec.structs.replace(settings, redis_url=url)
        log.info("embedded Redis at %s (set REDIS_URL to use your own)", url)
    pool = None
    try:
        if not args.no_workers:
            tables = TableStore(load_all(Path(settings.tables))).active(datetime.now(UTC)).tables
            env = {
                **os.environ,
                "REDIS_URL": str(settings.redis_url),
                "USM_TABLES": settings.tables,
            }
            pool = WorkerPool(worker_teams(tables), env)
            pool.start()
        run_api(settings, args.server)
    finally:
        if pool is not None:
            pool.stop()
        if embedded is not None:
            embedded.stop()
    return 0
