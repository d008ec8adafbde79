"""The compiled source mapper answers exactly as the mapping read with ``jmespath.search``.

:class:`~service.core.mapping.SourceMapper` compiles each source once (direct readers for plain
field paths and field-equals-literal tests, value maps and error locations looked up once). The
reference below is the straightforward reading of a mapping, every expression through
``jmespath.search``; both must give the same event, or the same refusal (message, tool field
path, value, mapped values), on every shipped source over thousands of payload variants.
"""

from __future__ import annotations

import copy
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions
import msgspec
import pytest

from service.core.calls import Call
from service.core.mapping import (
    SourceEvent,
    TicketState,
    map_event,
    mapper,
    reported_time,
    tool_text,
)
from service.core.sources import READ_FIELDS, Lifecycle, Reader, Source
from service.errors import InvalidEvent
from service.files.loader import load_all
from service.sources.reading import reader as written_reader

TABLES = Path(__file__).resolve().parents[3] / "tables"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sources"
VARIANTS = 1500
"""Payload variants per source: every leaf a mapping reads, set to values of every JSON kind."""


# --- The reference: the mapping read the plain way (the code before compiling). -----------------


def _search(expression: str, payload: Any) -> Any:
    try:
        return jmespath.search(expression, payload)
    except jmespath.exceptions.JMESPathError as exc:
        raise InvalidEvent(expression, f"cannot evaluate the expression: {exc}") from None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return msgspec.json.encode(value).decode()
    return None


def _mapped(field: str, reader: Reader, payload: Any) -> str | int | None:
    path = reader.path
    raw = _search(path, payload) if path is not None else None
    if raw is None or raw in ("", []):
        return reader.default
    text = _text(raw)
    where = path or field
    label = field.replace("_", " ")
    if text is None:
        raise InvalidEvent(
            where, f"{label} must be a single value, got {type(raw).__name__}", value=raw
        )
    if reader.map:
        if text in reader.map:
            return reader.map[text]
        raise InvalidEvent(where, f"unknown {label} '{text}'", value=raw, mapped=list(reader.map))
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    return text


def _state(source: Source, payload: Any) -> TicketState:
    life = source.status
    if life is None:
        return TicketState.OPEN
    state = _text(_search(life.path, payload))
    if state is not None and state in life.resolved:
        return TicketState.RESOLVED
    if state is not None and state in life.closed:
        return TicketState.CLOSED
    if life.created is not None and not _search(life.created, payload):
        return TicketState.CHANGED
    return TicketState.OPEN


def reference(source: Source, payload: Any) -> SourceEvent:
    raw_id = _search(source.ticket_id, payload)
    ticket_id = _text(raw_id)
    if ticket_id is None or ticket_id == "":
        raise InvalidEvent(source.ticket_id, "missing ticket id", value=raw_id)
    state = _state(source, payload)
    if state in (TicketState.RESOLVED, TicketState.CLOSED):
        return SourceEvent(
            source=source.name, ticket_id=ticket_id, call=None, state=state, paths={}
        )
    fields: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for name in READ_FIELDS:
        reader: Reader | None = getattr(source, name)
        if reader is None:
            continue
        key = "type" if name == "call_type" else name
        paths[key] = reader.path or f"(default of {name})"
        value = _mapped(name, reader, payload)
        if value is not None:
            fields[key] = value
    if "type" not in fields:
        path = source.call_type.path or "call_type"
        raise InvalidEvent(
            path, "missing call type and no default", mapped=list(source.call_type.map)
        )
    if source.reported_at is not None:
        paths["reported_at"] = source.reported_at
        raw = _search(source.reported_at, payload)
        when = None
        if raw is not None and raw != "":
            try:
                when = msgspec.convert(raw, datetime, strict=False)
            except msgspec.ValidationError:
                raise InvalidEvent(
                    source.reported_at,
                    f"reported time '{raw}' is not an RFC 3339 date-time with a timezone",
                    value=raw,
                ) from None
        fields["reported_at"] = when
    try:
        call = msgspec.convert(fields, Call)
    except msgspec.ValidationError as exc:
        text = str(exc)
        reason, _, at = text.rpartition(" - at `$.")
        field = at.rstrip("`")
        raise InvalidEvent(paths.get(field, field or "(payload)"), reason or text) from None
    return SourceEvent(source=source.name, ticket_id=ticket_id, call=call, state=state, paths=paths)


# --- Payload variants ---------------------------------------------------------------------------


