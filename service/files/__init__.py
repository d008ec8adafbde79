"""Reading table sets from ``tables/``: the I/O shell around the pure core."""

from __future__ import annotations

from service.files.loader import LoadedSet, load_all, load_set

__all__ = ["LoadedSet", "load_all", "load_set"]
