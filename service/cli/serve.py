"""``usm api`` (the HTTP API alone) and ``usm serve`` (API, workers and embedded Redis)."""

from __future__ import annotations

import argparse
from typing import Any

from service.api.server import run_api
from service.settings import Settings

__all__ = ["register"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="bind address (USM_HOST, default 127.0.0.1)")
    p.add_argument("--port", default=None, type=int, help="port (USM_PORT, default 8000)")
    p.add_argument("--tables", default=None, help="table set directory (USM_TABLES)")


def register(sub: Any) -> None:
    api = sub.add_parser("api", help="run the HTTP API only (Redis from REDIS_URL)")
    _common(api)
    api.set_defaults(func=_api)
    serve = sub.add_parser(
        "serve", help="run the API, one worker per team and, without REDIS_URL, Redis"
    )
    _common(serve)
    serve.set_defaults(func=_api)


def _api(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, tables=args.tables)
    run_api(settings)
    return 0