def _outcome(fn: Any, source: Source, payload: Any) -> Any:
    try:
        return ("event", fn(source, payload))
    except InvalidEvent as exc:
        return ("refused", str(exc), exc.path, exc.value, exc.mapped)


def _leaf_paths(expression: str) -> list[list[str | int]]:
    """The field paths an expression reads (from its AST): where variants put their values."""
    found: list[list[str | int]] = []

    def walk(node: Any, prefix: list[str | int]) -> list[str | int] | None:
        kind = node.get("type")
        if kind == "field":
            return [*prefix, node["value"]]
        if kind in {"subexpression", "index_expression"}:
            at: list[str | int] | None = prefix
            for child in node["children"]:
                at = walk(child, at or []) if at is not None else None
            return at
        if kind == "index":
            return [*prefix, node["value"]]
        for child in node.get("children", []):
            got = walk(child, [])
            if got:
                found.append(got)
        return None

    top = walk(jmespath.compile(expression).parsed, [])
    if top:
        found.append(top)
    return found


def _values(reader: Reader | None) -> list[Any]:
    pool: list[Any] = [
        None, "", [], {}, 0, 1, 2, -1, 5, 1.0, 2.5, 1e16, True, False, "x", "create", "new",
        "update", "resolved", "deleted", "2026-03-02T09:00:00Z", "2026-03-02 09:00", "yesterday",
        "2026-03-02T09:00:00", "2026-03-02T10:00:00+02:00", 1772442000,
        "y" * 250, ["a"], [1, 2], {"value": "High"}, {"name": "email"}, 12345678901234567890,
    ]  # fmt: skip
    if reader is not None:
        pool += list(reader.map) + [int(k) for k in reader.map if k.lstrip("-").isdigit()]
    return pool


def _expressions(source: Source) -> list[tuple[str, Reader | None]]:
    out: list[tuple[str, Reader | None]] = [(source.ticket_id, None)]
    if source.reported_at:
        out.append((source.reported_at, None))
    if source.status is not None:
        out.append((source.status.path, Reader(map=dict.fromkeys(source.status.resolved, "x"))))
        if source.status.created:
            out.append((source.status.created, None))
    for name in READ_FIELDS:
        reader: Reader | None = getattr(source, name)
        if reader is not None and reader.path:
            out.append((reader.path, reader))
    return out


