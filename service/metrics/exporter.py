"""A worker's own ``/metrics`` endpoint, for deployments where workers run on other machines.

Under ``usm serve`` workers need none: they write multiprocess files the API's ``/metrics``
merges. Queue state is not exported here; the API reads it from Redis, once per scrape.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from service.metrics.registry import ScrapeRegistry

__all__ = ["start_worker_exporter"]


def start_worker_exporter(port: int, addr: str = "0.0.0.0") -> tuple[WSGIServer, threading.Thread]:
    """Serve this process's metrics on ``http://addr:port/metrics`` from a daemon thread.

    Args:
        port: TCP port; 0 picks a free one (read it from ``server.server_port``).
        addr: Bind address; all interfaces by default so Prometheus on another host can scrape.

    Returns:
        The server (``shutdown()`` stops it) and its thread.
    """
    server, thread = start_http_server(port, addr=addr, registry=ScrapeRegistry())
    return server, thread
