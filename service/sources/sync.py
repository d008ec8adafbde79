"""Reconciliation: pull tickets changed since the last sync, so lost events lose nothing.

Webhooks get lost (usm down, network, a tool that gave up). ``usm sources sync rt`` asks RT's
search API for every ticket updated since the last successful sync (minus a margin for clocks),
turns each into the same payload the RT scrip sends, and runs it through the same mapping and
item rules as a live event. Decisions the ticket does not show yet go to the write-back outbox.
The sync is idempotent: running it twice changes nothing the second time.
"""

from __future__ import annotations

import logging
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import redis

from service.core.mapping import map_event
from service.core.scoring import Scorer
from service.core.sources import Source
from service.dispatch.keys import PREFIX
from service.dispatch.store import ItemStore
from service.errors import InvalidEvent, NotFound
from service.sources.inbound import Action, handle_event
from service.sources.outbox import Outbox
from service.sources.secrets import secrets_for
from service.sources.writeback.rt import auth_header, rt_date

__all__ = ["SyncReport", "rt_tickets", "sync_source"]

log = logging.getLogger("usm.sources.sync")

MARGIN = timedelta(minutes=2)
"""Look this much further back than the last sync: clocks of RT and usm may differ a little."""

_WRITE = (Action.QUEUED, Action.RESCORED, Action.SCORED)


def _sync_key(source: str) -> str:
    return f"{PREFIX}:sources:sync:{source}"


class SyncReport(msgspec.Struct, kw_only=True):
    """What one sync did."""

    source: str
    since: datetime
    tickets: int = 0
    actions: dict[str, int] = {}
    written_back: int = 0
    refused: list[str] = []
    """``<ticket>: <reason>`` for tickets the mapping refuses (fix them in the tool)."""


def _get(url: str, token: str | None, timeout: float) -> Any:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = auth_header(token)
    with urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=timeout
    ) as resp:
        return msgspec.json.decode(resp.read())


def _payload(ticket: dict[str, Any]) -> dict[str, Any]:
    """A REST2 ticket in the shape the USM scrip posts (integrations/rt/initialdata.pm)."""
    fields: dict[str, Any] = {}
    for cf in ticket.get("CustomFields") or []:
        values = cf.get("values") or []
        fields[cf.get("name")] = values[0] if len(values) == 1 else (values or None)
    created = ticket.get("Created")
    return {
        "event": "update",
        "ticket": {
            "id": int(ticket["id"]),
            "status": ticket.get("Status"),
            "created": None if created in (None, "", "1970-01-01T00:00:00Z") else created,
            "custom_fields": fields,
        },
    }


def rt_tickets(base_url: str, token: str | None, since: datetime, timeout: float) -> Iterator[Any]:
    """Every RT ticket updated after ``since``, as the scrip's payload (REST2 search, paged)."""
    base = base_url.rstrip("/") + "/REST/2.0"
    query = f"LastUpdated > '{rt_date(since)}'"
    page = 1
    while True:
        params = urllib.parse.urlencode(
            {"query": query, "page": page, "per_page": 100, "orderby": "id"}
        )
        found = _get(f"{base}/tickets?{params}", token, timeout)
        for entry in found.get("items") or []:
            yield _payload(_get(f"{base}/ticket/{entry['id']}", token, timeout))
        if page >= int(found.get("pages") or 1):
            return
        page += 1


def sync_source(
    conn: redis.Redis,
    source: Source,
    scorer: Scorer,
    since: datetime | None = None,
) -> SyncReport:
    """Pull the source's tickets changed since the last sync and apply them like live events.

    Raises:
        NotFound: the source cannot be synced (no write-back settings, or not RT).
        OSError: the tool cannot be reached; the last-sync mark stays, so nothing is skipped.
    """
    wb = source.writeback
    if wb is None or wb.adapter != "rt":
        raise NotFound(
            f"source '{source.name}' cannot be synced: reconciliation needs an rt write-back"
        )
    started = datetime.now(UTC)
    if since is None:
        mark = conn.get(_sync_key(source.name))
        since = (
            datetime.fromisoformat(bytes(mark).decode()) - MARGIN  # type: ignore[arg-type]
            if mark
            else started - timedelta(days=1)
        )
    report = SyncReport(source=source.name, since=since)
    store, outbox = ItemStore(conn), Outbox(conn)
    token = secrets_for(source.name).token
    priority_field = wb.fields.get("usm_priority", "USM Priority")
    for payload in rt_tickets(wb.base_url, token, since, wb.timeout):
        report.tickets += 1
        now = datetime.now(UTC)
        try:
            event = map_event(source, payload)
            answer, _ = handle_event(source, event, scorer, store, now)
        except InvalidEvent as exc:
            report.refused.append(f"{payload['ticket']['id']}: {exc}")
            continue
        report.actions[answer.action.value] = report.actions.get(answer.action.value, 0) + 1
        shown = payload["ticket"]["custom_fields"].get(priority_field)
        d = answer.decision
        if d is not None and (answer.action in _WRITE or shown != d.priority.name):
            report.written_back += outbox.submit(source.name, event.ticket_id, d, now) > 0
    conn.set(_sync_key(source.name), started.isoformat())
    return report
