"""Batches scored straight to JSON: the decisions' bytes, their decision-log rows and counts.

A decision's JSON is the same for every call with the same scoring input except for its three
timestamps. So each distinct input gets its decision encoded once, by msgspec from a real
:class:`Decision`, and cut around the timestamps into a head and a tail; with it the start of
its decision-log row and the call's own JSON up to ``reported_at`` (a :class:`Prototype`). A call
then costs a memo lookup, a few joins and, when it brings its own ``reported_at``, encoding three
datetimes; calls without one share ``now``, whose timestamps are encoded once per priority per
batch. Every byte is msgspec's (``tests/unit/test_scoring_encoded.py`` holds a batch equal to
encoding the :meth:`Scorer.score` answers), only cut and joined.

Why: scoring 1,000 calls into ``Decision`` structs, encoding them and encoding a log row per call
(the call again, an ``isoformat``) cost more than the whole bare request it is held to
(docs/benchmarks.md, "Batches as deployed"). A first batch after a table reload pays for its
prototypes: about twice the cost of resolving its inputs alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Protocol

import msgspec

from service.core.calls import Call, UncheckedCall
from service.errors import InvalidCall

if TYPE_CHECKING:
    from service.core.scoring import Resolved

__all__ = ["EncodedBatch", "Prototype", "PrototypeMemo", "Resolver", "Times", "call_key"]

_encode = msgspec.json.Encoder().encode

call_key = attrgetter("type", "impact", "urgency", "likelihood", "proximity", "service", "category")
"""The fields scoring reads besides ``reported_at``, as one tuple (in C, no Python frame)."""


class Times(msgspec.Struct):
    """The time-dependent fields of a :class:`Decision`, named and ordered as there."""

    reported_at: datetime
    response_by: datetime
    resolve_by: datetime


class Resolver(Protocol):
    """What the memo asks of the scorer on a miss (it keeps no reference to it)."""

    def memo_key(self, call: Call) -> Hashable:
        """The scorer's memo key of a call (a category no route names left out)."""
        ...

    def resolved(self, call: Call) -> Resolved:
        """The scorer's memoised resolution of a call (raises :class:`InvalidCall`)."""
        ...


_TIMES_START = len(b'{"reported_at":')
"""Where the ``reported_at`` value starts in an encoded :class:`Times`."""


class _Decided:
    """The bytes of one distinct scoring input's decision, cut around its timestamps."""

    __slots__ = ("counted", "head", "log", "priority", "resolve", "response", "tail")

    def __init__(self, r: Resolved, version: str, table_hash: str) -> None:
        self.priority = r.priority.name
        self.response = r.response
        self.resolve = r.resolve
        self.counted = (r.call_type, r.priority.name)
        # Encoded by msgspec from a real Decision, so the bytes cannot drift from the struct.
        when = datetime(2000, 1, 1, tzinfo=UTC)
        whole = _encode(r.decision(when, when, when, version, table_hash))
        # The comma that separates decisions leads the head; the batch's first one drops it.
        self.head = b"," + whole[: whole.index(b'"reported_at":')]
        self.tail = whole[whole.index(b',"table_version":') :]
        self.log = _encode([version, table_hash, r.priority.name, r.team])[:-1] + b","


class Prototype:
    """A call's key in the memo: its decision's bytes and its own JSON up to ``reported_at``.

    Calls whose categories no route names share one :class:`_Decided`; their own JSON differs.
    """

    __slots__ = (
        "call_head",
        "call_now",
        "counted",
        "head",
        "log",
        "priority",
        "resolve",
        "response",
        "tail",
    )

    def __init__(self, decided: _Decided, call: Call) -> None:
        self.head = decided.head
        """``,{"call_type":...,"team":"...",``: up to the timestamps, with a leading comma."""
        self.tail = decided.tail
        """``,"table_version":...}``: from the comma before ``table_version`` to the end."""
        self.log = decided.log
        """A decision-log row without its time: ``["version","hash","P3","team",``."""
        self.counted = decided.counted
        """What the decision counts under: call type and priority."""
        self.priority = decided.priority
        self.response = decided.response
        self.resolve = decided.resolve
        own = _encode(call)
        # reported_at is the last field; inside a string value its name's quotes are escaped.
        self.call_head = own[: own.rindex(b'"reported_at":') + _TIMES_START - 1]
        """The call's JSON up to its ``reported_at`` value (the last field)."""
        self.call_now = self.call_head + b"null}"
        """The call's JSON when it gives no ``reported_at``."""


class EncodedBatch:
    """A batch's decisions as JSON, with the log's and the counters' share, in call order.

    Filled a part at a time by :meth:`PrototypeMemo.score` (``into``), so a big batch can yield
    between parts.
    """

    __slots__ = ("calls", "parts", "prototypes", "rows")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        """The decisions' JSON, three pieces each (head, timestamps, tail), comma-led."""
        self.calls: list[bytes] = []
        """Each call's JSON, as ``msgspec`` encodes the decoded call."""
        self.rows: list[bytes] = []
        """Each decision's log row: ``["version","hash","priority","team","at"]``."""
        self.prototypes: list[Prototype] = []
        """Each call's prototype: what its decision counts under."""

    def __len__(self) -> int:
        return len(self.prototypes)

    def decision(self, i: int) -> bytes:
        """The JSON of the ``i``-th decision alone (``POST /v1/priority``'s answer)."""
        head, times, tail = self.parts[3 * i : 3 * i + 3]
        return b"".join((head[1:], times, tail))

    def body(self) -> bytes:
        """``{"decisions":[...]}``: what the batch endpoint answers (one copy of the pieces)."""
        if not self.parts:
            return b'{"decisions":[]}'
        first = self.parts[0]
        self.parts[0] = b'{"decisions":[' + first[1:]  # the first decision needs no comma
        try:
            return b"".join((*self.parts, b"]}"))
        finally:
            self.parts[0] = first


