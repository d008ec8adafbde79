"""``usm tables validate|schema``: the governance checks a table pull request runs."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.cli.governance import register_tables
from service.errors import InvalidTables
from service.files.handlers import PythonHandlers
from service.files.loader import SCHEMA_DIR, load_all
from service.files.schema import stale_schemas, write_schemas
from service.files.store import Versions
from service.settings import Settings

__all__ = ["register"]


def register(sub: Any) -> None:
    tables = sub.add_parser("tables", help="validate and document the table sets")
    tsub = tables.add_subparsers(dest="tables_command", required=True)

    v = tsub.add_parser("validate", help="check every table set; exit 1 listing every problem")
    v.add_argument("dir", nargs="?", default="tables", type=Path)
    v.set_defaults(func=_validate)

    s = tsub.add_parser("schema", help="write the JSON Schemas next to the tables")
    s.add_argument("--dir", default=Path("tables") / SCHEMA_DIR, type=Path)
    s.add_argument("--check", action="store_true", help="exit 1 if the committed schemas are stale")
    s.set_defaults(func=_schema)

    register_tables(tsub)  # diff, replay, render: the governance review tools


def _validate(args: argparse.Namespace) -> int:
    try:
        handlers = PythonHandlers.parse(Settings.from_env().python_handlers)
        sets = load_all(args.dir, handlers)
        # The service refuses tables with no set in force yet: say so before they are merged.
        Versions.of(sets).active(datetime.now(UTC))
    except InvalidTables as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the table sets were refused", file=sys.stderr)
        return 1
    for s in sets:
        print(f"ok {s.version} {s.hash} effective from {s.tables.effective_from.isoformat()}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    if args.check:
        stale = stale_schemas(args.dir)
        for name in stale:
            print(f"stale: {args.dir / name} (run `usm tables schema`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(args.dir):
        print(f"wrote {path}")
    return 0
