"""The store picks the active set by time on every request and swaps sets atomically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.errors import NoTableInForce, NotFound
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


def test_before_any_date_has_come_no_set_is_in_force_and_none_stands_in(
    set_2026: LoadedSet, set_2027: LoadedSet
) -> None:
    with pytest.raises(NoTableInForce) as exc:
        Versions.of([set_2027]).active(SWITCH - timedelta(days=32))
    assert str(exc.value) == (
        "2027.1/set.toml: effective_from: no table set is in force at 2026-11-30T00:00:00+00:00: "
        "the earliest, 2027.1, takes effect 2027-01-01T00:00:00+00:00; "
        "a set never comes into force before its effective_from"
    )
    assert exc.value.status_code == 503
    assert Versions.of([set_2027]).active(SWITCH).version == "2027.1"
    with pytest.raises(NoTableInForce):
        TableStore([set_2026, set_2027]).scorer(datetime(2025, 12, 31, tzinfo=UTC))


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
