"""The table sets in force: which version scores a call now, and swapping sets atomically.

A reload builds a whole new :class:`Versions` value and replaces the reference in one assignment,
so a request sees either the old sets or the new ones, never a mix.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from service.core.scoring import Scorer
from service.errors import NotFound
from service.files.loader import LoadedSet

__all__ = ["TableStore", "Versions"]


@dataclass(frozen=True)
class Versions:
    """An immutable snapshot of all loaded sets, oldest effective date first."""

    sets: tuple[LoadedSet, ...]
    scorers: dict[str, Scorer] = field(default_factory=dict)
    starts: tuple[datetime, ...] = ()

    @classmethod
    def of(cls, sets: Sequence[LoadedSet]) -> Versions:
        ordered = tuple(sorted(sets, key=lambda s: (s.tables.effective_from, s.version)))
        return cls(
            sets=ordered,
            scorers={s.version: s.scorer() for s in ordered},
            starts=tuple(s.tables.effective_from for s in ordered),
        )

    def active(self, now: datetime) -> LoadedSet:
        """The newest set whose effective date has come (the oldest if none has yet)."""
        i = bisect.bisect_right(self.starts, now) - 1
        return self.sets[max(i, 0)]

    def get(self, version: str) -> LoadedSet:
        for s in self.sets:
            if s.version == version:
                return s
        raise NotFound(f"unknown table version '{version}'; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [s.version for s in self.sets]


class TableStore:
    """Holds the current :class:`Versions`; the only mutable part is one reference."""

    def __init__(self, sets: Sequence[LoadedSet]) -> None:
        self._versions = Versions.of(sets)

    @property
    def versions(self) -> Versions:
        return self._versions

    def replace(self, sets: Sequence[LoadedSet]) -> Versions:
        new = Versions.of(sets)
        self._versions = new
        return new

    def active(self, now: datetime) -> LoadedSet:
        return self._versions.active(now)

    def scorer(self, now: datetime, version: str | None = None) -> Scorer:
        """The scorer for ``version``, or for the set active at ``now``."""
        v = self._versions
        if version is None:
            return v.scorers[v.active(now).version]
        scorer = v.scorers.get(version)
        if scorer is None:
            v.get(version)  # raises NotFound with the known versions
        return v.scorers[version]
