"""What scoring answers: the priority, the team, the targets, and why."""

from __future__ import annotations

from datetime import datetime

from service.core.base import Base
from service.core.tables import Trigger

__all__ = ["Decision", "LevelRef", "PriorityRef", "Step"]


class LevelRef(Base):
    """A resolved impact or urgency level."""

    name: str
    level: int


class PriorityRef(Base):
    """A resolved priority level."""

    name: str
    level: int
    label: str


class Step(Base):
    """One step of the explanation: which input, which rule, which result."""

    input: str
    rule: str
    result: str


class Decision(Base):
    """The priority of one call under one table set version."""

    call_type: str
    workflow: str
    trigger: Trigger
    priority: PriorityRef
    impact: LevelRef
    urgency: LevelRef
    team: str
    reported_at: datetime
    response_by: datetime
    resolve_by: datetime
    table_version: str
    table_hash: str
    explanation: tuple[Step, ...]
