"""Whatever lands in a table file, loading answers with :class:`InvalidTables`, never a crash.

Hypothesis writes three kinds of garbage into one file of a copy of the default set: raw bytes,
arbitrary JSON-like documents written as TOML, and the real file with one value swapped for a
random one (the garbage most likely to get past decoding and reach the whole-set rules).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.core.tables import FILES
from service.errors import InvalidTables
from service.files.loader import load_set
from tests.fixtures.table_edits import copy_default

GARBAGE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    _text,
    st.sampled_from(["P1", "PT4H", "department", "high", "service_desk", "risk", "-PT1H"]),
    st.datetimes(timezones=st.none() | st.timezones()),
)
json_like: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def _toml_value(value: Any) -> str:
    """One TOML value on one line (inline tables and arrays), for any JSON-like value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are TOML basic-string escapes; TOML also forbids a raw DEL.
        return msgspec.json.encode(value).decode().replace("\x7f", "\\u007F")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> bytes:
    """A TOML document with one ``key = value`` line per top-level key."""
    return "".join(f"{_toml_value(k)} = {_toml_value(v)}\n" for k, v in doc.items()).encode()


def _swap(doc: Any, path: list[int], value: Any) -> Any:
    """``doc`` with the node reached by following ``path`` (indices, wrapped) replaced."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    if isinstance(doc, dict):
        key = list(doc)[path[0] % len(doc)]
        return {**doc, key: _swap(doc[key], path[1:], value)}
    i = path[0] % len(doc)
    return [*doc[:i], _swap(doc[i], path[1:], value), *doc[i + 1 :]]


@pytest.fixture(scope="module")
def set_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield copy_default(Path(tmp))


def _load_with(directory: Path, file: str, content: bytes) -> None:
    """Load the set with ``file`` replaced by ``content``: it loads, or InvalidTables names it."""
    path = directory / file
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        load_set(directory)
    except InvalidTables as exc:
        assert exc.problems
        assert all(str(p).startswith(f"{directory.name}/") for p in exc.problems)
    finally:
        path.write_bytes(original)


@GARBAGE
@given(file=st.sampled_from(list(FILES)), content=st.binary(max_size=200))
def test_random_bytes_in_a_table_file_give_only_table_problems(
    set_dir: Path, file: str, content: bytes
) -> None:
    _load_with(set_dir, file, content)


@GARBAGE
@given(file=st.sampled_from(list(FILES)), content=st.text(max_size=200))
def test_random_text_in_a_table_file_gives_only_table_problems(
    set_dir: Path, file: str, content: str
) -> None:
    _load_with(set_dir, file, content.encode("utf-8", "surrogatepass"))


@GARBAGE
@given(file=st.sampled_from(list(FILES)), doc=st.dictionaries(_text, json_like, max_size=5))
def test_random_documents_in_a_table_file_give_only_table_problems(
    set_dir: Path, file: str, doc: dict[str, Any]
) -> None:
    _load_with(set_dir, file, toml_document(doc))


@GARBAGE
@given(
    file=st.sampled_from(list(FILES)),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    value=json_like,
)
def test_a_real_table_file_with_one_value_swapped_gives_only_table_problems(
    set_dir: Path, file: str, path: list[int], value: Any
) -> None:
    doc = msgspec.toml.decode((set_dir / file).read_bytes())
    _load_with(set_dir, file, toml_document(_swap(doc, path, value)))


def test_the_toml_writer_round_trips_the_default_files(set_dir: Path) -> None:
    # The swap test is only as good as this writer: it must reproduce the real files.
    for file in FILES:
        doc = msgspec.toml.decode((set_dir / file).read_bytes())
        assert msgspec.toml.decode(toml_document(doc)) == doc
