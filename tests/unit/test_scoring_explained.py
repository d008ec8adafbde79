"""Each step of a decision's explanation, on the default USM table set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.core.calls import Call
from service.core.decision import LevelRef, PriorityRef, Step
from service.core.scoring import Scorer
from service.core.tables import Trigger
from service.files.loader import LoadedSet
from tests.unit.conftest import NOW


def _rules(scorer: Scorer, call: Call) -> list[str]:
    return [step.rule for step in scorer.score(call, NOW).explanation]


def test_an_incident_is_explained_step_by_step_from_input_to_targets(scorer: Scorer) -> None:
    decision = scorer.score(Call(type="incident", impact="department", urgency="high"), NOW)
    assert decision.explanation == (
        Step(
            input="type='incident'",
            rule="call_types.toml: incident",
            result="workflow 'incident', reactive",
        ),
        Step(
            input="impact='department'",
            rule="levels.toml: impact",
            result="impact 'department' (level 2)",
        ),
        Step(
            input="urgency='high'", rule="levels.toml: urgency", result="urgency 'high' (level 2)"
        ),
        Step(
            input="impact 'department', urgency 'high'",
            rule="matrix.toml: matrix.department.high",
            result="priority P2 (high)",
        ),
        Step(
            input="call_type='incident'",
            rule="routing.toml: default_team (no route matched)",
            result="team 'service_desk'",
        ),
        Step(
            input="priority P2",
            rule="levels.toml: P2 targets",
            result="respond within PT30M, resolve within PT8H",
        ),
    )
    assert decision.priority == PriorityRef(name="P2", level=2, label="high")
    assert decision.impact == LevelRef(name="department", level=2)
    assert decision.urgency == LevelRef(name="high", level=2)
    assert (decision.call_type, decision.workflow, decision.trigger) == (
        "incident",
        "incident",
        Trigger.REACTIVE,
    )


def test_the_call_type_step_names_the_usm_workflow_and_trigger(scorer: Scorer) -> None:
    first = scorer.score(Call(type="change", impact="group", urgency="normal"), NOW).explanation[0]
    assert first == Step(
        input="type='change'", rule="call_types.toml: change", result="workflow 'rfc', reactive"
    )


def test_impact_given_by_level_resolves_to_the_same_level_as_by_name(scorer: Scorer) -> None:
    by_name = scorer.score(Call(type="incident", impact="group", urgency="low"), NOW)
    by_level = scorer.score(Call(type="incident", impact=3, urgency="low"), NOW)
    assert by_level.impact == by_name.impact == LevelRef(name="group", level=3)
    assert by_level.priority == by_name.priority
    assert by_level.explanation[1] == Step(
        input="impact=level 3", rule="levels.toml: impact", result="impact 'group' (level 3)"
    )


def test_urgency_given_by_level_resolves_to_the_same_level_as_by_name(scorer: Scorer) -> None:
    by_name = scorer.score(Call(type="incident", impact="user", urgency="immediate"), NOW)
    by_level = scorer.score(Call(type="incident", impact="user", urgency=1), NOW)
    assert by_level.urgency == by_name.urgency == LevelRef(name="immediate", level=1)
    assert by_level.priority.name == by_name.priority.name == "P3"
    assert by_level.explanation[2] == Step(
        input="urgency=level 1",
        rule="levels.toml: urgency",
        result="urgency 'immediate' (level 1)",
    )


def test_a_risk_takes_its_urgency_from_likelihood_and_proximity(scorer: Scorer) -> None:
    call = Call(type="risk", impact="department", likelihood="likely", proximity="imminent")
    decision = scorer.score(call, NOW)
    assert decision.trigger is Trigger.PROACTIVE
    assert decision.urgency == LevelRef(name="high", level=2)
    assert decision.priority.name == "P2"
    assert decision.explanation[2] == Step(
        input="likelihood='likely', proximity='imminent'",
        rule="risk.toml: urgency.likely.imminent",
        result="urgency 'high' (level 2)",
    )


def test_a_risk_accepts_likelihood_and_proximity_by_level(scorer: Scorer) -> None:
    by_level = scorer.score(Call(type="risk", impact=2, likelihood=4, proximity=1), NOW)
    assert by_level.urgency == LevelRef(name="normal", level=3)
    assert by_level.explanation[2].input == "likelihood=level 4, proximity=level 1"
    assert by_level.explanation[2].rule == "risk.toml: urgency.unlikely.imminent"


def test_a_risk_may_give_its_urgency_directly(scorer: Scorer) -> None:
    decision = scorer.score(Call(type="risk", impact="group", urgency="immediate"), NOW)
    assert decision.urgency.name == "immediate"
    assert decision.priority.name == "P2"
    assert decision.explanation[2].rule == "levels.toml: urgency"


def test_the_service_floor_raises_an_impact_below_it(scorer: Scorer) -> None:
    call = Call(type="incident", impact="user", urgency="high", service="email")
    decision = scorer.score(call, NOW)
    assert decision.impact == LevelRef(name="department", level=2)
    assert decision.priority.name == "P2"
    assert decision.explanation[3] == Step(
        input="service 'email'",
        rule="services.toml: email.impact_floor 'department'",
        result="impact raised from 'user' to 'department'",
    )
    assert decision.explanation[4].rule == "matrix.toml: matrix.department.high"


def test_the_service_floor_keeps_an_impact_at_or_above_it(scorer: Scorer) -> None:
    for given in ("department", "organisation"):
        call = Call(type="incident", impact=given, urgency="high", service="email")
        decision = scorer.score(call, NOW)
        assert decision.impact.name == given
        assert decision.explanation[3] == Step(
            input="service 'email'",
            rule="services.toml: email.impact_floor 'department'",
            result=f"impact '{given}' kept (at or above the floor)",
        )


def test_the_service_floor_supplies_the_impact_when_the_call_leaves_it_out(
    scorer: Scorer,
) -> None:
    decision = scorer.score(Call(type="incident", urgency="normal", service="payroll"), NOW)
    assert decision.impact == LevelRef(name="group", level=3)
    assert decision.explanation[1] == Step(
        input="impact not given",
        rule="services.toml: payroll.impact_floor",
        result="impact 'group' (level 3)",
    )
    # The floor supplied the impact, so it is not applied a second time.
    assert [s.rule for s in decision.explanation].count("levels.toml: impact") == 0
    assert len(decision.explanation) == 6


def test_a_service_without_a_floor_adds_no_floor_step(scorer: Scorer) -> None:
    rules = _rules(scorer, Call(type="incident", impact="user", urgency="low", service="website"))
    assert not any("impact_floor" in rule for rule in rules)


def test_the_first_matching_route_wins(scorer: Scorer) -> None:
    # route[0] (category security) and route[1] (call_type change) both match: the first wins.
    call = Call(type="change", impact="group", urgency="normal", category="security")
    decision = scorer.score(call, NOW)
    assert decision.team == "security"
    assert decision.explanation[-2] == Step(
        input="call_type='change', category='security'",
        rule="routing.toml: route[0]",
        result="team 'security'",
    )


def test_a_route_on_call_type_beats_the_services_owner(scorer: Scorer) -> None:
    call = Call(type="wish", impact="user", urgency="low", service="erp")
    decision = scorer.score(call, NOW)
    assert decision.team == "change_advisory"
    assert decision.explanation[-2].rule == "routing.toml: route[2]"


def test_without_a_matching_route_the_services_owning_team_handles_the_call(
    scorer: Scorer,
) -> None:
    call = Call(type="incident", impact="user", urgency="low", service="erp")
    decision = scorer.score(call, NOW)
    assert decision.team == "applications"
    assert decision.explanation[-2] == Step(
        input="call_type='incident', service='erp'",
        rule="services.toml: erp.team (no route matched)",
        result="team 'applications'",
    )


def test_without_a_route_or_a_service_the_default_team_handles_the_call(scorer: Scorer) -> None:
    call = Call(type="service_request", impact="user", urgency="low", category="laptop")
    decision = scorer.score(call, NOW)
    assert decision.team == "service_desk"
    # No route names 'laptop', so it could not have changed the team: the step leaves it out.
    assert decision.explanation[-2] == Step(
        input="call_type='service_request'",
        rule="routing.toml: default_team (no route matched)",
        result="team 'service_desk'",
    )


def test_targets_count_from_the_reported_time(scorer: Scorer) -> None:
    reported = datetime(2026, 2, 27, 23, 50, tzinfo=UTC)
    call = Call(type="incident", impact="group", urgency="high", reported_at=reported)
    decision = scorer.score(call, NOW)
    assert decision.priority.name == "P3"
    assert decision.reported_at == reported
    assert decision.response_by == reported + timedelta(hours=2)
    assert decision.resolve_by == reported + timedelta(days=2)
    assert decision.explanation[-1] == Step(
        input="priority P3",
        rule="levels.toml: P3 targets",
        result="respond within PT2H, resolve within P2D",
    )


def test_targets_count_from_now_when_the_call_has_no_reported_time(scorer: Scorer) -> None:
    decision = scorer.score(Call(type="incident", impact=1, urgency=1), NOW)
    assert decision.reported_at == NOW
    assert decision.response_by == NOW + timedelta(minutes=15)
    assert decision.resolve_by == NOW + timedelta(hours=4)


def test_every_decision_names_the_table_version_and_content_hash(
    scorer: Scorer, default_set: LoadedSet
) -> None:
    decision = scorer.score(Call(type="incident", impact=4, urgency=4), NOW)
    assert decision.table_version == default_set.version == "2026.1"
    assert decision.table_hash == default_set.hash
    assert decision.table_hash.startswith("sha256:")


def test_the_planning_priority_writes_day_targets_in_iso_form(scorer: Scorer) -> None:
    decision = scorer.score(Call(type="wish", impact="user", urgency="low"), NOW)
    assert decision.priority == PriorityRef(name="P5", level=5, label="planning")
    assert decision.explanation[-1].result == "respond within P2D, resolve within P20D"


def test_a_batch_is_scored_in_order_with_one_now(scorer: Scorer) -> None:
    calls = [
        Call(type="incident", impact=1, urgency=1),
        Call(type="wish", impact=4, urgency=4),
        Call(type="risk", impact=2, likelihood="possible", proximity="near"),
    ]
    decisions = scorer.score_many(calls, NOW)
    assert [d.priority.name for d in decisions] == ["P1", "P5", "P3"]
    assert {d.reported_at for d in decisions} == {NOW}


def test_categories_no_route_names_share_one_remembered_shape(scorer: Scorer) -> None:
    for n in range(100):
        scorer.score(Call(type="incident", impact=4, urgency=4, category=f"ticket {n}"), NOW)
    scorer.score(Call(type="incident", impact=4, urgency=4, category="security"), NOW)
    assert len(scorer._cache) == 2
