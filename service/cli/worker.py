"""``usm worker --team T [--team U]``: handle a team's items, highest priority first."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.settings import Settings

__all__ = ["register", "run_worker"]

log = logging.getLogger("usm.worker")


def register(sub: Any) -> None:
    p = sub.add_parser("worker", help="run a worker for one or more push-mode teams")
    p.add_argument(
        "--team",
        action="append",
        default=[],
        help="team to work for (repeatable); default: every push-mode team",
    )
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.add_argument("--tables", default=None, help="table set directory (USM_TABLES)")
    p.add_argument(
        "--lease", type=float, default=None, help="lease seconds (USM_LEASE_SECONDS, 30)"
    )
    p.add_argument(
        "--heartbeat", type=float, default=None, help="heartbeat seconds (default lease/3)"
    )
    p.add_argument(
        "--reaper", type=float, default=None, help="reaper interval seconds (USM_REAPER_SECONDS)"
    )
    p.add_argument("--name", default=None, help="worker name (shown by `rq info`)")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve this worker's Prometheus metrics on this port (distributed deployments)",
    )
    # Set by `usm serve`: stop (after the current item) when that process is gone.
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_worker)


def run_worker(
    settings: Settings,
    teams: list[str],
    burst: bool = False,
    name: str | None = None,
    heartbeat: float | None = None,
    parent_pid: int | None = None,
) -> int:
    """Run one worker in this process until stopped; returns the number of items handled."""
    # Imported here: the CLI must not import prometheus_client before `usm serve` chooses its
    # multiprocess mode.
    from service.connection import connect
    from service.dispatch.config import DispatchConfig
    from service.files.loader import load_all
    from service.files.store import TableStore
    from worker.runner import Worker, worker_teams

    if not settings.redis_url:
        raise SystemExit("usm worker: REDIS_URL is not set")
    from service.core.tables import TableSet
    from service.governance.reload import TableReloader

    config = DispatchConfig.from_settings(settings)
    # Tables naming a python handler outside USM_PYTHON_HANDLERS are refused here, at start and
    # on every reload, before any handler is built.
    store = TableStore(load_all(Path(settings.tables), config.python_handlers))
    tables = store.active(datetime.now(UTC)).tables
    # Under `usm serve` (a parent pid) the API says once what changed, not every worker again.
    announce = parent_pid is None
    reloader = TableReloader(
        store,
        Path(settings.tables),
        python_handlers=config.python_handlers,
        announce=announce,
    )

    def tables_in_force() -> TableSet:
        # Edited files are picked up as the API does (refused ones leave the running set), and a
        # version whose effective date has come takes over by itself.
        reloader.poll()
        return store.active(datetime.now(UTC)).tables

    if heartbeat is not None:
        config = DispatchConfig(**{**config.__dict__, "heartbeat": heartbeat})
    # A read timeout well above the 1 s idle BLPOP: a Redis that stops answering is noticed.
    # No automatic re-send: a timed-out hand-out may still run, and a second one would lease a
    # second item (the first returns after its lease; see service/connection.py).
    conn = connect(settings.redis_url, timeout=max(10.0, config.lease_seconds), connect_timeout=2)
    try:
        worker = Worker(
            conn,
            tables,
            teams or worker_teams(tables),
            config,
            name=name,
            tables_source=tables_in_force,
            parent_pid=parent_pid,
            announce_tables=announce,
        )
    except ValueError as exc:
        raise SystemExit(f"usm worker: {exc}") from None
    return worker.run(burst=burst)


def _worker(args: argparse.Namespace) -> int:
    settings = Settings.from_env(
        tables=args.tables, lease_seconds=args.lease, reaper_seconds=args.reaper
    )
    if args.metrics_port is not None:
        from service.metrics.exporter import start_worker_exporter

        start_worker_exporter(args.metrics_port, teams=args.team, tables=settings.tables)
    run_worker(
        settings,
        args.team,
        burst=args.burst,
        name=args.name,
        heartbeat=args.heartbeat,
        parent_pid=args.parent_pid,
    )
    return 0
