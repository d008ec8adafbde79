"""Load and validate table sets: ``tables/<version>/*.toml`` -> :class:`LoadedSet`.

A set is refused as a whole: every problem in every file is collected first, so one run of
``usm tables validate`` lists them all.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from service.core.scoring import Scorer
from service.core.tables import FILES, OPTIONAL_FILES, TableSet
from service.core.validation import Problem, validate
from service.errors import InvalidTables
from service.files.handlers import PythonHandlers, handler_problems
from service.files.keys import decode_problem

__all__ = ["SCHEMA_DIR", "LoadedSet", "content_hash", "load_all", "load_set", "set_dirs"]

SCHEMA_DIR = "schema"
"""Folder under ``tables/`` that holds the generated JSON Schemas, not a table set."""


class LoadedSet(msgspec.Struct, frozen=True, kw_only=True):
    """A validated table set with its content hash and where it came from."""

    tables: TableSet
    hash: str
    path: str

    @property
    def version(self) -> str:
        """The set's version, from ``set.toml``."""
        return self.tables.version

    def scorer(self) -> Scorer:
        """A new scorer for this set (with an empty memo)."""
        return Scorer(self.tables, self.hash)


def content_hash(tables: TableSet) -> str:
    """Hash of the set's meaning, not its layout: comments and key order do not change it."""
    digest = hashlib.sha256(msgspec.json.encode(tables, order="sorted")).hexdigest()
    return f"sha256:{digest[:16]}"


def set_dirs(root: Path) -> list[Path]:
    """Version directories under ``root``; ``root`` itself when it holds a ``set.toml``."""
    if (root / "set.toml").is_file():
        return [root]
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and p.name != SCHEMA_DIR and not p.name.startswith(".")
    )


def load_set(directory: Path) -> LoadedSet:
    """Decode and validate one version directory; :class:`InvalidTables` lists every problem."""
    problems: list[Problem] = []
    parts: dict[str, object] = {}
    prefix = directory.name
    for name, kind in FILES.items():
        path = directory / name
        label = f"{prefix}/{name}"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            if name in OPTIONAL_FILES:
                continue
            problems.append(Problem(file=label, key="(file)", reason="missing file"))
            continue
        try:
            # TOML is UTF-8 by definition. Decoded here, not by msgspec: msgspec 0.19 lets the
            # codec error through, 0.23 wraps it in a DecodeError without the byte offset.
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text: byte {exc.start} cannot be decoded"
            problems.append(Problem(file=label, key="(file)", reason=reason))
            continue
        try:
            parts[name.removesuffix(".toml")] = msgspec.toml.decode(text, type=kind)
        except msgspec.MsgspecError as exc:
            problems.append(decode_problem(label, kind, exc, raw))
    for extra in sorted(directory.glob("*.toml")):
        # A misspelt file name would otherwise be ignored in silence; hidden files are editors'.
        if extra.name not in FILES and not extra.name.startswith("."):
            problems.append(
                Problem(
                    file=f"{prefix}/{extra.name}",
                    key="(file)",
                    reason=f"unknown table file; allowed: {', '.join(FILES)}",
                )
            )
    if problems:
        raise InvalidTables(problems)
    tables = TableSet(**parts)  # type: ignore[arg-type]
    problems = [
        Problem(file=f"{prefix}/{p.file}", key=p.key, reason=p.reason) for p in validate(tables)
    ]
    if problems:
        raise InvalidTables(problems)
    return LoadedSet(tables=tables, hash=content_hash(tables), path=str(directory))


def load_all(root: Path, python_handlers: PythonHandlers | None = None) -> list[LoadedSet]:
    """Every set under ``root``, oldest effective date first; refuses duplicates and bad sets.

    Args:
        root: The tables directory (or one version directory).
        python_handlers: The deployment's allow-list; a set whose team names a ``python``
            handler outside it is refused. None skips that check, for tools that only read the
            tables (diff, replay, render) and never run a handler.
    """
    if not root.is_dir():
        raise InvalidTables([Problem(file=str(root), key="(dir)", reason="not a directory")])
    problems: list[Problem] = []
    loaded: list[LoadedSet] = []
    for directory in set_dirs(root):
        try:
            loaded.append(load_set(directory))
        except InvalidTables as exc:
            problems.extend(exc.problems)  # type: ignore[arg-type]
    seen: dict[str, str] = {}
    for s in loaded:
        if s.version in seen:
            problems.append(
                Problem(
                    file=f"{Path(s.path).name}/set.toml",
                    key="version",
                    reason=f"duplicate version '{s.version}' (also in {seen[s.version]}/set.toml)",
                )
            )
        seen.setdefault(s.version, Path(s.path).name)
        if python_handlers is not None:
            problems.extend(handler_problems(s.tables, s.path, python_handlers))
    # Two sets starting at the same moment would leave the active one to a tie-break on the
    # version string; governance must say which one is meant.
    starts: dict[object, str] = {}
    for s in loaded:
        start = s.tables.effective_from
        if start in starts and starts[start] != s.version:
            problems.append(
                Problem(
                    file=f"{Path(s.path).name}/set.toml",
                    key="effective_from",
                    reason=(
                        f"same effective_from as version '{starts[start]}' "
                        f"({start.isoformat()}); each version needs its own moment"
                    ),
                )
            )
        starts.setdefault(start, s.version)
    if not loaded and not problems:
        problems.append(Problem(file=str(root), key="(dir)", reason="no table set found"))
    if problems:
        raise InvalidTables(problems)
    return sorted(loaded, key=lambda s: (s.tables.effective_from, s.version))
