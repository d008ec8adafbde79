"""A source's mapping read by a function written for it: :func:`reader`.

:meth:`SourceMapper.map <service.core.mapping.SourceMapper.map>` reads a payload in a loop over
its fields and their path steps, which cost about 2.5 us of an RT event (``bench/micro``: one
``map`` call, 5 fields of 3 steps). The fast event route (``service/api/sources.py``) reads with a
function written for the source instead: each plain field path's parents walked once, each value
mapped inline; about 0.4 us. It gives what ``map`` finds, or the same refusal in the same order
(``tests/unit/sources/test_mapper_equivalence.py`` holds both to ``jmespath.search``).

It lives here, not in ``service.core``: writing and compiling code is what the core must not do
(``tests/unit/test_core_purity.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from service.core.expressions import FieldEquals, FieldPath, compiled, jmespath_equals
from service.core.mapping import SourceMapper, TicketState, mapper, searcher, tool_text
from service.core.sources import Source
from service.errors import InvalidEvent

__all__ = ["Read", "reader"]

Read = Callable[[Any], tuple[str, TicketState, tuple[Any, ...] | None, Any]]
"""``read(payload)``: the ticket id, the lifecycle, the call fields' values in field order (None
once the ticket ended: nothing else is read) and the raw reported time (None when the source reads
none). The values are what ``map`` reads and the key of its remembered combinations; raises
:class:`InvalidEvent` where ``map`` does (the reported time is only found here, not checked)."""

_READERS: dict[int, tuple[SourceMapper, Read, str]] = {}


def reader(source: Source) -> tuple[Read, str]:
    """The written reader of ``source`` and its Python source (for a reader of tracebacks), made
    once per source object (keyed as :func:`~service.core.mapping.mapper` is)."""
    compiled_mapper = mapper(source)
    hit = _READERS.get(id(source))
    if hit is None or hit[0] is not compiled_mapper:
        if len(_READERS) >= 256:
            _READERS.clear()
        read, code = _Program(compiled_mapper).build()
        hit = _READERS[id(source)] = (compiled_mapper, read, code)
    return hit[1], hit[2]


class _Program:
    """Writes the reader of one source as Python source, and compiles it.

    Plain field paths (:class:`FieldPath`, and the path of a :class:`FieldEquals`) are walked
    first, each parent once, with JMESPath's meaning: only an object has ``get``, so a step
    from anything else raises AttributeError, and every value under it is null. Walking cannot
    fail, so doing it first changes no refusal. Every other expression is evaluated where ``map``
    reads it, so refusals come in the same order. Keys reach the source only through ``repr`` (a
    valid literal for any string); every other value is a name in the function's own namespace.
    """

    def __init__(self, compiled_mapper: SourceMapper) -> None:
        self.source = compiled_mapper.source
        self.fields = compiled_mapper.fields
        self.names: dict[str, Any] = {
            "tool_text": tool_text,
            "OPEN": TicketState.OPEN,
            "CHANGED": TicketState.CHANGED,
            "RESOLVED": TicketState.RESOLVED,
            "CLOSED": TicketState.CLOSED,
            "equals": jmespath_equals,
        }
        self.tree: dict[str, Any] = {}
        """key -> (variable, children): the plain paths' steps, shared by common parents."""
        self.count = 0

    def name(self, value: Any, hint: str) -> str:
        """A name in the function's namespace bound to ``value``."""
        self.count += 1
        name = f"{hint}_{self.count}"
        self.names[name] = value
        return name

    def path(self, keys: tuple[str, ...]) -> str:
        """The variable that holds the value at the plain path ``keys`` after the walk."""
        level = self.tree
        variable = ""
        for key in keys:
            if key not in level:
                self.count += 1
                level[key] = (f"n_{self.count}", {})
            variable, level = level[key]
        return variable

    def value(self, expression: str) -> str:
        """Code for what ``expression`` finds in ``payload``."""
        found = compiled(expression)
        if isinstance(found, FieldPath):
            return self.path(found.keys)
        return f"{self.name(searcher(expression), 'search')}(payload)"

    def walk(self, level: dict[str, Any], parent: str, indent: str) -> list[str]:
        """The walk of ``level``'s keys from ``parent``: one ``try`` per parent (a step from
        anything but an object fails at its first ``get``, and then every step is null)."""
        if not level:
            return []
        children = list(level.items())
        lines = [f"{indent}try:"]
        lines += [f"{indent}    {var} = {parent}.get({key!r})" for key, (var, _) in children]
        lines.append(f"{indent}except AttributeError:")
        lines.append(f"{indent}    {' = '.join(var for _, (var, _) in children)} = None")
        for _, (var, below) in children:
            lines += self.walk(below, var, indent)
        return lines

    def steps(self) -> list[str]:
        """The body after the walk: ``map``'s steps, in its order."""
        source = self.source
        out = [
            f"raw_id = {self.value(source.ticket_id)}",
            "ticket_id = raw_id if type(raw_id) is str else tool_text(raw_id)",
            'if ticket_id is None or ticket_id == "":',
            f"    {self.name(partial(_missing_id, source.ticket_id), 'missing_id')}(raw_id)",
        ]
        life = source.status
        if life is None:
            out.append("state = OPEN")
        else:
            resolved = self.name(frozenset(life.resolved), "resolved")
            closed = self.name(frozenset(life.closed), "closed")
            out += [
                f"found = {self.value(life.path)}",
                "state = found if type(found) is str else tool_text(found)",
                "if state is not None:",
                f"    if state in {resolved}:",
                "        return ticket_id, RESOLVED, None, None",
                f"    if state in {closed}:",
                "        return ticket_id, CLOSED, None, None",
                f"state = OPEN if {self.opened(life.created)} else CHANGED",
            ]
        values = []
        for i, field in enumerate(self.fields):
            v = f"v_{i}"
            values.append(v)
            out += self.field(v, field)
        missing_type = self.name(partial(_missing_type, source), "missing_type")
        typed = next((f"v_{i}" for i, f in enumerate(self.fields) if f.key == "type"), None)
        if typed is None:
            out.append(f"{missing_type}()")
        else:
            out += [f"if {typed} is None:", f"    {missing_type}()"]
        reported = "None" if source.reported_at is None else self.value(source.reported_at)
        out.append(f"return ticket_id, state, ({''.join(v + ', ' for v in values)}), {reported}")
        return out

    def field(self, v: str, field: Any) -> list[str]:
        """Code that sets ``v`` to the field's value, as ``map`` reads it (``_Field``)."""
        if field.search is None:
            return [f"{v} = {self.name(field.default, 'default')}"]
        if field.keys is None:  # an expression the library interprets
            return [f"{v} = {self.name(field.value, 'value')}(payload)"]
        raw = self.path(field.keys)
        value_of = self.name(field.value_of, "value_of")
        if not field.map:
            return [f"{v} = {raw} if type({raw}) is str and {raw} else {value_of}({raw})"]
        return [
            f"{v} = {self.name(field.map, 'map')}.get({raw}) "
            f"if type({raw}) is str and {raw} else None",
            f"if {v} is None:",
            f"    {v} = {value_of}({raw})",
        ]

    def opened(self, created: str | None) -> str:
        """Code for the test that the ticket is new (``status.created``); true when unset."""
        if not created:
            return "True"
        found = compiled(created)
        if isinstance(found, FieldPath):
            return self.path(found.keys)
        if isinstance(found, FieldEquals):
            value = self.path(found.path.keys)
            literal = self.name(found.literal, "literal")
            negate = self.name(found.negate, "negate")
            if type(found.literal) is str:
                return f"(bool({value} == {literal}) != {negate})"
            return f"(equals({value}, {literal}) != {negate})"
        return f"{self.name(searcher(created), 'created')}(payload)"

    def build(self) -> tuple[Read, str]:
        steps = self.steps()  # first: it names the paths the walk reads
        lines = ["def read(payload):"]
        lines += self.walk(self.tree, "payload", "    ")
        lines += ["    " + line for line in steps]
        code = "\n".join(lines) + "\n"
        scope = dict(self.names)
        exec(compile(code, f"<reader of source {self.source.name}>", "exec"), scope)
        read: Read = scope["read"]
        return read, code


def _missing_id(expression: str, raw: Any) -> None:
    raise InvalidEvent(expression, "missing ticket id", value=raw)


def _missing_type(source: Source) -> None:
    path = source.call_type.path or "call_type"
    raise InvalidEvent(path, "missing call type and no default", mapped=list(source.call_type.map))
