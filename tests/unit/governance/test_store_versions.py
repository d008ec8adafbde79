"""The store picks the active set by time on every request and swaps sets atomically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.errors import NotFound
from service.files.loader import LoadedSet
from service.files.store import TableStore, Versions

SWITCH = datetime(2027, 1, 1, tzinfo=UTC)


def test_the_newest_set_whose_date_has_come_is_active_to_the_microsecond(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    store = TableStore([set_2027, set_2026])
    tick = timedelta(microseconds=1)
    assert store.active(SWITCH - tick).version == "2026.1"
    assert store.active(SWITCH).version == "2027.1"
    assert store.scorer(SWITCH - tick).version == "2026.1"
    assert store.scorer(SWITCH).version == "2027.1"


def test_before_any_date_has_come_the_oldest_set_scores(set_2026: LoadedSet) -> None:
    assert Versions.of([set_2026]).active(datetime(2020, 1, 1, tzinfo=UTC)).version == "2026.1"


def test_next_change_is_the_next_effective_date_or_none(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    v = Versions.of([set_2026, set_2027])
    assert v.next_change(datetime(2026, 6, 1, tzinfo=UTC)) == SWITCH
    assert v.next_change(SWITCH) is None


def test_a_requested_version_scores_even_when_another_is_active(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    store = TableStore([set_2026, set_2027])
    assert store.scorer(datetime(2026, 6, 1, tzinfo=UTC), "2027.1").version == "2027.1"
    with pytest.raises(NotFound) as exc:
        store.scorer(SWITCH, "2025.9")
    assert str(exc.value) == "unknown table version '2025.9'; known: 2026.1, 2027.1"


def test_replace_keeps_the_scorer_of_an_unchanged_set_and_counts_generations(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    store = TableStore([set_2026])
    before = store.versions.scorers["2026.1"]
    new = store.replace([set_2026, set_2027])
    assert new is store.versions
    assert store.versions.scorers["2026.1"] is before
    assert store.generation == 1
    assert store.versions.identity() == (
        ("2026.1", set_2026.hash),
        ("2027.1", set_2027.hash),
    )
