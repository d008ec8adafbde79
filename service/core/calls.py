"""What a caller asks about: one reactive call or proactive risk, on one shape.

A call type is data (``call_types.toml``), not code, so one struct covers them all; the scorer
checks which fields fit the call type's trigger (likelihood and proximity only for proactive ones).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from service.core.base import Base, Name, ShortText

__all__ = ["Call", "LevelInput"]

LevelInput = (
    Annotated[str, msgspec.Meta(max_length=64, description="Level name.")]
    | Annotated[int, msgspec.Meta(ge=1, le=1000, description="Level rank; 1 is the most severe.")]
)
"""A level given by name (``"department"``) or by rank (``2``)."""


class Call(Base):
    """A call to score: an incident, service request, change, wish, or a risk."""

    type: Name
    """Call type from ``call_types.toml``, e.g. ``incident`` or ``risk``."""
    impact: LevelInput | None = None
    """Impact by name or level; may be left out when the service sets an impact floor."""
    urgency: LevelInput | None = None
    """Urgency by name or level; for a risk it may be derived from likelihood and proximity."""
    likelihood: LevelInput | None = None
    """Risks only: how likely the risk materialises."""
    proximity: LevelInput | None = None
    """Risks only: how soon the risk may materialise."""
    service: Name | None = None
    """Service from ``services.toml``; brings its impact floor and owning team."""
    category: ShortText | None = None
    """Free category, used by routing rules."""
    reported_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    """When the call was reported; targets count from here. Defaults to now."""
