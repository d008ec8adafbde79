"""Properties of scoring that must hold for every input, checked with hypothesis."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.core import scoring
from service.core.calls import Call
from service.core.decision import Decision, LevelRef
from service.core.scoring import Scorer
from service.core.validation import validate
from service.errors import InvalidCall
from service.files.loader import LoadedSet, content_hash
from tests.unit.conftest import NOW
from tests.unit.strategies import (
    CALL_TYPES,
    IMPACTS,
    LIKELIHOODS,
    PROXIMITIES,
    SERVICES,
    URGENCIES,
    calls,
    grid_sets,
    numbered_set,
)

FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def _outcome(scorer: Scorer, call: Call, now: datetime = NOW) -> Decision | str:
    try:
        return scorer.score(call, now)
    except InvalidCall as exc:
        return f"InvalidCall: {exc}"


def _rank(scorer: Scorer, call: Call) -> int:
    return scorer.score(call, NOW).priority.level


@FIXTURES
@given(
    impact=st.integers(min_value=1, max_value=4),
    urgency=st.integers(min_value=1, max_value=4),
    step=st.integers(min_value=1, max_value=3),
    call_type=st.sampled_from(CALL_TYPES),
    service=st.none() | st.sampled_from(SERVICES),
)
def test_raising_impact_or_urgency_never_lowers_priority_in_the_default_set(
    scorer: Scorer, impact: int, urgency: int, step: int, call_type: str, service: str | None
) -> None:
    # Level 1 is the most severe: "raising" means a smaller level number.
    higher_impact, higher_urgency = max(1, impact - step), max(1, urgency - step)
    base = _rank(scorer, Call(type=call_type, impact=impact, urgency=urgency, service=service))
    more_impact = Call(type=call_type, impact=higher_impact, urgency=urgency, service=service)
    more_urgency = Call(type=call_type, impact=impact, urgency=higher_urgency, service=service)
    assert _rank(scorer, more_impact) <= base
    assert _rank(scorer, more_urgency) <= base


@FIXTURES
@given(
    likelihood=st.integers(min_value=1, max_value=4),
    proximity=st.integers(min_value=1, max_value=4),
    step=st.integers(min_value=1, max_value=3),
    impact=st.sampled_from(IMPACTS),
)
def test_a_likelier_or_nearer_risk_never_gets_a_lower_priority(
    scorer: Scorer, likelihood: int, proximity: int, step: int, impact: str
) -> None:
    def rank(lk: int, px: int) -> int:
        return _rank(scorer, Call(type="risk", impact=impact, likelihood=lk, proximity=px))

    base = rank(likelihood, proximity)
    assert rank(max(1, likelihood - step), proximity) <= base
    assert rank(likelihood, max(1, proximity - step)) <= base


@settings(deadline=None)
@given(grid=grid_sets(), data=st.data())
def test_raising_impact_or_urgency_never_lowers_priority_for_any_valid_matrix(
    default_set: LoadedSet, grid: list[list[int]], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(range(5)))
    tables = numbered_set(default_set.tables, grid, list(order))
    assert validate(tables) == []
    s = Scorer(tables, content_hash(tables))
    rows, cols = len(grid), len(grid[0])

    def rank(i: int, u: int) -> int:
        return _rank(s, Call(type="incident", impact=i, urgency=u))

    for i in range(1, rows + 1):
        for u in range(1, cols + 1):
            assert rank(i, u) == grid[i - 1][u - 1]
            if i > 1:
                assert rank(i - 1, u) <= rank(i, u)
            if u > 1:
                assert rank(i, u - 1) <= rank(i, u)


@settings(deadline=None)
@given(grid=grid_sets(make_monotone=False))
def test_validation_flags_exactly_the_cells_where_priority_gets_lower(
    default_set: LoadedSet, grid: list[list[int]]
) -> None:
    tables = numbered_set(default_set.tables, grid)
    rows, cols = len(grid), len(grid[0])
    expected = {
        f"matrix.i{i}.u{u}"
        for i in range(1, rows + 1)
        for u in range(1, cols + 1)
        if (i < rows and grid[i - 1][u - 1] > grid[i][u - 1])
        or (u < cols and grid[i - 1][u - 1] > grid[i - 1][u])
    }
    flagged = {p.key for p in validate(tables) if "gets lower" in p.reason}
    assert flagged == expected
    assert all(p.file == "matrix.toml" for p in validate(tables))


@FIXTURES
@given(
    impact=st.sampled_from([*IMPACTS, 1, 2, 3, 4]),
    urgency=st.sampled_from([*URGENCIES, 1, 2, 3, 4]),
    first=st.sampled_from(CALL_TYPES),
    second=st.sampled_from(CALL_TYPES),
)
def test_every_call_type_gets_the_same_priority_for_the_same_impact_and_urgency(
    scorer: Scorer, impact: str | int, urgency: str | int, first: str, second: str
) -> None:
    a = scorer.score(Call(type=first, impact=impact, urgency=urgency), NOW)
    b = scorer.score(Call(type=second, impact=impact, urgency=urgency), NOW)
    assert a.priority == b.priority
    assert (a.response_by, a.resolve_by) == (b.response_by, b.resolve_by)


@FIXTURES
@given(
    impact=st.sampled_from(IMPACTS),
    likelihood=st.sampled_from(LIKELIHOODS),
    proximity=st.sampled_from(PROXIMITIES),
    reactive=st.sampled_from(CALL_TYPES[:-1]),
)
def test_a_risk_lands_where_a_reactive_call_with_its_derived_urgency_lands(
    scorer: Scorer, impact: str, likelihood: str, proximity: str, reactive: str
) -> None:
    risk = scorer.score(
        Call(type="risk", impact=impact, likelihood=likelihood, proximity=proximity), NOW
    )
    call = scorer.score(Call(type=reactive, impact=impact, urgency=risk.urgency.name), NOW)
    assert risk.priority == call.priority


def test_every_call_type_reaches_every_priority_level(scorer: Scorer) -> None:
    every = {p.name for p in scorer.tables.levels.priority}
    for call_type in CALL_TYPES:
        reached = {
            scorer.score(Call(type=call_type, impact=i, urgency=u), NOW).priority.name
            for i in IMPACTS
            for u in URGENCIES
        }
        assert reached == every, call_type
    by_risk_table = {
        scorer.score(Call(type="risk", impact=i, likelihood=lk, proximity=px), NOW).priority.name
        for i in IMPACTS
        for lk in LIKELIHOODS
        for px in PROXIMITIES
    }
    assert by_risk_table == every


@FIXTURES
@given(call=calls())
def test_scoring_is_deterministic(default_set: LoadedSet, call: Call) -> None:
    one, other = default_set.scorer(), default_set.scorer()
    first = _outcome(one, call)
    assert _outcome(one, call) == first
    assert _outcome(other, call) == first


@FIXTURES
@given(warm_up=st.lists(calls(), max_size=30), call=calls())
def test_the_memo_never_changes_an_answer(
    default_set: LoadedSet, warm_up: list[Call], call: Call
) -> None:
    warmed = default_set.scorer()
    for earlier in warm_up:
        _outcome(warmed, earlier)
    fresh = default_set.scorer()
    assert _outcome(warmed, call) == _outcome(fresh, call)


@FIXTURES
@given(batch=st.lists(calls(valid_only=True), min_size=1, max_size=20))
def test_a_batch_gives_the_same_decisions_as_scoring_one_by_one(
    default_set: LoadedSet, batch: list[Call]
) -> None:
    s = default_set.scorer()
    assert s.score_many(batch, NOW) == [default_set.scorer().score(c, NOW) for c in batch]


def test_the_memo_stays_correct_when_it_overflows(
    default_set: LoadedSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "_CACHE_LIMIT", 3)
    small = default_set.scorer()
    shapes = [
        Call(type="incident", impact=i, urgency=u, category=f"c{n}")
        for n, (i, u) in enumerate((i, u) for i in range(1, 5) for u in range(1, 5))
    ]
    for _ in range(2):
        for call in shapes:
            assert small.score(call, NOW) == default_set.scorer().score(call, NOW)
    assert len(small._cache) <= 3


_any_level = st.none() | st.text(max_size=64) | st.integers(min_value=1, max_value=1000)
_name = st.from_regex(r"\A[a-z][a-z0-9_]{0,62}\Z")


@FIXTURES
@given(
    call=st.builds(
        Call,
        type=st.sampled_from(CALL_TYPES) | _name,
        impact=_any_level | st.sampled_from(IMPACTS),
        urgency=_any_level | st.sampled_from(URGENCIES),
        likelihood=_any_level | st.sampled_from(LIKELIHOODS),
        proximity=_any_level | st.sampled_from(PROXIMITIES),
        service=st.none() | st.sampled_from(SERVICES) | _name,
        category=st.none() | st.text(max_size=200),
        reported_at=st.none() | st.datetimes(timezones=st.timezones()),
    )
)
def test_any_call_the_api_can_decode_gets_a_decision_or_an_invalid_call(
    scorer: Scorer, call: Call
) -> None:
    # Every value here passes the Call type's own constraints, so it can arrive over HTTP. No
    # other exception may escape (it would be a 500), and each outcome must be the right one.
    outcome = _outcome(scorer, call)
    if call.type not in CALL_TYPES:
        assert outcome == (
            f"InvalidCall: unknown call type '{call.type}' - at `$.type`; "
            f"allowed: {', '.join(CALL_TYPES)}"
        )
    elif call.service is not None and call.service not in SERVICES:
        assert outcome == (
            f"InvalidCall: unknown service '{call.service}' - at `$.service`; "
            f"allowed: {', '.join(SERVICES)}"
        )
    elif isinstance(outcome, str):
        # Refused for one named field of the call, saying where (and what is allowed, if
        # anything is): ``<reason> - at `$.<field>`[; allowed: ...]``.
        fields = "impact|urgency|likelihood|proximity|reported_at"
        # DOTALL: the refused value is quoted as sent, and it may hold a newline.
        pattern = rf"InvalidCall: .+ - at `\$\.({fields})`(; allowed: .+)?"
        assert re.fullmatch(pattern, outcome, re.DOTALL)
    else:
        _assert_consistent(scorer, call, outcome)


def _unfloored(scorer: Scorer, call: Call, impact: LevelRef) -> LevelRef:
    """The impact the call gave, when the decision's is its service's floor raised above it."""
    service = scorer.services.get(call.service or "")
    if service is None or service.impact_floor is None or impact.name != service.impact_floor:
        return impact
    floor = scorer.impact.by_key[service.impact_floor]
    given = scorer.impact.resolve("impact", call.impact)  # type: ignore[arg-type]
    assert given.level >= floor.level  # never lowered to the floor
    return given


def _assert_consistent(scorer: Scorer, call: Call, decision: Decision) -> None:
    """A decision holds what the call gave and the set's own matrix, teams and targets."""
    tables = scorer.tables
    assert decision.call_type == call.type
    assert (decision.table_version, decision.table_hash) == (tables.version, scorer.table_hash)
    # The agreement rule: a given impact below the service's floor is raised to it.
    impact = decision.impact if call.impact is None else _unfloored(scorer, call, decision.impact)
    for value, ref in ((call.impact, impact), (call.urgency, decision.urgency)):
        if isinstance(value, str) and not value.isdigit():
            assert ref.name == value
        elif value is not None:
            assert ref.level == int(value)
    assert (
        decision.priority.name == tables.matrix.matrix[decision.impact.name][decision.urgency.name]
    )
    assert decision.team in {t.name for t in tables.teams.team}
    assert decision.reported_at == (call.reported_at or NOW)
    assert decision.reported_at <= decision.response_by <= decision.resolve_by
