"""Helpers for the deployment tests: repo paths, YAML, the table set's teams, Dockerfile parsing."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from service.files.loader import load_all

__all__ = [
    "DEPLOY",
    "ROOT",
    "Instruction",
    "dockerignore_excludes",
    "load_schema",
    "load_yaml",
    "parse_dockerfile",
    "priority_names",
    "push_teams",
]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document in ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema vendored beside these tests (``schemas/<name>.schema.json``)."""
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return schema


def push_teams(tables: Path = ROOT / "tables") -> set[str]:
    """Teams whose workers handle items (mode != "pull"), across every table-set version.

    Every version counts: a version that becomes effective later needs its workers running.
    """
    return {
        team.name
        for loaded in load_all(tables)
        for team in loaded.tables.teams.team
        if team.mode != "pull"
    }


def priority_names(tables: Path = ROOT / "tables") -> set[str]:
    """Priority level names (P1, ...) across every table-set version."""
    return {p.name for loaded in load_all(tables) for p in loaded.tables.levels.priority}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN, else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        return [str(v) for v in value]

    def flags_and_words(self) -> tuple[dict[str, str], list[str]]:
        """``--flag=value`` options and the remaining shell words (COPY, ADD, FROM)."""
        flags: dict[str, str] = {}
        words: list[str] = []
        for word in shlex.split(self.args):
            if word.startswith("--") and not words:
                key, _, value = word[2:].partition("=")
                flags[key] = value
            else:
                words.append(word)
        return flags, words


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continuation are ignored by Docker too
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1])
            continue
        buffer.append(stripped)
        text = " ".join(part.strip() for part in buffer if part.strip())
        keyword, _, args = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    return instructions


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore pattern syntax (Go filepath.Match plus ``**``) as a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def dockerignore_excludes(dockerignore: Path, relative: str) -> bool:
    """Whether ``relative`` (a path inside the build context) is left out of the context.

    Docker's rules: patterns apply in order and the last one that matches the path, or one of its
    parent folders, decides; a leading ``!`` re-includes.
    """
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in dockerignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        rules.append((negate, _pattern_regex(pattern)))
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return excluded
