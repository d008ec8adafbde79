"""The pure core: table types, validation and scoring. No I/O, no framework, no Redis.

Everything here is a function of its arguments, so scoring answers even when Redis is down and
the same inputs always give the same decision.
"""

from __future__ import annotations

from service.core.calls import Call
from service.core.decision import Decision, LevelRef, PriorityRef, Step
from service.core.scoring import Scorer
from service.core.tables import TableSet
from service.core.validation import Problem, validate

__all__ = [
    "Call",
    "Decision",
    "LevelRef",
    "PriorityRef",
    "Problem",
    "Scorer",
    "Step",
    "TableSet",
    "validate",
]
