"""JMESPath expressions of the source mappings, compiled once into the cheapest equal reader.

Most expressions a mapping names are plain field paths (``ticket.custom_fields.Impact``) or a
field compared with a literal (``event == 'create'``); JMESPath's general interpreter costs about
17 us per search and an event reads about nine. :func:`compiled` turns those two shapes into
direct readers with JMESPath's exact meaning (``tests/unit/sources/test_mapping.py`` compares
them with ``jmespath.search`` case by case) and hands every other expression to the library.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jmespath
from jmespath.visitor import _equals as jmespath_equals  # type: ignore[attr-defined]

__all__ = ["FieldEquals", "FieldPath", "compiled", "is_plain", "jmespath_equals"]


class FieldPath:
    """A JMESPath expression made only of field names (``ticket.custom_fields.Impact``).

    Evaluated as a plain walk through a decoded JSON document's dicts, with JMESPath's meaning
    (a field of anything but an object is null): most mappings are such paths, and the general
    interpreter costs about 17 us per search, several per event (bench/http.py, the source
    endpoint).
    """

    __slots__ = ("keys",)

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys

    def search(self, value: Any) -> Any:
        # Of the JSON kinds only an object has ``get``: anything else (null, a list, a string)
        # raises here, which is JMESPath's null; cheaper than a type check per step.
        try:
            for key in self.keys:
                value = value.get(key)
        except AttributeError:
            return None
        return value


def _field_keys(node: Any) -> tuple[str, ...] | None:
    if node.get("type") == "field":
        return (str(node["value"]),)
    if node.get("type") == "subexpression":
        keys: tuple[str, ...] = ()
        for child in node.get("children", []):
            more = _field_keys(child)
            if more is None:
                return None
            keys += more
        return keys
    return None


class FieldEquals:
    """``path == 'literal'`` or ``path != 'literal'`` (either side first), a field path against a
    literal: how sources tell a new ticket from a changed one (``event == 'create'``).

    Evaluated as a plain walk and JMESPath's own equality (``jmespath.visitor._equals``: 0 and 1
    never equal false and true); the interpreter spent about 5 % of an RT event's time in
    ``visit_comparator`` (bench/http.py under py-spy).
    """

    __slots__ = ("literal", "negate", "path")

    def __init__(self, path: FieldPath, literal: Any, negate: bool) -> None:
        self.path = path
        self.literal = literal
        self.negate = negate

    def search(self, value: Any) -> bool:
        found = self.path.search(value)
        if type(self.literal) is str:  # no number-versus-boolean case: plain equality
            return bool(found == self.literal) != self.negate
        equal: bool = jmespath_equals(found, self.literal)
        return not equal if self.negate else equal


def _field_equals(node: Any) -> FieldEquals | None:
    if node.get("type") != "comparator" or node.get("value") not in ("eq", "ne"):
        return None
    left, right = node["children"]
    if left.get("type") == "literal":
        left, right = right, left
    keys = _field_keys(left)
    if not keys or right.get("type") != "literal":
        return None
    return FieldEquals(FieldPath(keys), right["value"], node["value"] == "ne")


@lru_cache(maxsize=2048)
def compiled(expression: str) -> Any:
    """The compiled JMESPath expression (cached: sources are few, events many).

    A plain field path becomes a :class:`FieldPath`, a field path compared with a literal a
    :class:`FieldEquals`; anything else JMESPath's own interpreter.

    Raises:
        jmespath.exceptions.JMESPathError: the expression does not compile.
    """
    parsed = jmespath.compile(expression)
    keys = _field_keys(parsed.parsed)
    if keys:
        return FieldPath(keys)
    return _field_equals(parsed.parsed) or parsed


def is_plain(reader: Any) -> bool:
    """Whether ``reader`` (from :func:`compiled`) is a direct reader, which cannot raise."""
    return isinstance(reader, FieldPath | FieldEquals)
