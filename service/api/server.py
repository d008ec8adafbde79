"""Run the ASGI app in this process with the chosen server.

Granian is the default: measured side by side with uvicorn by ``bench/http.py`` on the same app,
it served more requests per second in one process (numbers in docs/benchmarks.md). ``USM_SERVER``
(or ``usm api --server``) picks uvicorn instead, e.g. where granian's wheels are unavailable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

from service.settings import Settings

__all__ = ["DEFAULT_SERVER", "SERVERS", "AppFactory", "run_api", "server_name"]

SERVERS = ("granian", "uvicorn")
"""The ASGI servers ``run_api`` knows, the default first."""

DEFAULT_SERVER = "granian"
"""The server used when neither ``server=`` nor ``USM_SERVER`` says otherwise."""

AppFactory = Callable[[Settings], Any]
"""Builds the ASGI app from settings; ``create_app`` unless a bench mounts extra routes."""


def server_name(choice: str | None = None, env: dict[str, str] | None = None) -> str:
    """The server to run: ``choice``, else ``USM_SERVER``, else :data:`DEFAULT_SERVER`.

    Raises:
        ValueError: The name is not one of :data:`SERVERS`; the message lists them.
    """
    env = dict(os.environ) if env is None else env
    name = (choice or env.get("USM_SERVER") or DEFAULT_SERVER).strip().lower()
    if name not in SERVERS:
        raise ValueError(f"unknown server '{name}'; allowed: {', '.join(SERVERS)}")
    return name


def _default_factory(settings: Settings) -> Any:
    from service.api.app import create_app

    return create_app(settings)


def _load(factory: AppFactory, settings: Settings) -> Any:
    """Build the app inside the serving process (granian calls this in its worker)."""
    return factory(settings)


def run_api(
    settings: Settings,
    server: str | None = None,
    app_factory: AppFactory | None = None,
) -> None:
    """Serve the API in this process until SIGINT or SIGTERM, with one worker.

    Args:
        settings: Where to bind and what to load; the app is built from them.
        server: ``granian`` or ``uvicorn``; default from ``USM_SERVER``, else granian.
        app_factory: Builds the app from ``settings``; ``create_app`` by default. Must be a
            module-level function: granian hands it to its worker process.
    """
    name = server_name(server)
    factory = app_factory or _default_factory
    if name == "granian":
        _run_granian(settings, factory)
    else:
        _run_uvicorn(settings, factory)


def _run_granian(settings: Settings, factory: AppFactory) -> None:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    from service.governance.signals import forward_sighup

    server = Server(
        target="usm-dispatch",  # only a label: the loader below builds the app
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,  # ASGI with lifespan: start-up and shut-down hooks run
        workers=1,
        log_level=LogLevels.info,
        log_access=False,
    )
    # SIGHUP reloads the tables inside the worker (a refused set keeps the running one) rather
    # than granian's respawn, whose new worker would exit on invalid tables.
    forward_sighup(server)
    server.serve(target_loader=partial(_load, factory, settings), wrap_loader=False)


def _run_uvicorn(settings: Settings, factory: AppFactory) -> None:
    import uvicorn

    uvicorn.run(
        _load(factory, settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        lifespan="on",
    )
