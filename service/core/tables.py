"""Types of a table set: the files under ``tables/<version>/`` decoded into one value.

Each class maps to one file (``set.toml``, ``levels.toml``, ...); :class:`TableSet` bundles them.
Structural rules (types, ranges, unknown keys) live here as msgspec constraints; the rules that
need the whole set (monotonic matrix, known teams, ...) live in :mod:`service.core.validation`.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Annotated, Literal

import msgspec

from service.core.base import Base, Name, PositiveInt, ShortText, Text
from service.core.sources import SourcesFile

__all__ = [
    "FILES",
    "OPTIONAL_FILES",
    "CallType",
    "CallTypesFile",
    "Handler",
    "Level",
    "LevelsFile",
    "LogHandler",
    "MatrixFile",
    "PriorityLevel",
    "PythonHandler",
    "RiskFile",
    "Route",
    "RoutingFile",
    "Service",
    "ServicesFile",
    "SetFile",
    "TableSet",
    "Team",
    "TeamsFile",
    "Trigger",
    "WebhookHandler",
]

PriorityName = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$", examples=["P1"]),
]
Version = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["2026.1"]),
]
Duration = Annotated[
    timedelta,
    msgspec.Meta(description="ISO 8601 duration, e.g. PT30M, PT4H, P2D.", examples=["PT4H"]),
]
EffectiveFrom = Annotated[datetime, msgspec.Meta(tz=True)]


class Trigger(enum.StrEnum):
    """Who raises a call: the customer (reactive) or the provider itself (proactive)."""

    REACTIVE = "reactive"
    PROACTIVE = "proactive"

    @property
    def is_proactive(self) -> bool:
        """Proactive calls (risks) may derive their urgency from likelihood and proximity."""
        return self is Trigger.PROACTIVE


class Level(Base):
    """One impact, urgency, likelihood or proximity level. Level 1 is the most severe."""

    name: Name
    """Identifier used in calls and in the other files."""
    level: PositiveInt
    """Rank; 1 is the most severe. Callers may send this number instead of the name."""
    description: Text = ""
    """What the level means, in the words of the service agreements."""


class PriorityLevel(Base):
    """One priority level with its agreed targets. Level 1 is handled first."""

    name: PriorityName
    """Short name, e.g. ``P1``."""
    level: PositiveInt
    """Rank; 1 is handled first."""
    label: ShortText
    """Human name, e.g. ``critical``."""
    response: Duration
    """Time from report to first response."""
    resolve: Duration
    """Time from report to resolution."""
    description: Text = ""


class SetFile(Base):
    """``set.toml``: identity of the table set."""

    version: Version
    """Unique version string; every decision names it."""
    effective_from: EffectiveFrom
    """Moment from which this set scores calls (with a timezone)."""
    title: ShortText = ""
    description: Text = ""
    rescore_on_activate: bool = True
    """Re-score queued items when this set becomes active."""


class LevelsFile(Base):
    """``levels.toml``: the impact, urgency and priority scales."""

    impact: list[Level]
    urgency: list[Level]
    priority: list[PriorityLevel]


class MatrixFile(Base):
    """``matrix.toml``: impact x urgency -> priority, one table per impact level."""

    matrix: dict[str, dict[str, str]]
    """``matrix.<impact>.<urgency> = "<priority>"``."""


class CallType(Base):
    """A kind of call and the USM workflow that handles it."""

    name: Name
    workflow: Name
    """USM workflow the call runs through."""
    trigger: Trigger
    description: Text = ""


class CallTypesFile(Base):
    """``call_types.toml``."""

    call_type: list[CallType]


class RiskFile(Base):
    """``risk.toml``: likelihood x proximity -> urgency, so a risk lands on the same matrix."""

    likelihood: list[Level]
    proximity: list[Level]
    urgency: dict[str, dict[str, str]]
    """``urgency.<likelihood>.<proximity> = "<urgency level>"``."""


class Service(Base):
    """A service from the service agreements."""

    name: Name
    team: Name
    """Owning team: handles calls on this service unless a route says otherwise."""
    impact_floor: Name | None = None
    """Agreement rule: calls on this service are never scored below this impact."""
    description: Text = ""


class ServicesFile(Base):
    """``services.toml``."""

    service: list[Service] = []


class LogHandler(Base, tag="log", tag_field="kind"):
    """Writes the item to the worker log: the default handler."""


class WebhookHandler(Base, tag="webhook", tag_field="kind"):
    """POSTs the item as JSON, signed with HMAC-SHA256, retrying with back-off."""

    url: Annotated[str, msgspec.Meta(pattern=r"^https?://", max_length=2000)]
    secret_env: Annotated[str, msgspec.Meta(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    """Environment variable holding the signing secret (secrets never live in tables)."""
    timeout: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    retries: Annotated[int, msgspec.Meta(ge=0, le=20)] = 3
    backoff: Annotated[float, msgspec.Meta(ge=0, le=3600)] = 1.0
    """Seconds before the first retry; doubles on each further retry."""


class PythonHandler(Base, tag="python", tag_field="kind"):
    """Calls an importable callable ``package.module:function`` with the item."""

    target: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]


Handler = LogHandler | WebhookHandler | PythonHandler


class Team(Base):
    """A team that receives work, and how its workers handle an item."""

    name: Name
    description: Text = ""
    handler: Handler = LogHandler()
    mode: Literal["push", "pull"] = "push"
    """``push``: workers run the handler; ``pull``: people claim items over HTTP."""


class TeamsFile(Base):
    """``teams.toml``."""

    team: list[Team]


class Route(Base):
    """A routing rule; every field given must match. The first matching rule wins."""

    team: Name
    call_type: Name | None = None
    service: Name | None = None
    category: ShortText | None = None


class RoutingFile(Base):
    """``routing.toml``: rules first, then the service's owning team, then the default team."""

    default_team: Name
    route: list[Route] = []


FILES: dict[str, type[Base]] = {
    "set.toml": SetFile,
    "levels.toml": LevelsFile,
    "matrix.toml": MatrixFile,
    "call_types.toml": CallTypesFile,
    "risk.toml": RiskFile,
    "services.toml": ServicesFile,
    "teams.toml": TeamsFile,
    "routing.toml": RoutingFile,
    "sources.toml": SourcesFile,
}
"""File name -> the type it decodes to, in the order a reader should meet them."""

OPTIONAL_FILES: frozenset[str] = frozenset({"sources.toml"})
"""Files a set may leave out: a set without ``sources.toml`` connects no ticketing tool."""


class TableSet(Base):
    """One complete, versioned table set."""

    set: SetFile
    levels: LevelsFile
    matrix: MatrixFile
    call_types: CallTypesFile
    risk: RiskFile
    services: ServicesFile
    teams: TeamsFile
    routing: RoutingFile
    sources: SourcesFile = msgspec.field(default_factory=SourcesFile)

    @property
    def version(self) -> str:
        """The set's version, from ``set.toml``."""
        return self.set.version

    @property
    def effective_from(self) -> datetime:
        """The moment the set starts scoring calls, from ``set.toml``."""
        return self.set.effective_from
