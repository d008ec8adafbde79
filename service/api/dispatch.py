"""Wires dispatch into the app: the item and team routes, the Redis client, the API's reaper.

``create_app`` adds one :class:`DispatchPlugin`. The Redis client is built when the app starts
(redis-py connects lazily, on the first command), so nothing connects at import or build time,
and a Redis that is down at start-up or later only turns item requests into 503s until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from service.api.items import DeadLettersController, ItemsController
from service.api.teams import TeamsController
from service.connection import connect, is_sentinel
from service.dispatch.config import DispatchConfig
from service.dispatch.encoding import check_hash_encoding
from service.dispatch.items import now_ms
from service.dispatch.leases import reap
from service.dispatch.replicas import ReplicaWait, require_replicas
from service.dispatch.store import ItemStore
from service.errors import QueueUnavailable
from service.metrics.instruments import ItemEvent, record
from service.settings import Settings
from service.tasks import stop_all
from service.threads import run_to_end

__all__ = ["DispatchPlugin"]

log = logging.getLogger("usm.dispatch")


class DispatchPlugin(InitPluginProtocol):
    """Item and team routes plus, while the app runs, a Redis client and a lease reaper."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = DispatchConfig.from_settings(settings)
        self.store: ItemStore | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([ItemsController, TeamsController, DeadLettersController])
        app_config.state["dispatch_config"] = self.config
        app_config.lifespan.append(self.lifespan)
        return app_config

    def _client(self) -> redis.Redis:
        """The store's client: commands bounded by USM_REDIS_TIMEOUT_SECONDS, never re-sent
        (a re-sent script may run twice), and writes confirmed by replicas (see
        :mod:`service.dispatch.replicas`)."""
        s = self.settings
        assert s.redis_url
        conn = connect(
            s.redis_url,
            timeout=s.redis_timeout_seconds,
            connect_timeout=min(1.0, s.redis_timeout_seconds),
            health_check_interval=30,
        )
        wait = ReplicaWait.parse(
            s.redis_wait_replicas, s.redis_wait_timeout_seconds, is_sentinel(s.redis_url)
        )
        require_replicas(conn, wait)
        return conn

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Hold the client and run the reaper while the app serves."""
        if not self.settings.redis_url:
            yield
            return
        conn = self._client()
        self.store = ItemStore(conn, self.config)
        app.state["items"] = self.store
        task = asyncio.create_task(self._reap_forever(conn), name="lease reaper")
        try:
            yield
        finally:
            await stop_all([task])
            app.state["items"] = None
            conn.close()

    async def _reap_forever(self, conn: redis.Redis) -> None:
        """Re-queue items whose lease expired: claims of pull-mode teams have no worker reaper."""
        cfg = self.config
        checked = False
        while True:
            await asyncio.sleep(cfg.reaper_seconds)
            if not checked:
                # Once Redis answers: warn if it would store items in their large form.
                with contextlib.suppress(redis.RedisError):
                    await run_to_end(lambda: check_hash_encoding(conn))
                    checked = True
            try:
                taken: list[Any] = await run_to_end(
                    lambda: reap(conn, now_ms(), cfg.max_deliveries, cfg.failure_ttl)
                )
            except (redis.RedisError, QueueUnavailable) as exc:
                # QueueUnavailable: no replica confirmed (the items moved all the same; the next
                # round finds nothing left of them). Either way the reaper keeps running.
                log.debug("reaper skipped: %s", exc)
                continue
            for r in taken:
                record(ItemEvent.ABANDONED, r.team, r.priority)
                if r.dead:
                    record(ItemEvent.DEAD_LETTERED, r.team, r.priority)
