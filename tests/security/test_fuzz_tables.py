"""Hypothesis-made table files: the loader answers with validation problems, never a crash."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import hypothesis
import msgspec
from hypothesis import strategies as st

from service.errors import InvalidTables
from service.files.loader import load_set

TABLES = Path(__file__).resolve().parents[2] / "tables"
DEFAULT = sorted(p for p in TABLES.iterdir() if (p / "set.toml").is_file())[-1]
FILES = sorted(p.name for p in DEFAULT.glob("*.toml"))

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.dates()
    | st.datetimes()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, (*prefix, i))
    return found


def _load(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / DEFAULT.name
        shutil.copytree(DEFAULT, target)
        for name, raw in files.items():
            (target / name).write_bytes(raw)
        try:
            load_set(target)
        except InvalidTables as exc:
            assert exc.problems, "refused without a reason"
            for p in exc.problems:
                assert str(p).strip(), "a problem without text"


@hypothesis.settings(max_examples=150, deadline=None, database=None)
@hypothesis.given(data=st.data())
def test_a_mutated_value_in_any_table_file_is_refused_or_accepted_never_a_crash(
    data: st.DataObject,
) -> None:
    name = data.draw(st.sampled_from(FILES))
    doc = msgspec.toml.decode((DEFAULT / name).read_bytes())
    paths = _paths(doc)
    path = data.draw(st.sampled_from(paths))
    parent: Any = doc
    for step in path[:-1]:
        parent = parent[step]
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = data.draw(values)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=10))] = data.draw(values)
    else:
        parent.append(data.draw(values))
    _load({name: msgspec.toml.encode(doc)})


@hypothesis.settings(max_examples=150, deadline=None, database=None)
@hypothesis.given(
    name=st.sampled_from(FILES), raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
)
def test_arbitrary_bytes_as_a_table_file_are_refused_never_a_crash(name: str, raw: bytes) -> None:
    _load({name: raw})


@hypothesis.settings(max_examples=100, deadline=None, database=None)
@hypothesis.given(
    name=st.sampled_from(FILES),
    doc=st.dictionaries(st.text(min_size=1, max_size=10), values, max_size=5),
)
def test_a_generated_toml_document_as_a_table_file_is_refused_never_a_crash(
    name: str, doc: dict[str, Any]
) -> None:
    _load({name: msgspec.toml.encode(doc)})
