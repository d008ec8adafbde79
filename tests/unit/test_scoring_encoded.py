"""A batch scored straight to JSON answers, logs and counts exactly what one-by-one scoring does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.priority import BatchResponse
from service.core import scoring
from service.core.calls import Call
from service.core.decision import Decision
from service.core.encoded import EncodedBatch
from service.core.scoring import Scorer
from service.errors import InvalidCall
from service.files.loader import LoadedSet
from tests.unit.conftest import NOW
from tests.unit.strategies import calls

FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)

_encode = msgspec.json.encode
_AMSTERDAM = timezone(timedelta(hours=1))


def _mix() -> list[Call]:
    """What a ticketing tool sends: every call type, levels by name and by rank, services with
    and without an impact floor, routed and free categories, the same call twice, and reported
    times in UTC, with microseconds, in another offset, or left out (now)."""
    base = [
        Call(type="incident", impact="group", urgency="high", service="email"),
        Call(type="incident", impact=1, urgency=1, category="security"),
        Call(type="incident", urgency="normal", service="erp"),  # the floor gives the impact
        Call(type="service_request", impact=3, urgency="low", service="website"),
        Call(type="change", impact="department", urgency=2, category="printer on floor 3"),
        Call(type="wish", impact="user", urgency="low"),
        Call(type="risk", impact=2, likelihood="likely", proximity="near", category="security"),
        Call(type="risk", impact="organisation", urgency="immediate", service="payroll"),
    ]
    times = [
        None,
        datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 2, 27, 23, 59, 59, tzinfo=_AMSTERDAM),
    ]
    mix = [msgspec.structs.replace(c, reported_at=t) for t in times for c in base]
    return [*mix, *mix[:5], mix[9], mix[2]]  # duplicates, also non-adjacent


def _one_by_one(default_set: LoadedSet, batch: list[Call], now: datetime) -> list[Decision]:
    fresh = default_set.scorer()
    return [fresh.score(c, now) for c in batch]


def _rows(batch: EncodedBatch) -> list[list[str]]:
    return [msgspec.json.decode(r) for r in batch.rows]


def test_a_batch_answers_the_bytes_of_the_single_call_decisions(default_set: LoadedSet) -> None:
    batch = _mix()
    scorer = default_set.scorer()
    expected = _encode(BatchResponse(decisions=_one_by_one(default_set, batch, NOW)))
    assert scorer.score_encoded(batch, NOW).body() == expected
    # Warm memo, another now: still the same answers as fresh single calls.
    later = NOW + timedelta(minutes=7, microseconds=5)
    again = _encode(BatchResponse(decisions=_one_by_one(default_set, batch, later)))
    assert scorer.score_encoded(batch, later).body() == again


def test_a_batch_logs_each_call_as_encoded_and_the_row_the_single_path_logs(
    default_set: LoadedSet,
) -> None:
    batch = _mix()
    encoded = default_set.scorer().score_encoded(batch, NOW)
    assert encoded.calls == [_encode(c) for c in batch]
    assert _rows(encoded) == [
        [d.table_version, d.table_hash, d.priority.name, d.team, d.reported_at.isoformat()]
        for d in _one_by_one(default_set, batch, NOW)
    ]
    assert [p.counted for p in encoded.prototypes] == [
        (d.call_type, d.priority.name) for d in _one_by_one(default_set, batch, NOW)
    ]


def test_a_batch_scored_in_parts_is_the_batch_scored_at_once(default_set: LoadedSet) -> None:
    batch = _mix()
    scorer = default_set.scorer()
    whole = scorer.score_encoded(batch, NOW)
    parts = EncodedBatch()
    for first in range(0, len(batch), 7):
        scorer.score_encoded(batch[first : first + 7], NOW, first, parts)
    assert parts.body() == whole.body()
    assert (parts.calls, parts.rows, len(parts)) == (whole.calls, whole.rows, len(batch))


def test_an_empty_batch_is_an_empty_list(scorer: Scorer) -> None:
    assert scorer.score_encoded([], NOW).body() == b'{"decisions":[]}'


def test_a_bad_call_in_a_part_is_named_by_its_index_in_the_request(scorer: Scorer) -> None:
    batch = [Call(type="incident", impact="user", urgency="low")] * 4
    batch[2] = Call(type="incident", impact="user", urgency="hgih")
    batch[3] = Call(type="incident", impact="nobody", urgency="low")
    with pytest.raises(InvalidCall) as caught:
        scorer.score_encoded(batch[2:], NOW, first=1000)
    assert str(caught.value) == (
        "unknown urgency 'hgih' - at `$.calls[1000].urgency`; "
        "allowed: immediate, high, normal, low, 1, 2, 3, 4"
    )


def test_a_reported_time_past_year_9999_is_refused_as_one_by_one(scorer: Scorer) -> None:
    late = Call(
        type="wish", impact="user", urgency="low", reported_at=datetime(9999, 12, 31, tzinfo=UTC)
    )
    ok = Call(type="wish", impact="user", urgency="low")
    with pytest.raises(InvalidCall) as caught:
        scorer.score_encoded([ok, ok, late], NOW)
    assert str(caught.value) == (
        "reported_at 9999-12-31T00:00:00+00:00 puts the P5 targets after the year 9999"
        " - at `$.calls[2].reported_at`"
    )


def test_the_memo_stays_correct_when_it_overflows(
    default_set: LoadedSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "_CACHE_LIMIT", 3)
    small = default_set.scorer()
    batch = _mix()
    for _ in range(2):
        expected = _encode(BatchResponse(decisions=_one_by_one(default_set, batch, NOW)))
        assert small.score_encoded(batch, NOW).body() == expected
        assert small.score_encoded(batch, NOW).calls == [_encode(c) for c in batch]


@FIXTURES
@given(
    batch=st.lists(calls(), min_size=1, max_size=6),
    reported=st.none() | st.datetimes(timezones=st.timezones()),
)
def test_any_batch_gets_the_single_answers_or_the_first_refusal(
    default_set: LoadedSet, batch: list[Call], reported: datetime | None
) -> None:
    if reported is not None:  # any zone, any offset (with seconds, historically): as decoded
        batch = [*batch, msgspec.structs.replace(batch[0], reported_at=reported)]
    expected: bytes | str
    try:
        decisions = default_set.scorer().score_many(batch, NOW)
    except InvalidCall as exc:
        expected = str(exc)
    else:
        expected = _encode(BatchResponse(decisions=decisions))
    try:
        encoded = default_set.scorer().score_encoded(batch, NOW)
    except InvalidCall as exc:
        assert str(exc) == expected
    else:
        assert encoded.body() == expected
        assert [r[-1] for r in _rows(encoded)] == [
            d.reported_at.isoformat() for d in default_set.scorer().score_many(batch, NOW)
        ]
