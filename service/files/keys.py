"""Turn msgspec's decode errors on a table file into :class:`Problem` values with key and reason.

msgspec says ``Object contains unknown field `foo` - at `$.priority[0]```; governance staff need
``levels.toml: priority[0].foo: unknown key 'foo'; allowed: name, level, ...``. The allowed keys
come from the msgspec types themselves, so they never drift from what the loader accepts.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

from service.core.validation import Problem

__all__ = ["decode_problem"]

_AT = re.compile(r"^(?P<reason>.*) - at `\$\.?(?P<key>[^`]*)`$", re.S)
_LINE = re.compile(r"\(at line (?P<line>\d+), column (?P<col>\d+)\)")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_DATETIME_HINT = "an unquoted TOML date-time with a timezone, e.g. 2026-01-01T00:00:00Z"
_DURATION_HINT = "an ISO 8601 duration in days, hours, minutes or seconds, e.g. PT30M, PT4H, P2D"
_STEP = re.compile(r"\.?([^.\[]+)|\[(\d+)\]")
_TOKEN = re.compile(r"\.?([^.\[]+)|\[(\d+)\]|\[(\.\.\.)\]")


def _unwrap(info: mi.Type) -> mi.Type:
    """The type under ``Annotated`` and ``X | None``; unions of several kinds stay as they are."""
    while True:
        if isinstance(info, mi.Metadata):
            info = info.type
        elif isinstance(info, mi.UnionType):
            rest = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if len(rest) != 1:
                return info
            info = rest[0]
        else:
            return info


def _at(kind: type, key: str) -> mi.Type | None:
    """The type found at dotted ``key`` (``priority[0]``, ``team[1].handler``) inside ``kind``."""
    info: mi.Type = _unwrap(mi.type_info(kind))
    for name, index in _STEP.findall(key):
        if index:
            if not isinstance(info, mi.ListType):
                return None
            info = _unwrap(info.item_type)
        elif isinstance(info, mi.StructType):
            fields = {f.encode_name: f.type for f in info.fields}
            if name not in fields:
                return None
            info = _unwrap(fields[name])
        elif isinstance(info, mi.DictType):
            info = _unwrap(info.value_type)
        else:
            return None
    return info


def _node(raw: bytes, key: str) -> Any:
    """The value at concrete ``key`` (``team[4].handler``) in the TOML ``raw``, or None."""
    try:
        node: Any = msgspec.toml.decode(raw)
        for name, index in _STEP.findall(key):
            node = node[name] if name else node[int(index)]
    except (msgspec.MsgspecError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        return None
    return node


def _allowed_keys(info: mi.Type | None, raw: bytes, key: str) -> list[str]:
    """Keys the struct at ``key`` accepts; for a tagged union, the member its tag names."""
    if isinstance(info, mi.UnionType):
        node = _node(raw, key)
        members = [t for t in info.types if isinstance(t, mi.StructType) and t.tag_field]
        tag = node.get(members[0].tag_field) if members and isinstance(node, dict) else None
        info = next((t for t in members if t.tag == tag), None)
    if isinstance(info, mi.StructType):
        tag = [info.tag_field] if info.tag_field else []
        return [*tag, *(f.encode_name for f in info.fields)]
    return []


def _allowed_tags(kind: type, key: str) -> list[str]:
    """Tag values of the tagged union holding the field at ``key`` (e.g. handler ``kind``)."""
    parent, _, field = key.rpartition(".")
    info = _at(kind, parent)
    if not isinstance(info, mi.UnionType):
        return []
    return [
        str(t.tag)
        for t in info.types
        if isinstance(t, mi.StructType) and t.tag_field == field and t.tag is not None
    ]


def _replaced(doc: Any, path: list[str | int], value: Any) -> Any:
    """``doc`` with the node at ``path`` replaced by ``value`` (copies along the path only)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, list) and isinstance(head, int):
        return [*doc[:head], _replaced(doc[head], rest, value), *doc[head + 1 :]]
    return {**doc, head: _replaced(doc[head], rest, value)}


def _name_dict_keys(kind: type, raw: bytes, key: str, text: str) -> str:
    """``key`` with msgspec's ``[...]`` (a dict key it does not name) replaced by the real key.

    Each unnamed dict is narrowed to one entry at a time until the same error appears again:
    that entry holds it. Only runs on the error path, so the extra decoding costs nothing.
    """
    try:
        doc: Any = msgspec.toml.decode(raw)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return key
    node: Any = doc
    path: list[str | int] = []
    out = ""
    for name, index, _ in _TOKEN.findall(key):
        if name or index:
            step: str | int = name or int(index)
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                return key
            path.append(step)
            out += f".{name}" if name else f"[{index}]"
            continue
        if not isinstance(node, dict):
            return key
        for k, v in node.items():
            try:
                msgspec.convert(_replaced(doc, path, {k: v}), kind)
            except msgspec.ValidationError as exc:
                if str(exc) == text:
                    doc, node = _replaced(doc, path, {k: v}), v
                    path.append(k)
                    out += f".{k}"
                    break
        else:
            return key
    return out.removeprefix(".")


def decode_problem(file: str, kind: type, exc: msgspec.MsgspecError, raw: bytes = b"") -> Problem:
    """The problem ``exc`` reports for ``file`` (content ``raw``), decoded as ``kind``."""
    text = str(exc)
    at = _AT.match(text)
    key, reason = (at["key"], at["reason"]) if at else ("", text)
    if "[...]" in key and raw:
        key = _name_dict_keys(kind, raw, key, text)
    unknown = _UNKNOWN.match(reason)
    if unknown:
        name = unknown["name"]
        allowed = _allowed_keys(_at(kind, key), raw, key)
        reason = f"unknown key '{name}'"
        if allowed:
            reason += f"; allowed: {', '.join(allowed)}"
        return Problem(file=file, key=f"{key}.{name}" if key else name, reason=reason)
    if at:
        if reason.startswith("Invalid value"):
            tags = _allowed_tags(kind, key)
            if tags:
                reason += f"; allowed: {', '.join(tags)}"
        elif "`datetime`" in reason:
            reason += f"; write {_DATETIME_HINT}"
        elif "ISO8601 duration" in reason:
            reason += f"; write {_DURATION_HINT}"
        return Problem(file=file, key=key or "(root)", reason=reason)
    line = _LINE.search(text)
    if line:
        reason = _LINE.sub("", text).strip()
        if reason == "Cannot overwrite a value":
            # tomllib's wording for a key given twice, e.g. a doubled matrix cell.
            reason = "duplicate key: this value is already set above (Cannot overwrite a value)"
        return Problem(file=file, key=f"line {line['line']}, column {line['col']}", reason=reason)
    return Problem(file=file, key="(root)", reason=text)
