"""``usm serve``: run the HTTP API (the dispatch feature adds workers and embedded Redis)."""

from __future__ import annotations

import argparse
from typing import Any

from service.settings import Settings

__all__ = ["register", "run_api"]


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the API (and, when wired, workers and embedded Redis)")
    p.add_argument("--host", default=None, help="bind address (USM_HOST, default 127.0.0.1)")
    p.add_argument("--port", default=None, type=int, help="port (USM_PORT, default 8000)")
    p.add_argument("--tables", default=None, help="table set directory (USM_TABLES)")
    p.set_defaults(func=_serve)


def run_api(settings: Settings) -> None:
    """Serve the API in this process until interrupted."""
    import uvicorn

    from service.api import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        lifespan="on",
    )


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, tables=args.tables)
    run_api(settings)
    return 0
