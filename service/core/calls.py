"""What a caller asks about: one reactive call or proactive risk, on one shape.

A call type is data (``call_types.toml``), not code, so one struct covers them all; the scorer
checks which fields fit the call type's trigger (likelihood and proximity only for proactive ones).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from service.core.base import Base, Name, ShortText

__all__ = ["Call", "LevelInput", "UncheckedCall"]

LevelInput = (
    Annotated[str, msgspec.Meta(max_length=64, description="Level name.")]
    | Annotated[int, msgspec.Meta(ge=1, le=1000, description="Level rank; 1 is the most severe.")]
)
"""A level given by name (``"department"``) or by rank (``2``)."""


def _doc(text: str, example: object) -> msgspec.Meta:
    return msgspec.Meta(description=text, examples=[example])


class Call(Base):
    """A call to score: an incident, service request, change, wish, or a risk.

    Field descriptions double as the OpenAPI documentation of ``POST /v1/priority``.
    """

    type: Annotated[
        Name, _doc("Call type from call_types.toml, e.g. incident or risk.", "incident")
    ]
    """Call type from ``call_types.toml``, e.g. ``incident`` or ``risk``."""
    impact: Annotated[
        LevelInput | None,
        _doc(
            "Impact by name or level (1 is the most severe; a level may also come as text, "
            '"2"). May be left out when the service sets an impact floor.',
            "department",
        ),
    ] = None
    """Impact by name or level; may be left out when the service sets an impact floor."""
    urgency: Annotated[
        LevelInput | None,
        _doc(
            "Urgency by name or level. A risk gives either urgency or likelihood and proximity.",
            "high",
        ),
    ] = None
    """Urgency by name or level; a risk gives it or likelihood and proximity, not both."""
    likelihood: Annotated[
        LevelInput | None,
        _doc("Risks only: how likely the risk materialises (risk.toml).", "likely"),
    ] = None
    """Risks only: how likely the risk materialises."""
    proximity: Annotated[
        LevelInput | None,
        _doc("Risks only: how soon the risk may materialise (risk.toml).", "near"),
    ] = None
    """Risks only: how soon the risk may materialise."""
    service: Annotated[
        Name | None,
        _doc("Service from services.toml; brings its impact floor and owning team.", "email"),
    ] = None
    """Service from ``services.toml``; brings its impact floor and owning team."""
    category: Annotated[
        ShortText | None, _doc("Free category; routing rules may match on it.", "security")
    ] = None
    """Free category, used by routing rules."""
    reported_at: (
        Annotated[
            datetime,
            msgspec.Meta(
                tz=True,
                description="When the call was reported (RFC 3339 with a timezone); targets "
                "count from here. Defaults to now.",
                examples=["2026-03-02T09:00:00Z"],
            ),
        ]
        | None
    ) = None
    """When the call was reported; targets count from here. Defaults to now."""


class UncheckedCall(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, gc=False
):
    """A :class:`Call` decoded with its types but without its value constraints.

    The fields, their order, types and defaults are :class:`Call`'s; what is left out is what a
    value alone decides: the name pattern, lengths and rank bounds (``reported_at`` keeps its
    timezone rule: it is never memoised). Those checks cost about 70 % of decoding a 1,000-call
    batch (two regular expressions per call), while a batch holds few distinct values: the
    batch endpoint decodes calls unchecked and checks each distinct value tuple once
    (:meth:`checked`, memoised with its decision in :mod:`service.core.encoded`). Holding only
    strings, numbers and datetimes, it need not be tracked by the garbage collector.
    """

    type: str
    impact: str | int | None = None
    urgency: str | int | None = None
    likelihood: str | int | None = None
    proximity: str | int | None = None
    service: str | None = None
    category: str | None = None
    reported_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None

    def checked(self) -> Call:
        """The same call with every constraint of :class:`Call` checked.

        Raises:
            msgspec.ValidationError: A value a :class:`Call` refuses, naming the field.
        """
        return msgspec.convert(self, Call, from_attributes=True)
