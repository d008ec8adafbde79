"""Refusals: each bad field gets an exact message naming the field and what is allowed."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from service.core.calls import Call
from service.core.scoring import Scorer
from service.core.validation import validate
from service.errors import InvalidCall
from service.files.loader import LoadedSet
from tests.unit.conftest import NOW

IMPACTS = "organisation, department, group, user, 1, 2, 3, 4"
URGENCIES = "immediate, high, normal, low, 1, 2, 3, 4"
LIKELIHOODS = "almost_certain, likely, possible, unlikely, 1, 2, 3, 4"
PROXIMITIES = "imminent, near, medium, distant, 1, 2, 3, 4"
CALL_TYPES = "incident, service_request, change, wish, risk"
SERVICES = "workplace, email, network, erp, payroll, website"

REFUSALS = {
    "unknown call type": (
        Call(type="incidnet", impact="user", urgency="low"),
        f"unknown call type 'incidnet' - at `$.type`; allowed: {CALL_TYPES}",
    ),
    "unknown impact name": (
        Call(type="incident", impact="everyone", urgency="low"),
        f"unknown impact 'everyone' - at `$.impact`; allowed: {IMPACTS}",
    ),
    "unknown impact level": (
        Call(type="incident", impact=5, urgency="low"),
        f"unknown impact level 5 - at `$.impact`; allowed: {IMPACTS}",
    ),
    "unknown urgency name": (
        Call(type="incident", impact="user", urgency="hgih"),
        f"unknown urgency 'hgih' - at `$.urgency`; allowed: {URGENCIES}",
    ),
    "unknown urgency level": (
        Call(type="incident", impact="user", urgency=9),
        f"unknown urgency level 9 - at `$.urgency`; allowed: {URGENCIES}",
    ),
    "likelihood on a reactive call": (
        Call(type="incident", impact="user", urgency="low", likelihood="likely"),
        "likelihood applies only to proactive call types (risk), not to 'incident'; "
        "leave it out - at `$.likelihood`",
    ),
    "proximity on a reactive call": (
        Call(type="change", impact="user", urgency="low", proximity="near"),
        "proximity applies only to proactive call types (risk), not to 'change'; "
        "leave it out - at `$.proximity`",
    ),
    "missing urgency": (
        Call(type="incident", impact="user"),
        f"urgency is required - at `$.urgency`; allowed: {URGENCIES}",
    ),
    "missing impact without a service floor": (
        Call(type="incident", urgency="low", service="website"),
        "impact is required unless the service sets an impact floor - at `$.impact`; "
        f"allowed: {IMPACTS}",
    ),
    "missing impact without a service": (
        Call(type="incident", urgency="low"),
        "impact is required unless the service sets an impact floor - at `$.impact`; "
        f"allowed: {IMPACTS}",
    ),
    "risk without urgency or likelihood": (
        Call(type="risk", impact="user", proximity="near"),
        "likelihood is required for a proactive call without urgency - at `$.likelihood`; "
        f"allowed: {LIKELIHOODS}",
    ),
    "risk without urgency or proximity": (
        Call(type="risk", impact="user", likelihood="likely"),
        "proximity is required for a proactive call without urgency - at `$.proximity`; "
        f"allowed: {PROXIMITIES}",
    ),
    "risk with urgency and likelihood": (
        Call(type="risk", impact="user", urgency="low", likelihood="likely", proximity="near"),
        "give either urgency or likelihood and proximity, not both - at `$.likelihood`",
    ),
    "unknown likelihood": (
        Call(type="risk", impact="user", likelihood="sure", proximity="near"),
        f"unknown likelihood 'sure' - at `$.likelihood`; allowed: {LIKELIHOODS}",
    ),
    "unknown proximity level": (
        Call(type="risk", impact="user", likelihood="likely", proximity=0),
        f"unknown proximity level 0 - at `$.proximity`; allowed: {PROXIMITIES}",
    ),
    "unknown service": (
        Call(type="incident", impact="user", urgency="low", service="mail"),
        f"unknown service 'mail' - at `$.service`; allowed: {SERVICES}",
    ),
}


@pytest.mark.parametrize(("call", "message"), REFUSALS.values(), ids=list(REFUSALS))
def test_a_bad_call_is_refused_with_the_field_and_the_allowed_values(
    scorer: Scorer, call: Call, message: str
) -> None:
    with pytest.raises(InvalidCall) as caught:
        scorer.score(call, NOW)
    assert str(caught.value) == message


def test_the_error_carries_field_reason_and_allowed_values_separately(scorer: Scorer) -> None:
    with pytest.raises(InvalidCall) as caught:
        scorer.score(Call(type="incident", impact="user", urgency="hgih"), NOW)
    assert caught.value.field == "urgency"
    assert caught.value.reason == "unknown urgency 'hgih'"
    assert caught.value.allowed == URGENCIES.split(", ")
    assert caught.value.status_code == 422


def test_a_batch_error_names_the_index_of_the_first_bad_call(scorer: Scorer) -> None:
    calls = [
        Call(type="incident", impact="user", urgency="low"),
        Call(type="incident", impact="user", urgency="low"),
        Call(type="incident", impact="user", urgency="hgih"),
        Call(type="incident", impact="nobody", urgency="low"),
    ]
    with pytest.raises(InvalidCall) as caught:
        scorer.score_many(calls, NOW)
    assert caught.value.field == "calls[2].urgency"
    assert str(caught.value) == (
        f"unknown urgency 'hgih' - at `$.calls[2].urgency`; allowed: {URGENCIES}"
    )


def test_a_batch_error_on_the_first_call_names_index_zero(scorer: Scorer) -> None:
    with pytest.raises(InvalidCall) as caught:
        scorer.score_many([Call(type="nope", impact=1, urgency=1)], NOW)
    assert (
        str(caught.value)
        == f"unknown call type 'nope' - at `$.calls[0].type`; allowed: {CALL_TYPES}"
    )


def test_a_refused_call_is_not_remembered_as_valid(scorer: Scorer) -> None:
    bad = Call(type="incident", impact="user", urgency="hgih")
    for _ in range(2):
        with pytest.raises(InvalidCall):
            scorer.score(bad, NOW)


def test_allowed_values_are_listed_most_severe_first_whatever_the_file_order(
    default_set: LoadedSet,
) -> None:
    levels = default_set.tables.levels
    shuffled = msgspec.structs.replace(
        default_set.tables,
        levels=msgspec.structs.replace(levels, urgency=list(reversed(levels.urgency))),
    )
    assert validate(shuffled) == []
    with pytest.raises(InvalidCall) as caught:
        Scorer(shuffled, "sha256:test").score(Call(type="incident", impact=1, urgency="x"), NOW)
    assert caught.value.allowed == URGENCIES.split(", ")


def test_a_reported_time_that_puts_targets_past_year_9999_is_refused(scorer: Scorer) -> None:
    reported = datetime(9999, 12, 31, tzinfo=UTC)
    call = Call(type="wish", impact="user", urgency="low", reported_at=reported)
    with pytest.raises(InvalidCall) as caught:
        scorer.score_many([call], NOW)
    assert str(caught.value) == (
        "reported_at 9999-12-31T00:00:00+00:00 puts the P5 targets after the year 9999"
        " - at `$.calls[0].reported_at`"
    )
