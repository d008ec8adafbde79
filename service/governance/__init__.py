"""Governance of the table sets: hot reload, activation re-scoring, decision log, review tools.

Governance staff change ``tables/`` through pull requests; this package makes the change safe
(refused when invalid, swapped atomically), reviewable (diff, replay, render) and auditable
(every decision lands in a bounded Redis stream naming its table version and hash).
"""

from __future__ import annotations

__all__: list[str] = []
