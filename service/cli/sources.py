"""``usm sources sync|dead|requeue``: reconcile a ticketing tool, inspect failed write-backs."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import redis

from service.connection import connect
from service.files.loader import load_all
from service.files.store import TableStore
from service.settings import Settings

if TYPE_CHECKING:
    from service.sources.outbox import Outbox

__all__ = ["register"]


def register(sub: Any) -> None:
    sources = sub.add_parser("sources", help="connected ticketing tools: sync, write-back")
    ssub = sources.add_subparsers(dest="sources_command", required=True)

    s = ssub.add_parser(
        "sync", help="pull tickets changed since the last sync (lost events) and apply them"
    )
    s.add_argument(
        "source", help="source name from sources.toml: rt, jira, servicenow, zammad, glpi"
    )
    s.add_argument("--tables", default=None, help="table sets directory (USM_TABLES)")
    s.add_argument(
        "--since",
        type=datetime.fromisoformat,
        default=None,
        help="RFC 3339 moment to start from (default: the last successful sync, or a day ago)",
    )
    s.set_defaults(func=_sync)

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


def _sync(args: argparse.Namespace) -> int:
    from service.api.sources import find_source
    from service.sources.sync import sync_source

    settings = Settings.from_env(tables=args.tables)
    now = datetime.now(UTC)
    store = TableStore(load_all(Path(settings.tables)))
    active = store.active(now)
    source = find_source(active.tables.sources.source, args.source)
    since = args.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        report = sync_source(_conn(), source, store.scorer(now), since)
    except (OSError, redis.RedisError) as exc:  # the tool or Redis: a message, not a traceback
        sys.stderr.write(
            f"usm sources sync {args.source}: {exc}; the last sync mark stays, so the next run "
            "covers the same span\n"
        )
        return 1
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n")
    return 1 if report.refused else 0


def _dead(args: argparse.Namespace) -> int:
    for member in _outbox().dead():
        print(member)
    return 0


def _requeue(args: argparse.Namespace) -> int:
    if not _outbox().requeue_dead(args.ticket, datetime.now(UTC).timestamp()):
        sys.stderr.write(f"usm sources: '{args.ticket}' is not dead-lettered\n")
        return 1
    return 0
