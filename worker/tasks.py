"""The function each item's RQ job names, for RQ tooling (rq-dashboard shows it).

Items are handed out by ``usm worker`` (strict priority, leases), not by ``rq worker``: a plain
RQ worker pointed at these queues would bypass both. This function makes that mistake loud.
"""

from __future__ import annotations

__all__ = ["handle_item"]


def handle_item(item_id: str) -> None:
    """Refuse to run under a plain RQ worker."""
    raise RuntimeError(
        f"item {item_id} must be handled by `usm worker`, which keeps strict priority and "
        "re-delivers items of crashed workers; plain `rq worker` does neither"
    )
