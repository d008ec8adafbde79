"""``usm sources sync|synced|dead|requeue``: reconcile ticketing tools, inspect failed write-backs.

``usm sources sync --all`` reconciles every source with a write-back (the tools whose API can be
searched); deploy/k8s runs it as a CronJob, deploy/compose.yaml as a service with ``--every``, and
``usm sources synced --all --within SECONDS`` is that service's health check.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import redis

from service.connection import connect
from service.errors import UsmError
from service.files.loader import load_all
from service.files.store import TableStore
from service.settings import Settings

if TYPE_CHECKING:
    from service.core.sources import Source
    from service.core.tables import TableSet
    from service.sources.outbox import Outbox

__all__ = ["register"]


def register(sub: Any) -> None:
    sources = sub.add_parser("sources", help="connected ticketing tools: sync, write-back")
    ssub = sources.add_subparsers(dest="sources_command", required=True)

    s = ssub.add_parser(
        "sync", help="pull tickets changed since the last sync (lost events) and apply them"
    )
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "source",
        nargs="?",
        help="source name from sources.toml: rt, jira, servicenow, zammad, glpi",
    )
    which.add_argument(
        "--all",
        action="store_true",
        dest="all_sources",
        help="every source with a [source.writeback] in the table set in force; one failing "
        "tool does not stop the others (exit 1 if any failed)",
    )
    s.add_argument("--tables", default=None, help="table sets directory (USM_TABLES)")
    s.add_argument(
        "--since",
        type=datetime.fromisoformat,
        default=None,
        help="RFC 3339 moment to start from (default: the last successful sync, or a day ago)",
    )
    s.add_argument(
        "--every",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="run again SECONDS after each run ends, until stopped (a compose service; on "
        "Kubernetes a CronJob runs it instead)",
    )
    s.set_defaults(func=_sync)

    c = ssub.add_parser(
        "synced", help="exit 1 unless each source's last complete sync started recently"
    )
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("source", nargs="?", help="source name from sources.toml")
    which.add_argument(
        "--all",
        action="store_true",
        dest="all_sources",
        help="every source with a [source.writeback] in the table set in force",
    )
    c.add_argument("--tables", default=None, help="table sets directory (USM_TABLES)")
    c.add_argument(
        "--within",
        type=_seconds,
        required=True,
        metavar="SECONDS",
        help="how long ago the last complete sync may have started",
    )
    c.set_defaults(func=_synced)

    d = ssub.add_parser("dead", help="list tickets whose write-back was dead-lettered")
    d.set_defaults(func=_dead)

    r = ssub.add_parser("requeue", help="give a dead-lettered write-back new attempts")
    r.add_argument("ticket", help="<source>:<ticket id>, as `usm sources dead` lists it")
    r.set_defaults(func=_requeue)


def _conn() -> redis.Redis:
    settings = Settings.from_env()
    if not settings.redis_url:
        sys.stderr.write("usm sources: set REDIS_URL to the service's Redis\n")
        raise SystemExit(2)
    return connect(settings.redis_url, timeout=30.0, connect_timeout=5.0)


def _outbox() -> Outbox:
    # Imported when run, like everything that imports prometheus_client: `usm serve` (the same
    # CLI) must choose the metrics' multiprocess mode before anything imports it.
    from service.sources.outbox import Outbox

    return Outbox(_conn())


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds from 0 (exclusive) to 86400")
    return value


def _active(args: argparse.Namespace) -> tuple[TableSet, Any]:
    """The table set in force now and a scorer for it."""
    settings = Settings.from_env(tables=args.tables)
    now = datetime.now(UTC)
    store = TableStore(load_all(Path(settings.tables)))
    return store.active(now).tables, store.scorer(now)


def _chosen(args: argparse.Namespace, tables: TableSet) -> list[Source]:
    """The named source, or with ``--all`` every source with a write-back (a searchable API)."""
    from service.api.sources import find_source

    sources = tables.sources.source
    if args.all_sources:
        return [s for s in sources if s.writeback is not None]
    return [find_source(sources, args.source)]


def _sync(args: argparse.Namespace) -> int:
    if args.every is not None and args.since is not None:
        sys.stderr.write("usm sources sync: --since starts one run; --every runs from the marks\n")
        return 2
    conn = _conn()
    if args.every is None:
        return _sync_round(args, conn)
    while True:  # until SIGTERM: a run stopped half-way keeps its marks, the next covers it
        try:
            _sync_round(args, conn)
        except UsmError as exc:  # tables that do not load now may load at the next run
            sys.stderr.write(f"usm sources sync: {exc}\n")
        time.sleep(args.every)


def _sync_round(args: argparse.Namespace, conn: redis.Redis) -> int:
    """One sync of each chosen source; 1 when any failed or had tickets the mapping refused."""
    from service.sources.sync import sync_source

    tables, scorer = _active(args)
    since = args.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    code = 0
    for source in _chosen(args, tables):
        try:
            report = sync_source(conn, source, scorer, since)
        except (OSError, redis.RedisError) as exc:  # the tool or Redis: a message, no traceback
            sys.stderr.write(
                f"usm sources sync {source.name}: {exc}; the last sync mark stays, so the next "
                "run covers the same span\n"
            )
            code = 1
            continue
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n")
        sys.stdout.flush()
        code = max(code, 1 if report.refused else 0)
    return code


def _synced(args: argparse.Namespace) -> int:
    from service.sources.sync import last_sync

    tables, _ = _active(args)
    conn = _conn()
    oldest = datetime.now(UTC) - timedelta(seconds=args.within)
    stale = []
    for source in _chosen(args, tables):
        try:
            mark = last_sync(conn, source.name)
        except redis.RedisError as exc:
            sys.stderr.write(f"usm sources synced: Redis: {exc}\n")
            return 1
        if mark is None or mark < oldest:
            when = mark.isoformat() if mark else "never"
            stale.append(f"{source.name} (last complete sync: {when})")
    if stale:
        sys.stderr.write(f"usm sources synced: not within {args.within:g} s: {', '.join(stale)}\n")
        return 1
    return 0


def _dead(args: argparse.Namespace) -> int:
    for member in _outbox().dead():
        print(member)
    return 0


def _requeue(args: argparse.Namespace) -> int:
    if not _outbox().requeue_dead(args.ticket, datetime.now(UTC).timestamp()):
        sys.stderr.write(f"usm sources: '{args.ticket}' is not dead-lettered\n")
        return 1
    return 0
