"""Run the ASGI app in this process with the chosen server (see docs/benchmarks.md for why)."""

from __future__ import annotations

from service.settings import Settings

__all__ = ["run_api"]


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
