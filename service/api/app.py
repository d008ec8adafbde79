"""``create_app``: the one place that wires the HTTP service together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from service import __version__
from service.api.dispatch import DispatchPlugin
from service.api.docs import assets_router, render_plugins
from service.api.errors import exception_handlers
from service.api.governance import GovernancePlugin
from service.api.guard import RequestGuard
from service.api.health import healthz, readyz
from service.api.metrics import metrics, prime_metrics
from service.api.priority import PriorityController
from service.api.sources import SourcesPlugin
from service.api.tables import TablesController
from service.files.handlers import PythonHandlers
from service.files.loader import load_all
from service.files.store import TableStore
from service.metrics.tables import record_loaded
from service.security import build_security
from service.settings import Settings
from service.sources.triggers import rescore_and_write_back

__all__ = ["create_app"]


def _tables(state: State) -> TableStore:
    store: TableStore = state.tables
    return store


def create_app(
    settings: Settings | None = None,
    store: TableStore | None = None,
    extra_handlers: Sequence[Any] = (),
) -> Litestar:
    """Build the API. Loads the tables now (a bad set stops start-up); connects nothing."""
    settings = settings or Settings.from_env()
    handlers = PythonHandlers.parse(settings.python_handlers)
    if store is None:
        store = TableStore(load_all(Path(settings.tables), handlers))
        store.active(datetime.now(UTC))  # no set in force yet: refuse to start (NoTableInForce)
        record_loaded()
    prime_metrics(store)
    security = build_security(settings)
    return Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics,
            PriorityController,
            TablesController,
            assets_router(),
            *extra_handlers,
        ],
        dependencies={"tables": Provide(_tables, sync_to_thread=False)},
        # The fast path (service.api.fast) reads the same security objects from here.
        state=State({"tables": store, "settings": settings, "security": security}),
        exception_handlers={**exception_handlers, **security.exception_handlers},  # type: ignore[arg-type,dict-item]
        request_max_body_size=settings.max_body_bytes,
        # Logging is set up once per process (service.logs), not in litestar's own format.
        logging_config=None,
        # HTTP metrics, intake rules, API key, rate limit: one layer (see service.api.guard).
        middleware=[DefineMiddleware(RequestGuard, security=security)],
        stores=security.stores,
        on_startup=security.on_startup,
        on_shutdown=security.on_shutdown,
        plugins=[
            GovernancePlugin(
                store,
                settings.tables,
                settings.redis_url,
                python_handlers=handlers,
                rescore=rescore_and_write_back,
            ),
            DispatchPlugin(settings),
            SourcesPlugin(settings, store),
        ],
        openapi_config=OpenAPIConfig(
            title="usm-dispatch",
            version=__version__,
            description=(
                "Unified prioritization and dispatch: one impact/urgency/priority table set "
                "scores every call and risk on one scale; team queues hand out the highest "
                "priority first."
            ),
            path="/schema",
            render_plugins=render_plugins(),
        ),
    )
