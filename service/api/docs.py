"""The browsable API pages: Swagger UI at ``/schema`` and ``/schema/swagger``, from local files.

litestar's render plugins load their JavaScript from a CDN by default (Scalar at ``@latest``): a
blank page offline and a UI that changes under our feet. The files come instead from the pinned
PyPI package ``swagger-ui-bundle-v2`` (Swagger UI, the package connexion's authors keep) and are
served by the app under :data:`ASSETS_PATH`; the page references nothing outside the service.
"""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

__all__ = ["ASSETS_PATH", "assets_router", "render_plugins"]

ASSETS_PATH = "/schema/assets"
"""Where Swagger UI's files are served; under ``/schema``, so open like the document itself."""


def render_plugins() -> list[SwaggerRenderPlugin]:
    """Swagger UI at the root of ``/schema`` and at ``/schema/swagger``, every asset local."""
    return [
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon="",  # litestar's default favicon is on a CDN too
        )
    ]


def assets_router() -> Router:
    """Serves the Swagger UI files of the installed package, cached for a day."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[Path(str(swagger_ui_path))],
        cache_control=CacheControlHeader(max_age=86400, public=True),
        include_in_schema=False,
    )
