"""JSON Schemas for the table files, generated from the msgspec types.

They ship in ``tables/schema/`` so editors validate while governance staff type (each TOML file
names its schema on its first line), and a test fails when they go stale.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from service.core.tables import FILES

__all__ = ["render_schemas", "schema_file_name", "stale_schemas", "write_schemas"]


def schema_file_name(table_file: str) -> str:
    """``levels.toml`` -> ``levels.schema.json``."""
    return table_file.removesuffix(".toml") + ".schema.json"


def render_schemas() -> dict[str, bytes]:
    """Schema file name -> pretty JSON, one per table file."""
    out: dict[str, bytes] = {}
    for name, kind in FILES.items():
        schema = msgspec.json.schema(kind)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"usm-dispatch {name}"
        out[schema_file_name(name)] = msgspec.json.format(msgspec.json.encode(schema)) + b"\n"
    return out


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in render_schemas().items():
        path = directory / name
        path.write_bytes(body)
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Schema files that are missing or differ from what the types generate."""
    return [
        name
        for name, body in render_schemas().items()
        if not (directory / name).is_file() or (directory / name).read_bytes() != body
    ]
