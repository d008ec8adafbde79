"""The JSON Schemas shipped in tables/schema/ match the msgspec types and the default files."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import msgspec
import pytest

from service.core.tables import FILES
from service.files.schema import render_schemas, schema_file_name, stale_schemas, write_schemas

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "tables" / "schema"
DEFAULT_SET = ROOT / "tables" / "2026.1"


def test_the_committed_schemas_are_current() -> None:
    # Fails after a change to service/core/tables.py until `usm tables schema` is run.
    assert stale_schemas(SCHEMA_DIR) == []


def test_a_changed_or_missing_schema_is_reported_stale(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    assert stale_schemas(tmp_path) == []
    (tmp_path / "levels.schema.json").write_text("{}\n")
    (tmp_path / "teams.schema.json").unlink()
    assert stale_schemas(tmp_path) == ["levels.schema.json", "teams.schema.json"]


def test_there_is_one_schema_per_table_file() -> None:
    assert sorted(render_schemas()) == sorted(schema_file_name(f) for f in FILES)


@pytest.mark.parametrize("file", list(FILES))
def test_each_default_file_names_its_schema_on_its_first_line(file: str) -> None:
    first = (DEFAULT_SET / file).read_text().splitlines()[0]
    assert first == f"#:schema ../schema/{schema_file_name(file)}"


@pytest.mark.parametrize("file", list(FILES))
def test_each_default_file_is_valid_under_its_schema(file: str) -> None:
    # What an editor checks while staff type must agree with what the loader accepts.
    schema = msgspec.json.decode((SCHEMA_DIR / schema_file_name(file)).read_bytes())
    document = msgspec.toml.decode((DEFAULT_SET / file).read_bytes())
    as_json = msgspec.json.decode(msgspec.json.encode(document))
    jsonschema.validate(as_json, schema, cls=jsonschema.Draft202012Validator)


def test_the_schema_rejects_an_unknown_key_like_the_loader() -> None:
    schema = msgspec.json.decode((SCHEMA_DIR / "set.schema.json").read_bytes())
    doc = {"version": "2026.1", "effective_from": "2026-01-01T00:00:00Z", "owner": "x"}
    with pytest.raises(jsonschema.ValidationError, match="'owner' was unexpected"):
        jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
