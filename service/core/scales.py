"""Ordered scales (impact, urgency, likelihood, proximity): a caller's name or rank -> a level.

A scale is compiled once per table set; resolving a value is one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from service.core.calls import LevelInput
from service.core.decision import LevelRef
from service.core.tables import Level
from service.errors import InvalidCall

__all__ = ["Scale", "given", "iso_duration"]


class Scale:
    """One ordered scale. Level 1 is the most severe; names and ranks both resolve.

    Attributes:
        kind: What the scale measures, e.g. ``urgency``; used in messages.
        allowed: Level names, most severe first: what a caller may send by name.
        accepted: ``allowed`` followed by the ranks as text: everything a caller may send
            (a rank as a JSON number or as a string of digits).
        by_key: Name, rank or rank as text -> the resolved level.
    """

    def __init__(self, kind: str, levels: Sequence[Level]) -> None:
        self.kind = kind
        ordered = sorted(levels, key=lambda lv: lv.level)
        self.by_key: dict[str | int, LevelRef] = {}
        for lv in ordered:
            ref = LevelRef(name=lv.name, level=lv.level)
            self.by_key[lv.name] = ref
            self.by_key[lv.level] = ref
            # Ranks as text too: ticketing tools (ServiceNow) send impact "2", not 2. Names are
            # lowercase identifiers, so a digit string never shadows a name.
            self.by_key[str(lv.level)] = ref
        self.allowed: list[str] = [lv.name for lv in ordered]
        self.accepted: list[str] = [*self.allowed, *(str(lv.level) for lv in ordered)]

    def resolve(self, field: str, value: LevelInput) -> LevelRef:
        """The level ``value`` names.

        Args:
            field: Where the value came from in the call, for the error location.
            value: A level name, a rank, or a rank as text (``"2"``).

        Raises:
            InvalidCall: ``value`` is neither a name nor a rank on this scale; the error lists
                every accepted name and rank.
        """
        ref = self.by_key.get(value)
        if ref is None:
            raise InvalidCall(field, f"unknown {self.kind} {given(value)}", self.accepted)
        return ref


def given(value: LevelInput) -> str:
    """How a caller's value reads in messages: ``'high'`` for a name, ``level 2`` for a rank."""
    return f"'{value}'" if isinstance(value, str) else f"level {value}"


def iso_duration(value: timedelta) -> str:
    """``PT4H``, ``P2D``, ``P1DT2H30M``: a duration written the way the tables write it."""
    days, rest = value.days, int(value.seconds)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not (date or time):
        return "PT0S"
    return "P" + date + (f"T{time}" if time else "")
