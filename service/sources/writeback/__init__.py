"""Write-back: push usm's current decision into the ticketing tool, one adapter per tool.

Adapters (``rt``, ``jira``, ...) are pure request builders (:class:`~.base.WriteBack`); one
sender (:mod:`service.sources.outbox`) sends what they build, with retries and dead letters.
"""

from __future__ import annotations

from service.sources.writeback.base import HttpRequest, WriteBack, adapter

__all__ = ["HttpRequest", "WriteBack", "adapter"]
