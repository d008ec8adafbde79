"""The ``usm`` command line: ``serve``, ``worker``, ``tables ...``."""

from __future__ import annotations

from service.cli.main import main

__all__ = ["main"]
