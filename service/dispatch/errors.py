"""Errors of the dispatch layer, rooted in :class:`service.errors.UsmError`."""

from __future__ import annotations

from service.errors import UsmError

__all__ = ["ItemConflict"]


class ItemConflict(UsmError):
    """The item's state does not allow the action (e.g. re-queue an item that is not dead)."""

    status_code = 409
