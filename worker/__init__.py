"""Workers: take items from a team's queues in strict priority order and run the team's handler.

``usm worker --team T`` runs :class:`worker.runner.Worker`; handlers live in
:mod:`worker.handlers`.
"""

from __future__ import annotations

__all__: list[str] = []