class PrototypeMemo:
    """Prototypes of one scorer's distinct inputs; scores calls into an :class:`EncodedBatch`.

    Keyed by :data:`call_key` as the call gives it. A category no route names cannot change a
    decision, so such calls share the decision's bytes of the call without it; both memos are
    bounded like the scorer's and emptied when full (never changing an answer).

    Args:
        version: The table set's version, copied into every decision.
        table_hash: The table set's content hash, copied into every decision.
        limit: Keys remembered before a memo is emptied.
    """

    def __init__(
        self,
        version: str,
        table_hash: str,
        limit: int,
    ) -> None:
        self._version = version
        self._hash = table_hash
        self._limit = limit
        self._by_key: dict[Hashable, Prototype] = {}
        self._by_canonical: dict[Hashable, _Decided] = {}

    def score(
        self,
        scorer: Resolver,
        calls: Sequence[Call | UncheckedCall],
        now: datetime,
        first: int = 0,
        into: EncodedBatch | None = None,
    ) -> EncodedBatch:
        """Decisions for ``calls`` in order, appended to ``into`` (a new batch if not given).

        An :class:`UncheckedCall` is checked when its values are new to the memo: a prototype
        is only ever made from a checked call, so a known key is a checked one.

        Raises:
            InvalidCall: For the first bad call, located by its index (``first`` is the index of
                ``calls[0]`` in the request), e.g. ``calls[3].urgency``.
            msgspec.ValidationError: For the first unchecked call whose values a :class:`Call`
                refuses (its message names the field, not the call's index).
        """
        out = EncodedBatch() if into is None else into
        parts, own, rows, prototypes = out.parts, out.calls, out.rows, out.prototypes
        known = self._by_key.get
        encode = _encode
        times = Times
        # Calls without reported_at share now: their timestamps depend on the priority only.
        now_times: dict[str, bytes] = {}
        now_at = b'"' + now.isoformat().encode() + b'"]'
        call: Call | UncheckedCall | None = None
        try:
            for call in calls:
                p = known(call_key(call))
                if p is None:
                    p = self._prototype(scorer, call)
                prototypes.append(p)
                reported = call.reported_at
                if reported is None:
                    stamp = now_times.get(p.priority)
                    if stamp is None:
                        whole = encode(times(now, now + p.response, now + p.resolve))
                        stamp = now_times[p.priority] = whole[1:-1]
                    parts += (p.head, stamp, p.tail)
                    own.append(p.call_now)
                    rows.append(p.log + now_at)
                else:
                    whole = encode(times(reported, reported + p.response, reported + p.resolve))
                    parts += (p.head, whole[1:-1], p.tail)
                    stop = whole.index(b'"', _TIMES_START + 1) + 1
                    own.append(p.call_head + whole[_TIMES_START:stop] + b"}")
                    if reported.tzinfo is UTC:
                        # msgspec writes UTC as Z; the log has always kept isoformat's +00:00.
                        rows.append(p.log + whole[_TIMES_START : stop - 2] + b'+00:00"]')
                    else:
                        rows.append(p.log + b'"' + reported.isoformat().encode() + b'"]')
        except InvalidCall as exc:
            raise exc.at(f"calls[{first + _index(calls, call)}]") from None
        except OverflowError:
            # A reported time near year 9999 would put the targets past what a datetime holds.
            assert call is not None and call.reported_at is not None
            priority = self._by_key[call_key(call)].priority
            raise InvalidCall(
                "reported_at",
                f"reported_at {call.reported_at.isoformat()} puts the {priority} targets "
                "after the year 9999",
            ).at(f"calls[{first + _index(calls, call)}]") from None
        return out

    def _prototype(self, scorer: Resolver, given: Call | UncheckedCall) -> Prototype:
        """The prototype for a call the memo does not know under its own key yet."""
        call = given if given.__class__ is Call else given.checked()  # type: ignore[union-attr]
        canonical = scorer.memo_key(call)
        decided = self._by_canonical.get(canonical)
        if decided is None:
            decided = _Decided(scorer.resolved(call), self._version, self._hash)
            if len(self._by_canonical) >= self._limit:
                self._by_canonical.clear()
            self._by_canonical[canonical] = decided
        p = Prototype(decided, call)
        if len(self._by_key) >= self._limit:
            self._by_key.clear()
        self._by_key[call_key(call)] = p
        return p


def _index(calls: Sequence[Call | UncheckedCall], call: Call | UncheckedCall | None) -> int:
    """Where ``call`` (the object, not an equal one) is in ``calls``."""
    return next(i for i, c in enumerate(calls) if c is call)
