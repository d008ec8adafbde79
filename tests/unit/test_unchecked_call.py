"""Decoding a batch unchecked and checking each new set of values once accepts, refuses and
answers exactly what decoding it with :class:`Call`'s constraints does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.priority import BatchRequest, UncheckedBatch
from service.core.calls import Call, UncheckedCall
from service.core.scoring import Scorer
from service.errors import InvalidCall
from service.files.loader import LoadedSet
from tests.unit.conftest import NOW

FIXTURES = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=400
)


def test_an_unchecked_call_has_the_fields_of_a_call_in_their_order_with_their_defaults() -> None:
    # A field added to Call and not here would be refused by the fast path's decoder (unknown
    # field) or, worse, silently read differently: the two must change together.
    def shape(cls: type[msgspec.Struct]) -> list[tuple[str, Any]]:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        return [(f.name, f.default) for f in info.fields]

    assert shape(UncheckedCall) == shape(Call)
    assert msgspec.json.schema(UncheckedCall)["$defs"]["UncheckedCall"]["required"] == ["type"]


# Values near each constraint's edge, and of every JSON kind.
_NAMES = st.sampled_from(
    [
        *("incident", "risk", "wish", "email", "erp", "a", "a" * 63, "a" * 64, "Incident"),
        *("e-mail", "", "1abc", "x_1", "é", "incident\n", "incident\u0000", " incident"),
    ]
)
_LEVELS = st.one_of(
    st.sampled_from(["high", "group", "department", "1", "2", "x" * 64, "x" * 65, "", "low"]),
    st.integers(min_value=-3, max_value=1003),
    st.sampled_from([0, 1, 1000, 1001, 2**63, -(2**63), 10**30]),
)
_CATEGORIES = st.one_of(st.text(max_size=3), st.sampled_from(["x" * 200, "x" * 201, "hardware"]))
_ANY = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2)
)
_TIMES = st.sampled_from(
    [
        *("2026-11-30T09:00:00Z", "2026-11-30T09:00:00+01:00", "2026-11-30T09:00:00"),
        *("yesterday", "9999-12-31T23:59:59Z", "2026-11-30T09:00:00.123456Z"),
    ]
)
_FIELDS = {
    "type": _NAMES,
    "impact": _LEVELS,
    "urgency": _LEVELS,
    "likelihood": _LEVELS,
    "proximity": _LEVELS,
    "service": _NAMES,
    "category": _CATEGORIES,
    "reported_at": _TIMES,
}
_GOOD_CALLS = [
    {"type": "incident", "impact": "group", "urgency": "high", "service": "email"},
    {"type": "incident", "impact": 1, "urgency": 2, "reported_at": "2026-11-30T09:00:00Z"},
    {"type": "risk", "impact": 2, "likelihood": "likely", "proximity": "near"},
    {"type": "wish", "impact": "user", "urgency": "low", "category": "hardware"},
]


@st.composite
def _one_off(draw: st.DrawFn) -> dict[str, Any]:
    """A good call with one field changed, dropped or added: most are still scored."""
    call = dict(draw(st.sampled_from(_GOOD_CALLS)))
    name = draw(st.sampled_from([*_FIELDS, "colour"]))
    if name == "colour":
        call[name] = "red"
    elif draw(st.booleans()) and name in call:
        del call[name]
    else:
        call[name] = draw(st.one_of(_FIELDS[name], _ANY))
    return call


_random_calls = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.one_of(values, _ANY) for name, values in _FIELDS.items()},
        "colour": st.just("red"),
    },
)
_raw_calls = st.one_of(_one_off(), st.sampled_from(_GOOD_CALLS), _random_calls)


def _answer(scorer: Scorer, body: bytes, batch_type: type[Any]) -> bytes | None:
    """A batch's decisions' JSON, None when it is refused.

    How is not compared: the fast path answers only batches it scores; any other goes to
    litestar, which decodes it with :class:`BatchRequest` and answers the refusal.
    """
    try:
        calls = msgspec.json.decode(body, type=batch_type).calls
        return scorer.score_encoded(calls, NOW).body()
    except (msgspec.ValidationError, InvalidCall):
        return None


@given(st.lists(_raw_calls, min_size=0, max_size=3))
@FIXTURES
def test_unchecked_then_checked_answers_and_refuses_as_the_call_decoder_does(
    default_set: LoadedSet, raw: list[dict[str, Any]]
) -> None:
    body = msgspec.json.encode({"calls": raw})
    expected = _answer(default_set.scorer(), body, BatchRequest)
    assert _answer(default_set.scorer(), body, UncheckedBatch) == expected
    # Again with every call's other values known to the memo (a hit is never checked again):
    # only what the decoder itself checks can refuse the call now, reported_at above all.
    warm = default_set.scorer()
    known = [{k: v for k, v in c.items() if k != "reported_at"} for c in raw]
    _answer(warm, msgspec.json.encode({"calls": known}), BatchRequest)
    assert _answer(warm, body, UncheckedBatch) == expected


@pytest.mark.parametrize(
    "change",
    [
        {"reported_at": "2026-11-30T09:00:00"},  # no timezone
        {"reported_at": 1764493200},
        {"colour": "red"},
        {"urgency": 2.5},
        {"impact": True},
    ],
)
def test_on_a_memo_hit_what_the_decoder_checks_is_still_refused(
    default_set: LoadedSet, change: dict[str, Any]
) -> None:
    # A known call's values are not checked again: what is not part of the memo key (its
    # reported_at) or not a value (an unknown field, a wrong kind) must be the decoder's.
    warm = default_set.scorer()
    good = msgspec.structs.asdict(_GOOD)
    assert _answer(warm, msgspec.json.encode({"calls": [good]}), UncheckedBatch) is not None
    body = msgspec.json.encode({"calls": [good | change]})
    assert _answer(default_set.scorer(), body, BatchRequest) is None
    assert _answer(warm, body, UncheckedBatch) is None


def test_a_batch_decodes_unchecked_only_within_the_batch_limits() -> None:
    for calls in ([], [{"type": "wish"}] * 10_001):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(msgspec.json.encode({"calls": calls}), type=UncheckedBatch)


_GOOD = UncheckedCall(type="incident", impact="group", urgency="high", service="email")


@given(
    st.lists(
        st.sampled_from(
            [
                _GOOD,
                msgspec.structs.replace(_GOOD, reported_at=datetime(2026, 3, 1, 8, tzinfo=UTC)),
                UncheckedCall(type="risk", impact=2, likelihood="likely", proximity="near"),
                UncheckedCall(type="wish", impact="user", urgency="low", category="x" * 200),
            ]
        ),
        min_size=1,
        max_size=8,
    )
)
@FIXTURES
def test_a_batch_of_unchecked_calls_scores_to_the_bytes_of_checked_ones(
    default_set: LoadedSet, batch: list[UncheckedCall]
) -> None:
    checked = [c.checked() for c in batch]
    expected = default_set.scorer().score_encoded(checked, NOW)
    got = default_set.scorer().score_encoded(batch, NOW)
    assert got.body() == expected.body()
    assert got.calls == expected.calls and got.rows == expected.rows


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "Incident"},
        {"urgency": 0},
        {"impact": 1001},
        {"impact": "x" * 65},
        {"category": "x" * 201},
        {"service": "E-mail"},
    ],
)
def test_a_value_the_call_refuses_is_refused_every_time_it_comes(
    default_set: LoadedSet, bad: dict[str, Any]
) -> None:
    # A memo that kept a refused value, or that a good call's key let a bad one through, would
    # answer the second time.
    scorer = default_set.scorer()
    good = msgspec.structs.asdict(_GOOD)
    batch = msgspec.json.decode(
        msgspec.json.encode({"calls": [good, good | bad]}), type=UncheckedBatch
    )
    for _ in range(2):
        with pytest.raises(msgspec.ValidationError, match=next(iter(bad))):
            scorer.score_encoded(batch.calls, NOW)
    assert scorer.score_encoded(batch.calls[:1], NOW).rows
