"""Scoring: call + table set -> decision. Pure; ``now`` is passed in.

A :class:`Scorer` compiles a validated :class:`TableSet` into lookup dictionaries once. Everything
about a decision except its timestamps depends only on the call's level and routing fields, so
that part is memoised per distinct input; a batch of similar calls costs a dict lookup each.

The steps, in the order the explanation lists them:

1. call type -> workflow and trigger (``call_types.toml``);
2. impact, by name or rank (``levels.toml``), or the service's impact floor when left out;
3. urgency, by name or rank, or for a proactive call from likelihood x proximity (``risk.toml``);
4. the service's impact floor raises a given impact that is below it (``services.toml``);
5. impact x urgency -> priority (``matrix.toml``);
6. team: the first matching route, else the service's owner, else the default team;
7. response and resolution targets of the priority (``levels.toml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from service.core.calls import Call, UncheckedCall
from service.core.decision import Decision, LevelRef, PriorityRef, Step
from service.core.encoded import EncodedBatch, PrototypeMemo
from service.core.scales import Scale, given, iso_duration
from service.core.tables import CallType, PriorityLevel, Service, TableSet, Trigger
from service.errors import InvalidCall

__all__ = ["Scorer"]

_CACHE_LIMIT = 16_384
"""Distinct call shapes remembered; the memo is emptied when full.

