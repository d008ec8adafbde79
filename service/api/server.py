"""Run the ASGI app in this process with the chosen server.

uvicorn (with httptools and uvloop) is the default: measured side by side with granian by
``bench/http.py`` on the same app in eight runs, it served ``POST /v1/priority`` faster in every
one (median 1.16x wall clock, 1.32x per CPU-second); on 1,000-call batches the two were even
(docs/benchmarks.md). ``USM_SERVER=granian`` (or ``usm api --server granian``) picks granian.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

from service.settings import Settings

__all__ = ["DEFAULT_SERVER", "SERVERS", "AppFactory", "run_api", "server_name"]

SERVERS = ("uvicorn", "granian")
"""The ASGI servers ``run_api`` knows, the default first."""

DEFAULT_SERVER = "uvicorn"
"""The server used when neither ``server=`` nor ``USM_SERVER`` says otherwise."""

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

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
    """Build the app inside the serving process (granian calls this in its worker).

    Everything built so far (modules, routes, schemas, tables) lives as long as the process, so
    it is moved out of the collector's reach with ``gc.freeze()``: a full collection set off by a
    request's garbage then no longer walks it all. Measured with callgrind on 30 batch requests
    in-process: about 5% fewer instructions per request (docs/benchmarks.md).
    """
    from service.api.access import with_access_log
    from service.api.fast import with_fast_path
    from service.logs import setup

    setup()  # granian builds the app in a worker process: log there as everywhere else
    app = with_fast_path(with_access_log(factory(settings)))
    gc.collect()
    gc.freeze()
    return app


def run_api(
    settings: Settings,
    server: str | None = None,
    app_factory: AppFactory | None = None,
) -> None:
    """Serve the API in this process until SIGINT or SIGTERM, with one worker.

    Args:
        settings: Where to bind and what to load; the app is built from them.
        server: ``uvicorn`` or ``granian``; default from ``USM_SERVER``, else uvicorn.
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
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    from service.governance.signals import reload_on_sigusr1

    server = Server(
        target="usm-dispatch",  # only a label: the loader below builds the app
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,  # ASGI with lifespan: start-up and shut-down hooks run
        workers=1,
        log_level=LogLevels.info,
        log_access=False,  # ours is service.api.access, the same line under both servers
        # No handlers of granian's own: its records go to ours (service.logs).
        log_dictconfig={"version": 1, "disable_existing_loggers": False, "loggers": {}},
        # hyper's read buffer bounds the request head: past it, granian answers 431 itself.
        http1_settings=HTTP1Settings(max_buffer_size=settings.max_header_bytes),
    )
    from service.logs import setup

    setup()
    # SIGUSR1 reloads the tables inside the worker (a refused set keeps the running one); SIGHUP
    # (a closed terminal) stops granian as SIGTERM does.
    reload_on_sigusr1(server)
    server.serve(target_loader=partial(_load, factory, settings), wrap_loader=False)


class _Stopped(Exception):
    """Raised by our handler when uvicorn re-raises the stop signal it already acted on."""


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _hang_up(signum: int, frame: FrameType | None) -> None:
    # A closed terminal: stop as on SIGTERM (uvicorn's handler, graceful), not keep running
    # detached with nobody to stop it.
    signal.raise_signal(signal.SIGTERM)


def _run_uvicorn(settings: Settings, factory: AppFactory) -> None:
    import uvicorn

    from service.api.headers import bounded

    app = _load(factory, settings)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then restores the previous handlers and
    # raises the signal again. With the default SIGTERM handler that kills the process before a
    # caller's ``finally`` runs (``usm serve`` stops its workers and Redis there), so the
    # "previous" handler is ours for the duration, and a stop returns normally, as granian's does.
    main = threading.current_thread() is threading.main_thread()
    saved = {sig: signal.signal(sig, _stopped) for sig in _STOP_SIGNALS} if main else {}
    if main:
        saved[signal.SIGHUP] = signal.signal(signal.SIGHUP, _hang_up)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            log_config=None,  # no handlers of uvicorn's own: its records go to ours
            access_log=False,  # ours is service.api.access, the same line under both servers
            lifespan="on",
            # httptools with a bound on request heads (uvicorn has none for it): 431 past it.
            http=bounded(settings.max_header_bytes),
        )
    except _Stopped:
        pass
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
