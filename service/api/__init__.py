"""The HTTP adapter: litestar routes around the core and the queues."""

from __future__ import annotations

from service.api.app import create_app

__all__ = ["create_app"]