Only valid shapes are remembered and a category counts only when a route names it, so the
shapes of one table set are bounded (types x levels x services x routed categories); the limit
caps memory (~2.6 kB a shape, ~4 kB with its JSON prototype for batches, service/core/encoded.py)
should a set have more.
"""


class Resolved(NamedTuple):
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

    def decision(
        self, reported: datetime, response_by: datetime, resolve_by: datetime, version: str,
        table_hash: str,
    ) -> Decision:  # fmt: skip
        """The decision with these times, for the set ``version`` with ``table_hash``."""
        return Decision(
            call_type=self.call_type,
            workflow=self.workflow,
            trigger=self.trigger,
            priority=self.priority,
            impact=self.impact,
            urgency=self.urgency,
            team=self.team,
            reported_at=reported,
            response_by=response_by,
            resolve_by=resolve_by,
            table_version=version,
            table_hash=table_hash,
            explanation=self.explanation,
        )


def _level_step(kind: str, value: object, ref: LevelRef, rule: str) -> Step:
    return Step(
        input=f"{kind}={value}", rule=rule, result=f"{kind} '{ref.name}' (level {ref.level})"
    )


class Scorer:
    """Scores calls against one validated table set. Build it once per loaded set.

    The tables are read-only after construction; the only state is the memo of time-free
    results, which never changes an answer (a fresh scorer and a warmed one agree).

    Args:
        tables: A set that passed :func:`service.core.validation.validate`; an unvalidated set
            may raise ``KeyError`` on a missing matrix cell.
        table_hash: The set's content hash, copied into every decision.
    """

    def __init__(self, tables: TableSet, table_hash: str) -> None:
        self.tables = tables
        self.version = tables.version
        self.table_hash = table_hash
        lv = tables.levels
        self.impact = Scale("impact", lv.impact)
        self.urgency = Scale("urgency", lv.urgency)
        self.likelihood = Scale("likelihood", tables.risk.likelihood)
        self.proximity = Scale("proximity", tables.risk.proximity)
        self.priorities: dict[str, PriorityLevel] = {p.name: p for p in lv.priority}
        self.call_types: dict[str, CallType] = {c.name: c for c in tables.call_types.call_type}
        self.services: dict[str, Service] = {s.name: s for s in tables.services.service}
        self.proactive = [c.name for c in tables.call_types.call_type if c.trigger.is_proactive]
        # Free-text categories no route names cannot change a decision: keep them out of the memo.
        self._routed = frozenset(r.category for r in tables.routing.route if r.category is not None)
        self._cache: dict[tuple[object, ...], Resolved] = {}
        self._prototypes = PrototypeMemo(self.version, table_hash, _CACHE_LIMIT)

    def score(self, call: Call, now: datetime) -> Decision:
        """The decision for one call.

        Args:
            call: The call or risk to score.
            now: The current time; targets count from ``call.reported_at`` or, without it, ``now``.

        Raises:
            InvalidCall: A field names something the table set does not know, or a required
                field is missing; the error names the field and the allowed values.
        """
        r = self.resolved(call)
        reported = call.reported_at or now
        try:
            response_by, resolve_by = reported + r.response, reported + r.resolve
        except OverflowError:
            # A reported time near year 9999 would put the targets past what a datetime holds.
            raise InvalidCall(
                "reported_at",
                f"reported_at {reported.isoformat()} puts the {r.priority.name} targets "
                "after the year 9999",
            ) from None
        return r.decision(reported, response_by, resolve_by, self.version, self.table_hash)

    def score_many(self, calls: Sequence[Call], now: datetime, first: int = 0) -> list[Decision]:
        """Decisions in call order, all with the same ``now``.

        ``first`` is the index of ``calls[0]`` in the request, when a batch is scored in parts.

        Raises:
            InvalidCall: For the first bad call, located by its index, e.g. ``calls[3].urgency``.
        """
        out = []
        for i, call in enumerate(calls, first):
            try:
                out.append(self.score(call, now))
            except InvalidCall as exc:
                raise exc.at(f"calls[{i}]") from None
        return out

    def score_encoded(
        self,
        calls: Sequence[Call | UncheckedCall],
        now: datetime,
        first: int = 0,
        into: EncodedBatch | None = None,
    ) -> EncodedBatch:
        """:meth:`score_many` straight to JSON: the same decisions, byte for byte as msgspec
        encodes them, with their decision-log rows (see :mod:`service.core.encoded`).

        ``first`` is the index of ``calls[0]`` in the request; ``into`` a batch to append to,
        when a batch is scored in parts.

        Raises:
            InvalidCall: For the first bad call, located by its index, e.g. ``calls[3].urgency``.
            msgspec.ValidationError: For the first :class:`UncheckedCall` whose values a
                :class:`Call` refuses (each distinct set of values is checked once).
        """
        return self._prototypes.score(self, calls, now, first, into)

    def memo_key(self, call: Call) -> tuple[object, ...]:
        """The memo key: the fields scoring reads, a category only when a route names it."""
        category = call.category if call.category in self._routed else None
        return (
            call.type,
            call.impact,
            call.urgency,
            call.likelihood,
            call.proximity,
            call.service,
            category,
        )

    def resolved(self, call: Call) -> Resolved:
        """Everything but the timestamps, from the memo or resolved afresh (and remembered).

        Raises:
            InvalidCall: As :meth:`score`.
        """
        key = self.memo_key(call)
        r = self._cache.get(key)
        if r is None:
            r = self._resolve(call, call.category if call.category in self._routed else None)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = r
        return r

    def _resolve(self, call: Call, category: str | None) -> Resolved:
        """Everything but the timestamps; ``category`` is the call's, if a route names it."""
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
        urgency = self._urgency(call, call_type, steps)
        if call.impact is not None and service is not None:
            impact = self._floor(impact, service, steps)
        priority = self.priorities[self.tables.matrix.matrix[impact.name][urgency.name]]
        steps.append(
            Step(
                input=f"impact '{impact.name}', urgency '{urgency.name}'",
                rule=f"matrix.toml: matrix.{impact.name}.{urgency.name}",
                result=f"priority {priority.name} ({priority.label})",
            )
        )
        team = self._route(call.type, service, category, steps)
        steps.append(
            Step(
                input=f"priority {priority.name}",
                rule=f"levels.toml: {priority.name} targets",
                result=f"respond within {iso_duration(priority.response)}, "
                f"resolve within {iso_duration(priority.resolve)}",
            )
        )
        return Resolved(
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

    def _impact(self, call: Call, service: Service | None, steps: list[Step]) -> LevelRef:
        """The impact the caller gave, or the service's floor when the caller left it out."""
        if call.impact is not None:
            ref = self.impact.resolve("impact", call.impact)
            steps.append(_level_step("impact", given(call.impact), ref, "levels.toml: impact"))
            return ref
        if service is None or service.impact_floor is None:
            raise InvalidCall(
                "impact",
                "impact is required unless the service sets an impact floor",
                self.impact.accepted,
            )
        ref = self.impact.by_key[service.impact_floor]
        steps.append(
            Step(
                input="impact not given",
                rule=f"services.toml: {service.name}.impact_floor",
                result=f"impact '{ref.name}' (level {ref.level})",
            )
        )
        return ref

    def _urgency(self, call: Call, call_type: CallType, steps: list[Step]) -> LevelRef:
        """The urgency the caller gave or, for a proactive call, likelihood x proximity."""
        risk_fields = [f for f in ("likelihood", "proximity") if getattr(call, f) is not None]
        if not call_type.trigger.is_proactive:
            if risk_fields:
                field = risk_fields[0]
                raise InvalidCall(
                    field,
                    f"{field} applies only to proactive call types "
                    f"({', '.join(self.proactive) or 'none defined'}), "
                    f"not to '{call.type}'; leave it out",
                )
            if call.urgency is None:
                raise InvalidCall("urgency", "urgency is required", self.urgency.accepted)
        if call.urgency is not None:
            if risk_fields:
                # Two sources for one value would make the answer depend on a hidden precedence.
                raise InvalidCall(
                    risk_fields[0],
                    "give either urgency or likelihood and proximity, not both",
                )
            ref = self.urgency.resolve("urgency", call.urgency)
            steps.append(_level_step("urgency", given(call.urgency), ref, "levels.toml: urgency"))
            return ref
        if call.likelihood is None:
            raise InvalidCall(
                "likelihood",
                "likelihood is required for a proactive call without urgency",
                self.likelihood.accepted,
            )
        if call.proximity is None:
            raise InvalidCall(
                "proximity",
                "proximity is required for a proactive call without urgency",
                self.proximity.accepted,
            )
        like = self.likelihood.resolve("likelihood", call.likelihood)
        prox = self.proximity.resolve("proximity", call.proximity)
        ref = self.urgency.by_key[self.tables.risk.urgency[like.name][prox.name]]
        steps.append(
            Step(
                input=f"likelihood={given(call.likelihood)}, proximity={given(call.proximity)}",
                rule=f"risk.toml: urgency.{like.name}.{prox.name}",
                result=f"urgency '{ref.name}' (level {ref.level})",
            )
        )
        return ref

    def _floor(self, impact: LevelRef, service: Service, steps: list[Step]) -> LevelRef:
        """The agreement rule: a call on the service is never below the service's floor."""
        if service.impact_floor is None:
            return impact
        floor = self.impact.by_key[service.impact_floor]
        raised = floor.level < impact.level
        steps.append(
            Step(
                input=f"service '{service.name}'",
                rule=f"services.toml: {service.name}.impact_floor '{floor.name}'",
                result=(
                    f"impact raised from '{impact.name}' to '{floor.name}'"
                    if raised
                    else f"impact '{impact.name}' kept (at or above the floor)"
                ),
            )
        )
        return floor if raised else impact

    def _route(
        self, call_type: str, service: Service | None, category: str | None, steps: list[Step]
    ) -> str:
        """First matching route, else the service's owning team, else the default team.

        ``category`` is None unless some route names the call's category; any other category
        could match no route, so the explanation leaves it out.
        """
        service_name = service.name if service is not None else None
        matched = ", ".join(
            f"{field}='{value}'"
            for field, value in (
                ("call_type", call_type),
                ("service", service_name),
                ("category", category),
            )
            if value is not None
        )
        for i, route in enumerate(self.tables.routing.route):
            if (
                (route.call_type is None or route.call_type == call_type)
                and (route.service is None or route.service == service_name)
                and (route.category is None or route.category == category)
            ):
                rule = f"routing.toml: route[{i}]"
                steps.append(Step(input=matched, rule=rule, result=f"team '{route.team}'"))
                return route.team
        if service is not None:
            rule = f"services.toml: {service.name}.team (no route matched)"
            steps.append(Step(input=matched, rule=rule, result=f"team '{service.team}'"))
            return service.team
        team = self.tables.routing.default_team
        rule = "routing.toml: default_team (no route matched)"
        steps.append(Step(input=matched, rule=rule, result=f"team '{team}'"))
        return team
