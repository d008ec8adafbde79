"""Scoring: call + table set -> decision. Pure; ``now`` is passed in.

A :class:`Scorer` compiles a validated :class:`TableSet` into lookup dictionaries once. Everything
about a decision except its timestamps depends only on the call's level and routing fields, so
that part is memoised per distinct input; a batch of similar calls costs a dict lookup each.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from service.core.calls import Call, LevelInput
from service.core.decision import Decision, LevelRef, PriorityRef, Step
from service.core.tables import Level, PriorityLevel, TableSet, Trigger
from service.errors import InvalidCall

__all__ = ["Scorer"]

_CACHE_LIMIT = 65_536


class _Scale:
    """One ordered scale (impact, urgency, likelihood, proximity): name or rank -> level."""

    def __init__(self, kind: str, levels: list[Level]) -> None:
        self.kind = kind
        self.by_key: dict[str | int, LevelRef] = {}
        for lv in sorted(levels, key=lambda x: x.level):
            ref = LevelRef(name=lv.name, level=lv.level)
            self.by_key[lv.name] = ref
            self.by_key[lv.level] = ref
        self.allowed = [k for k in self.by_key if isinstance(k, str)]

    def resolve(self, field: str, value: LevelInput) -> LevelRef:
        ref = self.by_key.get(value)
        if ref is None:
            ranks = [k for k in self.by_key if isinstance(k, int)]
            shown = f"'{value}'" if isinstance(value, str) else str(value)
            raise InvalidCall(
                field,
                f"unknown {self.kind} {shown}",
                [*self.allowed, f"or levels {min(ranks)}-{max(ranks)}"],
            )
        return ref


class _Resolved(NamedTuple):
    """Everything in a decision that does not depend on time."""

    call_type: str
    workflow: str
    trigger: Trigger
    priority: PriorityRef
    impact: LevelRef
    urgency: LevelRef
    team: str
    response: timedelta
    resolve: timedelta
    explanation: tuple[Step, ...]


def _iso(value: timedelta) -> str:
    """``PT4H``, ``P2D``, ``P1DT2H30M``: the way the tables write durations."""
    days, rest = value.days, int(value.seconds)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + date + (f"T{time}" if time else "") if date or time else "PT0S"


def _given(value: LevelInput) -> str:
    return f"'{value}'" if isinstance(value, str) else f"level {value}"


class Scorer:
    """Scores calls against one table set. Build it once per loaded set; it is immutable."""

    def __init__(self, tables: TableSet, table_hash: str) -> None:
        self.tables = tables
        self.version = tables.version
        self.table_hash = table_hash
        lv = tables.levels
        self.impact = _Scale("impact", lv.impact)
        self.urgency = _Scale("urgency", lv.urgency)
        self.likelihood = _Scale("likelihood", tables.risk.likelihood)
        self.proximity = _Scale("proximity", tables.risk.proximity)
        self.priorities: dict[str, PriorityLevel] = {p.name: p for p in lv.priority}
        self.call_types = {c.name: c for c in tables.call_types.call_type}
        self.services = {s.name: s for s in tables.services.service}
        self._cache: dict[tuple[object, ...], _Resolved] = {}

    def score(self, call: Call, now: datetime) -> Decision:
        """The decision for ``call``; raises :class:`InvalidCall` naming the offending field."""
        key = (
            call.type,
            call.impact,
            call.urgency,
            call.likelihood,
            call.proximity,
            call.service,
            call.category,
        )
        r = self._cache.get(key)
        if r is None:
            r = self._resolve(call)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = r
        reported = call.reported_at or now
        return Decision(
            call_type=r.call_type,
            workflow=r.workflow,
            trigger=r.trigger,
            priority=r.priority,
            impact=r.impact,
            urgency=r.urgency,
            team=r.team,
            reported_at=reported,
            response_by=reported + r.response,
            resolve_by=reported + r.resolve,
            table_version=self.version,
            table_hash=self.table_hash,
            explanation=r.explanation,
        )

    def score_many(self, calls: list[Call], now: datetime) -> list[Decision]:
        """Decisions in call order; an error names the call's index, e.g. ``calls[3].urgency``."""
        out = []
        for i, call in enumerate(calls):
            try:
                out.append(self.score(call, now))
            except InvalidCall as exc:
                raise exc.at(f"calls[{i}]") from None
        return out

    def _resolve(self, call: Call) -> _Resolved:
        steps: list[Step] = []
        call_type = self.call_types.get(call.type)
        if call_type is None:
            raise InvalidCall("type", f"unknown call type '{call.type}'", list(self.call_types))
        steps.append(
            Step(
                input=f"type='{call.type}'",
                rule=f"call_types.toml: {call_type.name}",
                result=f"workflow '{call_type.workflow}', {call_type.trigger.value}",
            )
        )
        service = None
        if call.service is not None:
            service = self.services.get(call.service)
            if service is None:
                raise InvalidCall(
                    "service", f"unknown service '{call.service}'", list(self.services)
                )
        impact = self._impact(call, service, steps)
        urgency = self._urgency(call, call_type.trigger, steps)
        if call.impact is not None:
            impact = self._floor(impact, service, steps)
        priority = self.priorities[self.tables.matrix.matrix[impact.name][urgency.name]]
        steps.append(
            Step(
                input=f"impact '{impact.name}', urgency '{urgency.name}'",
                rule=f"matrix.toml: matrix.{impact.name}.{urgency.name}",
                result=f"priority {priority.name} ({priority.label})",
            )
        )
        team = self._route(call, service, steps)
        steps.append(
            Step(
                input=f"priority {priority.name}",
                rule=f"levels.toml: {priority.name} targets",
                result=f"respond within {_iso(priority.response)}, "
                f"resolve within {_iso(priority.resolve)}",
            )
        )
        return _Resolved(
            call_type=call_type.name,
            workflow=call_type.workflow,
            trigger=call_type.trigger,
            priority=PriorityRef(name=priority.name, level=priority.level, label=priority.label),
            impact=impact,
            urgency=urgency,
            team=team,
            response=priority.response,
            resolve=priority.resolve,
            explanation=tuple(steps),
        )

    def _impact(self, call: Call, service: object, steps: list[Step]) -> LevelRef:
        if call.impact is not None:
            ref = self.impact.resolve("impact", call.impact)
            steps.append(
                Step(
                    input=f"impact={_given(call.impact)}",
                    rule="levels.toml: impact",
                    result=f"impact '{ref.name}' (level {ref.level})",
                )
            )
            return ref
        floor = getattr(service, "impact_floor", None)
        if floor is None:
            raise InvalidCall(
                "impact",
                "impact is required unless the service sets an impact floor",
                self.impact.allowed,
            )
        ref = self.impact.by_key[floor]
        steps.append(
            Step(
                input="impact not given",
                rule=f"services.toml: {call.service}.impact_floor",
                result=f"impact '{ref.name}' (level {ref.level})",
            )
        )
        return ref

    def _urgency(self, call: Call, trigger: Trigger, steps: list[Step]) -> LevelRef:
        if trigger is Trigger.REACTIVE:
            for field in ("likelihood", "proximity"):
                if getattr(call, field) is not None:
                    raise InvalidCall(
                        field,
                        f"{field} applies only to proactive call types, not '{call.type}'",
                        [c for c, t in self.call_types.items() if t.trigger is Trigger.PROACTIVE],
                    )
        if call.urgency is not None:
            ref = self.urgency.resolve("urgency", call.urgency)
            steps.append(
                Step(
                    input=f"urgency={_given(call.urgency)}",
                    rule="levels.toml: urgency",
                    result=f"urgency '{ref.name}' (level {ref.level})",
                )
            )
            return ref
        if trigger is Trigger.REACTIVE:
            raise InvalidCall("urgency", "urgency is required", self.urgency.allowed)
        if call.likelihood is None:
            raise InvalidCall(
                "likelihood",
                "likelihood is required for a proactive call without urgency",
                self.likelihood.allowed,
            )
        if call.proximity is None:
            raise InvalidCall(
                "proximity",
                "proximity is required for a proactive call without urgency",
                self.proximity.allowed,
            )
        like = self.likelihood.resolve("likelihood", call.likelihood)
        prox = self.proximity.resolve("proximity", call.proximity)
        ref = self.urgency.by_key[self.tables.risk.urgency[like.name][prox.name]]
        steps.append(
            Step(
                input=f"likelihood={_given(call.likelihood)}, proximity={_given(call.proximity)}",
                rule=f"risk.toml: urgency.{like.name}.{prox.name}",
                result=f"urgency '{ref.name}' (level {ref.level})",
            )
        )
        return ref

    def _floor(self, impact: LevelRef, service: object, steps: list[Step]) -> LevelRef:
        floor = getattr(service, "impact_floor", None)
        if floor is None:
            return impact
        floor_ref = self.impact.by_key[floor]
        raised = floor_ref.level < impact.level
        steps.append(
            Step(
                input=f"service '{getattr(service, 'name', '')}'",
                rule=f"services.toml: impact_floor '{floor}'",
                result=(
                    f"impact raised from '{impact.name}' to '{floor_ref.name}'"
                    if raised
                    else f"impact '{impact.name}' kept (at or above the floor)"
                ),
            )
        )
        return floor_ref if raised else impact

    def _route(self, call: Call, service: object, steps: list[Step]) -> str:
        matched = ", ".join(
            f"{field}={value!r}"
            for field, value in (
                ("call_type", call.type),
                ("service", call.service),
                ("category", call.category),
            )
            if value is not None
        )
        for i, route in enumerate(self.tables.routing.route):
            if (
                (route.call_type is None or route.call_type == call.type)
                and (route.service is None or route.service == call.service)
                and (route.category is None or route.category == call.category)
            ):
                steps.append(
                    Step(
                        input=matched,
                        rule=f"routing.toml: route[{i}]",
                        result=f"team '{route.team}'",
                    )
                )
                return route.team
        owner = getattr(service, "team", None)
        if owner is not None:
            steps.append(
                Step(
                    input=matched,
                    rule=f"services.toml: {call.service}.team (no route matched)",
                    result=f"team '{owner}'",
                )
            )
            return str(owner)
        team = self.tables.routing.default_team
        steps.append(
            Step(
                input=matched,
                rule="routing.toml: default_team (no route matched)",
                result=f"team '{team}'",
            )
        )
        return team
