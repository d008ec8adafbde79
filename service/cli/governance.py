"""``usm tables diff|replay|render``: the review tools a table pull request shows.

A set is named by a path: a version directory (``tables/2027.1``), a tables directory (its
newest set), or ``DIR@VERSION`` (``tables@2026.1``; ``tables@active`` is the set in force now).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from service.errors import InvalidTables
from service.files.loader import LoadedSet, load_all, load_set
from service.files.store import Versions
from service.governance.diff import diff_sets
from service.governance.markdown import diff_markdown, versions_markdown
from service.governance.render import matrix_html, matrix_markdown
from service.governance.replay import input_grid, read_calls, replay, replay_markdown

__all__ = ["register_tables", "resolve_set"]


class SetNotFound(Exception):
    """A set spec names nothing loadable."""


def resolve_set(spec: str, now: datetime | None = None) -> tuple[LoadedSet, list[LoadedSet]]:
    """The set ``spec`` names, and every set of its tables directory (for the version list).

    Raises:
        InvalidTables: The directory holds an invalid set.
        SetNotFound: No such directory or version.
    """
    path, _, version = spec.partition("@")
    root = Path(path)
    if (root / "set.toml").is_file() and not version:
        one = load_set(root)
        return one, [one]
    if not root.is_dir():
        raise SetNotFound(f"{path}: no such directory")
    sets = load_all(root)
    if not version:
        return sets[-1], sets
    if version == "active":
        return Versions.of(sets).active(now or datetime.now(UTC)), sets
    for s in sets:
        if s.version == version:
            return s, sets
    known = ", ".join(s.version for s in sets)
    raise SetNotFound(f"{path}: no table set version '{version}'; known: {known}, active")


def register_tables(tsub: Any) -> None:
    """Add ``diff``, ``replay`` and ``render`` under ``usm tables``."""
    d = tsub.add_parser("diff", help="markdown report of what changes from OLD to NEW")
    d.add_argument("old", help="old set: version dir, tables dir (newest set) or DIR@VERSION")
    d.add_argument("new", help="new set, same forms")
    d.add_argument("--format", choices=("markdown", "json"), default="markdown")
    d.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    d.set_defaults(func=_diff)

    r = tsub.add_parser("replay", help="how many calls would change priority or team")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--calls", type=Path, help="JSON lines, JSON array or batch body of calls")
    src.add_argument("--from-log", metavar="REDIS_URL", help="the service's decision log")
    src.add_argument(
        "--from-events",
        metavar="REDIS_URL",
        help="recorded source events, mapped again with each set's sources.toml: per ticket",
    )
    src.add_argument(
        "--grid", action="store_true", help="every distinct input of both sets (a census)"
    )
    r.add_argument(
        "--limit", type=int, default=10_000, help="newest N entries (--from-log, --from-events)"
    )
    r.add_argument("--old", default="tables@active", help="default: the set in force now")
    r.add_argument("--new", default="tables", help="default: the newest set in tables/")
    r.add_argument("--examples", type=int, default=10, help="changed calls to show")
    r.add_argument("--format", choices=("markdown", "json"), default="markdown")
    r.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    r.set_defaults(func=_replay)

    m = tsub.add_parser("render", help="the matrix as markdown (stdout) and a colour-coded page")
    m.add_argument("set", nargs="?", default="tables@active", help="default: the set in force")
    m.add_argument("--html", type=Path, help="also write the HTML page here")
    m.add_argument("--markdown", type=Path, help="write the markdown here instead of stdout")
    m.set_defaults(func=_render)


def _fail(exc: Exception) -> int:
    if isinstance(exc, InvalidTables):
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); the table sets were refused", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return 1


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")


def _diff(args: argparse.Namespace) -> int:
    try:
        old, old_all = resolve_set(args.old)
        new, new_all = resolve_set(args.new)
    except (InvalidTables, SetNotFound) as exc:
        return _fail(exc)
    diff = diff_sets(old.tables, new.tables, old.hash, new.hash)
    if args.format == "json":
        _emit(msgspec.json.format(msgspec.json.encode(diff)).decode() + "\n", args.output)
        return 0
    text = diff_markdown(diff, new.tables)
    if len(old_all) > 1 or len(new_all) > 1:  # tables directories: say which versions moved
        text = versions_markdown(old_all, new_all) + "\n" + text
    _emit(text, args.output)
    return 0


def _replay(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    try:
        old, _ = resolve_set(args.old, now)
        new, _ = resolve_set(args.new, now)
    except (InvalidTables, SetNotFound) as exc:
        return _fail(exc)
    if args.from_events is not None:
        return _replay_events(args, old, new)
    try:
        if args.grid:
            calls = input_grid(old.tables, new.tables)
            source = "every input combination (call type, service, category, levels)"
        elif args.calls is not None:
            calls = read_calls(args.calls)
            source = f"`{args.calls}`"
        else:
            calls = _from_log(args.from_log, args.limit)
            source = "the decision log"
    except (OSError, ValueError) as exc:
        return _fail(exc)
    report = replay(calls, old.scorer(), new.scorer(), now, args.examples)
    if args.format == "json":
        _emit(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n", args.output)
    else:
        _emit(replay_markdown(report, source), args.output)
    return 0


def _replay_events(args: argparse.Namespace, old: LoadedSet, new: LoadedSet) -> int:
    import redis

    from service.connection import connect, redacted
    from service.governance.event_log import read_events
    from service.governance.event_replay import replay_events, replay_events_markdown

    client = connect(args.from_events, timeout=30, connect_timeout=5)
    try:
        events = read_events(client, args.limit)
    except redis.RedisError as exc:
        return _fail(ValueError(f"source events at {redacted(args.from_events)}: {exc}"))
    finally:
        client.close()
    report = replay_events(events, old.scorer(), new.scorer())
    if args.format == "json":
        _emit(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n", args.output)
    else:
        _emit(replay_events_markdown(report, args.examples), args.output)
    return 0


def _from_log(url: str, limit: int) -> list[Any]:
    import redis

    from service.connection import connect, redacted
    from service.governance.decision_log import read_log

    client = connect(url, timeout=30, connect_timeout=5)
    try:
        return [entry.call for entry in read_log(client, limit)]
    except redis.RedisError as exc:
        raise ValueError(f"decision log at {redacted(url)}: {exc}") from None
    finally:
        client.close()


def _render(args: argparse.Namespace) -> int:
    try:
        chosen, _ = resolve_set(args.set)
    except (InvalidTables, SetNotFound) as exc:
        return _fail(exc)
    _emit(matrix_markdown(chosen.tables, chosen.hash), args.markdown)
    if args.html is not None:
        _emit(matrix_html(chosen.tables, chosen.hash), args.html)
        print(f"wrote {args.html}", file=sys.stderr)
    return 0
