"""A worker's own ``/metrics`` endpoint, for deployments where workers run on other machines.

Under ``usm serve`` workers need none: they write multiprocess files the API's ``/metrics``
merges. Queue state is not exported here; the API reads it from Redis, once per scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from service.metrics.instruments import initialise
from service.metrics.registry import ScrapeRegistry

__all__ = ["start_worker_exporter"]


def start_worker_exporter(
    port: int,
    addr: str = "0.0.0.0",
    teams: Sequence[str] = (),
    tables: str | Path | None = None,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve this process's metrics on ``http://addr:port/metrics`` from a daemon thread.

    Args:
        port: TCP port; 0 picks a free one (read it from ``server.server_port``).
        addr: Bind address; all interfaces by default so Prometheus on another host can scrape.
        teams: The worker's teams; with ``tables``, their item counters start at 0 so even the
            first event is an increase Prometheus sees. Empty: every push-mode team.
        tables: Table set directory, to know the teams and priority names.

    Returns:
        The server (``shutdown()`` stops it) and its thread.
    """
    if tables is not None:
        from service.files.loader import load_all
        from service.files.store import TableStore

        active = TableStore(load_all(Path(tables))).active(datetime.now(UTC)).tables
        mine = list(teams) or [t.name for t in active.teams.team if t.mode == "push"]
        initialise(mine, [p.name for p in active.levels.priority])
    server, thread = start_http_server(port, addr=addr, registry=ScrapeRegistry())
    return server, thread
