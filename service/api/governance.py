"""Wires governance into the app: admin routes, decision log, and the background tasks.

``create_app`` adds one :class:`GovernancePlugin`; its lifespan starts the file watch, the
SIGUSR1 handler, the activation watcher and the decision log flusher, and stops them on shutdown.
Nothing connects to Redis before the app starts. It lives in the API layer, beside
:mod:`service.api.dispatch`, so :mod:`service.governance` knows no web framework and never
imports the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from service.api.admin import AdminController
from service.connection import connect, connect_async
from service.files.handlers import PythonHandlers
from service.files.store import TableStore
from service.governance.activation import ActivationWatcher, Rescore, default_rescore
from service.governance.config import GovernanceConfig
from service.governance.decision_log import DecisionLog
from service.governance.event_log import EventLog
from service.governance.reload import TableReloader
from service.tasks import stop_all

__all__ = ["GovernancePlugin"]

log = logging.getLogger("usm.governance")

_REDIS_TIMEOUTS: dict[str, Any] = {"timeout": 2.0, "connect_timeout": 1.0}


class GovernancePlugin(InitPluginProtocol):
    """Hot reload, activation re-scoring and the decision log for one API process."""

    def __init__(
        self,
        store: TableStore,
        tables_dir: str | Path,
        redis_url: str | None,
        config: GovernanceConfig | None = None,
        rescore: Rescore | None = None,
        python_handlers: PythonHandlers | None = None,
    ) -> None:
        self.store = store
        self.config = config or GovernanceConfig.from_env()
        self.redis_url = redis_url
        self.reloader = TableReloader(store, Path(tables_dir), python_handlers=python_handlers)
        self.decisions = DecisionLog(
            maxlen=self.config.decision_log_maxlen if redis_url else 0,
            buffer=self.config.decision_log_buffer,
        )
        self.events = EventLog(maxlen=self.config.source_event_log_maxlen if redis_url else 0)
        self._rescore = rescore
        self.activation: ActivationWatcher | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(AdminController)
        app_config.state["reloader"] = self.reloader
        app_config.state["decision_log"] = self.decisions
        app_config.state["event_log"] = self.events
        app_config.lifespan.append(self.lifespan)
        return app_config

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Run the background tasks while the app serves."""
        cfg = self.config
        aclient = sclient = None
        if self.redis_url:
            aclient = connect_async(self.redis_url, **_REDIS_TIMEOUTS)
            sclient = connect(self.redis_url, **_REDIS_TIMEOUTS)
        rescore = self._rescore or default_rescore()
        self.activation = ActivationWatcher(self.store, sclient, rescore, cfg.rescore_lock_seconds)
        if cfg.watch_interval > 0:
            self._start(self.reloader.watch(cfg.watch_interval), "table watch")
        self._start(self.activation.run(cfg.activation_interval), "activation watch")
        if aclient is not None and self.decisions.enabled:
            self._start(self.decisions.run(aclient, cfg.decision_log_flush), "decision log")
        if aclient is not None and self.events.enabled:
            self._start(self.events.run(aclient, cfg.decision_log_flush), "source event log")
        on_usr1 = self._install_reload_signal()
        try:
            yield
        finally:
            if on_usr1:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)
            await stop_all(self._tasks)
            self._tasks.clear()
            if aclient is not None:
                await aclient.aclose()
            if sclient is not None:
                sclient.close()

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    def _install_reload_signal(self) -> bool:
        """``kill -USR1 <pid>`` reloads the tables; only possible on the main thread's loop.

        Not SIGHUP: a terminal sends that when it closes, and then the service must stop.
        """
        loop = asyncio.get_running_loop()

        def on_usr1() -> None:
            self._start(self._reload("sigusr1"), "sigusr1 reload")

        try:
            loop.add_signal_handler(signal.SIGUSR1, on_usr1)
        except (RuntimeError, ValueError, NotImplementedError):
            return False  # not the main thread (a test client) or no signals on this platform
        return True

    async def _reload(self, trigger: str) -> None:
        await self.reloader.areload(trigger)