def _put(payload: Any, path: list[str | int], value: Any, drop: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        target = payload if isinstance(payload, list) else []
        while len(target) <= head:
            target.append(None)
        target[head] = _put(target[head], rest, value, drop)
        return target
    target = payload if isinstance(payload, dict) else {}
    if drop and not rest:
        target.pop(head, None)
    else:
        target[head] = _put(target.get(head), rest, value, drop)
    return target


def _variants(source: Source, seeds: list[Any], count: int) -> list[Any]:
    rng = random.Random(f"usm-{source.name}")
    leaves = [(path, reader) for expr, reader in _expressions(source) for path in _leaf_paths(expr)]
    out: list[Any] = list(seeds)
    while len(out) < count:
        payload = copy.deepcopy(rng.choice(seeds))
        for leaf, reader in rng.sample(leaves, rng.randint(1, min(4, len(leaves)))):
            path = leaf
            if rng.random() < 0.2 and len(leaf) > 1:
                path = leaf[: rng.randint(1, len(leaf) - 1)]  # a whole subtree replaced
            payload = _put(payload, path, rng.choice(_values(reader)), rng.random() < 0.1)
        out.append(payload)
    out += [None, [], "text", 7, {}]
    return out


def _sources() -> list[Source]:
    shipped = [s for loaded in load_all(TABLES) for s in loaded.tables.sources.source]
    made = [
        Source(
            name="plain",
            signature="bearer",
            ticket_id="key",
            call_type=Reader(path="type"),
            impact=Reader(path="impact"),
            urgency=Reader(path="u || urgency", default="low"),
            category=Reader(path="labels[0]"),
            status=Lifecycle(path="state", resolved=["done", "1"], closed=["0"]),
        ),
        Source(
            name="sized",
            signature="bearer",
            ticket_id="length(id)",  # a function: refused on a value of the wrong type
            call_type=Reader(default="incident"),
            service=Reader(path="svc"),
        ),
    ]
    return shipped + made


def _seeds(source: Source) -> list[Any]:
    tool = source.name.split("_")[0]
    files = sorted((FIXTURES / tool).glob("*.json")) if (FIXTURES / tool).is_dir() else []
    seeds = [msgspec.json.decode(f.read_bytes()) for f in files if "search" not in f.name]
    seeds = [s for s in seeds if isinstance(s, dict)]
    rt = {
        "event": "create",
        "ticket": {
            "id": 42,
            "status": "new",
            "created": "2026-03-02T09:00:00Z",
            "custom_fields": {"Impact": "Group", "Urgency": "Work stopped", "Service": "email"},
        },
    }
    plain = {"key": "A-1", "type": "change", "impact": 2, "state": "open", "id": "abc"}
    return seeds or [rt, plain]


@pytest.mark.parametrize("source", _sources(), ids=lambda s: s.name)
def test_the_compiled_mapper_answers_as_jmespath_search(source: Source) -> None:
    payloads = _variants(source, _seeds(source), VARIANTS)
    outcomes: set[str] = set()
    for payload in payloads:
        expected = _outcome(reference, source, payload)
        got = _outcome(map_event, source, payload)
        assert got == expected, payload
        outcomes.add(expected[0] if expected[0] == "refused" else expected[1].state.value)
    # The variants reach both sides: events mapped and refusals, not one of them only.
    assert "refused" in outcomes and len(outcomes) >= 2, outcomes


def test_each_event_gets_its_own_paths(default_set: Any) -> None:
    rt = next(s for s in default_set.tables.sources.source if s.name == "rt")
    payload = {"event": "create", "ticket": {"id": 1, "custom_fields": {"Impact": "Group"}}}
    first, second = map_event(rt, payload), map_event(rt, payload)
    assert first.paths == second.paths and first.paths is not second.paths


@pytest.mark.parametrize(
    "value", [0, -1, 7, 2**63, -(2**63), 2**64 - 1, 2**64, 10**30, True, 1.5, 1e16, "7"]
)
def test_tool_text_spells_numbers_as_their_json(value: Any) -> None:
    assert tool_text(value) == _text(value)


@pytest.mark.parametrize("created", ["2026-03-02T09:00:00", "2026-03-02T09:00:00Z", None, ""])
def test_a_remembered_combination_still_checks_the_reported_time(
    default_set: Any, created: str | None
) -> None:
    rt = next(s for s in default_set.tables.sources.source if s.name == "rt")
    fields = {"Impact": "User", "Urgency": "Can wait", "Service": "erp", "Category": "remembered"}
    seen = {"event": "create", "ticket": {"id": 1, "created": "2026-01-01T00:00:00Z"}}
    seen["ticket"]["custom_fields"] = fields  # type: ignore[index]
    map_event(rt, seen)  # the combination is validated once and remembered
    payload = copy.deepcopy(seen)
    payload["ticket"]["created"] = created  # type: ignore[index]
    assert _outcome(map_event, rt, payload) == _outcome(reference, rt, payload)


_READ_REFUSALS = ("missing ticket id", "must be a single value", "unknown ", "missing call type")
"""What a reader refuses itself; later refusals are the reported time's and the call's shape."""


@pytest.mark.parametrize("source", _sources(), ids=lambda s: s.name)
def test_the_written_reader_reads_what_the_mapper_maps(source: Source) -> None:
    # The fast event route reads with a function written per source (service/sources/reading.py)
    # and keys its answers by the values it reads: they must be the mapped call's.
    read, code = written_reader(source)
    fields = mapper(source).fields
    for payload in _variants(source, _seeds(source), VARIANTS):
        expected = _outcome(map_event, source, payload)
        try:
            ticket_id, state, values, raw_reported = read(payload)
        except InvalidEvent as exc:
            assert ("refused", str(exc), exc.path, exc.value, exc.mapped) == expected, payload
            continue
        if expected[0] == "refused":
            assert not any(r in expected[1] for r in _READ_REFUSALS), (expected, code)
            continue
        event: SourceEvent = expected[1]
        assert (ticket_id, state) == (event.ticket_id, event.state), payload
        if event.call is None:
            assert values is None
            continue
        assert values is not None
        read_fields = {f.key: v for f, v in zip(fields, values, strict=True) if v is not None}
        call = msgspec.structs.asdict(event.call)
        reported = call.pop("reported_at")
        assert read_fields == {k: v for k, v in call.items() if v is not None}, payload
        if source.reported_at is None:
            assert raw_reported is None
        else:
            assert reported_time(source.reported_at, raw_reported) == reported
