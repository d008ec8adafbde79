"""What the outbox tests share: a local HTTP receiver standing in for RT, the rt source pointed
at it, decisions, real items."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import redis

from service.core.calls import Call
from service.core.decision import Decision
from service.core.tables import TableSet
from service.dispatch.items import Item
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet

__all__ = ["Receiver", "decision", "rt_item", "rt_tables"]


class Receiver:
    """A local HTTP server that records every PUT and answers with a chosen status.

    With ``hold_first``, the first request is held until :attr:`release` is set (a slow tool);
    requests are recorded once through, in the order the tool *applied* them.
    """

    def __init__(self, hold_first: bool = False) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.status = 200
        self.arrived = threading.Event()
        """Set when the first request arrived."""
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not outer.arrived.is_set():
                    outer.arrived.set()
                    outer.release.wait(30)
                outer.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def priorities(self) -> list[str]:
        """The USM priority of every write-back, in the order the tool applied them."""
        return [msgspec.json.decode(b)["CustomFields"]["USM Priority"] for *_, b in self.requests]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()


def rt_tables(base: LoadedSet, url: str, *, retries: int = 2, timeout: float = 10.0) -> TableSet:
    """``base`` with only its rt source, writing back to ``url`` without back-off."""
    rt = base.tables.sources.source[0]
    assert rt.writeback is not None
    wb = msgspec.structs.replace(
        rt.writeback, base_url=url, retries=retries, timeout=timeout, backoff=0.0
    )
    sources = msgspec.structs.replace(
        base.tables.sources, source=[msgspec.structs.replace(rt, writeback=wb)]
    )
    return msgspec.structs.replace(base.tables, sources=sources)


def decision(base: LoadedSet, impact: str) -> Decision:
    """The decision for a high-urgency incident of ``impact``."""
    call = Call(type="incident", impact=impact, urgency="high")
    return base.scorer().score(call, datetime(2026, 3, 2, 9, tzinfo=UTC))


def rt_item(conn: redis.Redis, base: LoadedSet, ticket_id: str) -> Item:
    """A real item for the rt ticket: the outbox orders a ticket's decisions by its item."""
    call = Call(type="incident", impact="user", urgency="high")
    item, _ = ItemStore(conn).enqueue(
        call, decision(base, "user"), "rt", ticket_id, None, datetime.now(UTC)
    )
    return item
