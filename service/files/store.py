"""The table sets in force: which version scores a call now, and swapping sets atomically.

A reload builds a whole new :class:`Versions` value and replaces the reference in one assignment,
so a request sees either the old sets or the new ones, never a mix. The active set is picked by
time on every request (a bisect over a handful of dates), so a set whose ``effective_from`` comes
takes over at that moment without a reload or a restart.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from service.core.scoring import Scorer
from service.core.validation import Problem
from service.errors import NoTableInForce, NotFound
from service.files.loader import LoadedSet

__all__ = ["TableStore", "Versions"]


@dataclass(frozen=True)
class Versions:
    """An immutable snapshot of all loaded sets, oldest effective date first."""

    sets: tuple[LoadedSet, ...]
    scorers: dict[str, Scorer] = field(default_factory=dict)
    starts: tuple[datetime, ...] = ()

    @classmethod
    def of(cls, sets: Sequence[LoadedSet], previous: Versions | None = None) -> Versions:
        """Build the snapshot (and each set's scorer) before anyone can see it.

        Scorers of sets whose content did not change are taken from ``previous``, so a reload
        keeps their memoised lookups warm.
        """
        ordered = tuple(sorted(sets, key=lambda s: (s.tables.effective_from, s.version)))
        old = previous.scorers if previous is not None else {}
        scorers: dict[str, Scorer] = {}
        for s in ordered:
            kept = old.get(s.version)
            scorers[s.version] = (
                kept if kept is not None and kept.table_hash == s.hash else s.scorer()
            )
        return cls(
            sets=ordered,
            scorers=scorers,
            starts=tuple(s.tables.effective_from for s in ordered),
        )

    def active(self, now: datetime) -> LoadedSet:
        """The newest set whose effective date has come.

        Raises:
            NoTableInForce: Every set is still to come. Standing in with the earliest would put
                it in force (and re-score the queues with it) before its date.
        """
        i = bisect.bisect_right(self.starts, now) - 1
        if i < 0:
            first = self.sets[0]
            raise NoTableInForce(
                [
                    Problem(
                        file=f"{Path(first.path).name}/set.toml",
                        key="effective_from",
                        reason=(
                            f"no table set is in force at {now.isoformat()}: the earliest, "
                            f"{first.version}, takes effect {self.starts[0].isoformat()}; "
                            "a set never comes into force before its effective_from"
                        ),
                    )
                ]
            )
        return self.sets[i]

    def next_change(self, now: datetime) -> datetime | None:
        """When the next set becomes active, or None when no set is still to come."""
        i = bisect.bisect_right(self.starts, now)
        return self.starts[i] if i < len(self.starts) else None

    def get(self, version: str) -> LoadedSet:
        """The set named ``version``; :class:`NotFound` lists the known ones."""
        for s in self.sets:
            if s.version == version:
                return s
        raise NotFound(f"unknown table version '{version}'; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [s.version for s in self.sets]

    def identity(self) -> tuple[tuple[str, str], ...]:
        """(version, hash) of every set: equal identities mean equal content."""
        return tuple((s.version, s.hash) for s in self.sets)


class TableStore:
    """Holds the current :class:`Versions`; the only mutable part is one reference.

    Readers take ``self._versions`` once per request and use only that snapshot, so a swap in
    another thread or task never shows them half of a reload.
    """

    def __init__(self, sets: Sequence[LoadedSet]) -> None:
        self._versions = Versions.of(sets)
        self.generation = 0
        """How many times the sets were swapped since start; a cheap change check."""

    @property
    def versions(self) -> Versions:
        return self._versions

    def replace(self, sets: Sequence[LoadedSet] | Versions) -> Versions:
        """Swap in new sets: built completely first, then published by one assignment."""
        new = sets if isinstance(sets, Versions) else Versions.of(sets, self._versions)
        self._versions = new
        self.generation += 1
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
