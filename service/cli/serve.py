"""``usm api`` (the HTTP API alone) and ``usm serve`` (Redis if needed, workers, and the API).

``usm serve`` is the README's run command: with no ``REDIS_URL`` it starts its own Redis
(:mod:`service.embedded_redis`), then one ``usm worker`` process per push-mode team, then the API
in this process; on SIGINT/SIGTERM/SIGHUP it stops them in reverse order: API, workers (each
finishes its current item), Redis. A worker or Redis that dies is restarted.

Killed outright (SIGKILL, the OOM killer), it cannot stop anything, so the children stop
themselves: the kernel sends them SIGTERM when their parent dies (:mod:`service.children`), and
workers also watch their parent pid. The next start then finds nothing in its way.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from service.children import die_with_parent, port_in_use
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


def _check_port(command: str, settings: Settings) -> None:
    """Fail before starting anything when the API's port is taken, naming the option."""
    if port_in_use(settings.host, settings.port):
        raise SystemExit(
            f"usm {command}: port {settings.port} on {settings.host} is already in use "
            "(another usm serve?); choose another with --port or USM_PORT"
        )


def _api(args: argparse.Namespace) -> int:
    from service.api.server import run_api

    settings = Settings.from_env(host=args.host, port=args.port, tables=args.tables)
    preflight(settings)  # refuse bad keys or an open non-loopback bind before starting anything
    _check_port("api", settings)
    run_api(settings, args.server)
    return 0


class WorkerPool:
    """One ``usm worker`` child per team, restarted if it dies, stopped gracefully.

    The pool's thread starts the replacements, so it is their parent for ``PR_SET_PDEATHSIG``:
    it lives until every worker has exited, or they would get a second, interrupting SIGTERM.
    """

    def __init__(self, teams: list[str], env: dict[str, str]) -> None:
        self.teams = teams
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="worker-pool", daemon=True)

    def start(self) -> None:
        for team in self.teams:
            self._spawn(team)
        self._watch.start()

    def _spawn(self, team: str) -> None:
        # Own session: a Ctrl-C reaches `usm serve` only, which then stops workers one signal
        # at a time (a second signal would interrupt the item in hand).
        self.procs[team] = subprocess.Popen(
            [
                *(sys.executable, "-c", _RUN_CLI, "worker", "--team", team),
                *("--parent-pid", str(os.getpid())),
            ],
            env=self.env,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, see service.children
        )
        log.info("worker for team %s started (pid %d)", team, self.procs[team].pid)

    def _watch_loop(self) -> None:
        from service.metrics.multiprocess import child_exited

        while not self._done.wait(1.0):
            with self._lock:
                if self._stopping.is_set():
                    continue
                for team, proc in list(self.procs.items()):
                    if proc.poll() is not None:
                        log.warning(
                            "worker for team %s (pid %d) exited (%s); restarting",
                            team,
                            proc.pid,
                            proc.returncode,
                        )
                        child_exited(proc.pid)
                        self._spawn(team)

    def stop(self, grace: float = _WORKER_GRACE) -> None:
        """SIGTERM every worker (finish the current item), SIGKILL those still busy after grace."""
        with self._lock:
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
        self._done.set()
        if self._watch.is_alive():
            self._watch.join()


def _rq_command() -> str:
    """How to call the ``rq`` installed beside this Python, as a person can paste it.

    Plain ``rq`` only when the shell finds that very one: ``scripts/dev serve`` runs from
    ``.venv`` without putting it on ``PATH``, and another ``rq`` (or none) may be there instead.
    """
    beside = Path(sys.executable).parent / "rq"
    found = shutil.which("rq")
    if found is not None and Path(found).resolve() == beside.resolve():
        return "rq"
    return shlex.quote(str(beside))


def _banner(settings: Settings, data: Path, embedded: bool, pool: WorkerPool | None) -> None:
    """Where everything is: one line each, so a person finds the API, Redis and the data."""
    log.info("API: http://%s:%d (docs at /schema)", settings.host, settings.port)
    url, where = settings.redis_url, "embedded" if embedded else "REDIS_URL"
    log.info(
        "Redis: %s (%s; see the queues with: %s info --url %s)", url, where, _rq_command(), url
    )
    log.info("data dir: %s", data.resolve())
    if pool is None:
        log.info("workers: none (--no-workers)")
    else:
        names = ", ".join(f"{t} (pid {p.pid})" for t, p in pool.procs.items())
        log.info("workers: %s", names or "none (no push-mode team)")


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, tables=args.tables)
    if "USM_READY_NEEDS_REDIS" not in os.environ:
        # One machine, one Redis: while it is down the service is not ready (dispatch is 503).
        settings = msgspec.structs.replace(settings, ready_needs_redis=True)
    preflight(settings)  # refuse bad keys or an open non-loopback bind before starting anything
    _check_port("serve", settings)
    data = Path(settings.data_dir)
    # Before anything imports prometheus_client: API and workers share one /metrics. The files
    # are mmapped, so they stay off the data disk (a full disk would be a SIGBUS).
    from service.metrics.multiprocess import ENV, prepare, run_dir

    own_metrics = None if os.environ.get(ENV) else run_dir()
    prepare(own_metrics or os.environ[ENV])
    try:
        return _run(args, settings, data)
    finally:
        if own_metrics is not None:
            shutil.rmtree(own_metrics, ignore_errors=True)


def _run(args: argparse.Namespace, settings: Settings, data: Path) -> int:
    from service.api.server import run_api
    from service.embedded_redis import EmbeddedRedis, EmbeddedRedisError, RedisKeeper
    from service.files.handlers import PythonHandlers
    from service.files.loader import load_all
    from service.files.store import TableStore
    from worker.runner import worker_teams

    keeper = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(data, settings.redis_port, settings.redis_appendfsync)
        try:
            url = embedded.start()
        except EmbeddedRedisError as exc:
            raise SystemExit(f"usm serve: {exc}") from None
        keeper = RedisKeeper(embedded, first_delay=settings.redis_restart_seconds)
        keeper.start()
        settings = msgspec.structs.replace(settings, redis_url=url)
    pool = None
    try:
        if not args.no_workers:
            handlers = PythonHandlers.parse(settings.python_handlers)
            loaded = load_all(Path(settings.tables), handlers)
            tables = TableStore(loaded).active(datetime.now(UTC)).tables
            env = {
                **os.environ,
                "REDIS_URL": str(settings.redis_url),
                "USM_TABLES": settings.tables,
            }
            pool = WorkerPool(worker_teams(tables), env)
            pool.start()
        _banner(settings, data, keeper is not None, pool)
        run_api(settings, args.server)
    finally:
        if pool is not None:
            pool.stop()
        if keeper is not None:
            keeper.close()
    return 0
