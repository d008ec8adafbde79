"""A write-back that opened a session on the tool (GLPI's ``initSession``) ends it, however the
write-back ends: sent, superseded by a newer revision, or failed. Before, only a write-back that
got through sent ``killSession``; the others left the session open on the tool's side."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest
import redis

from service.core.calls import Call
from service.core.tables import TableSet
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from service.sources.outbox import Outbox, Revision, Sender
from service.sources.writeback.base import HttpRequest
from tests.integration.sources.outbox_support import decision

TOKEN = "glpi-session-7f3a"


def _glpi_tables(base: LoadedSet) -> TableSet:
    """``base`` with only its glpi source, writing back to a placeholder URL without back-off."""
    glpi = next(s for s in base.tables.sources.source if s.name == "glpi")
    assert glpi.writeback is not None
    wb = msgspec.structs.replace(
        glpi.writeback, base_url="http://glpi.invalid", retries=2, backoff=0.0
    )
    sources = msgspec.structs.replace(
        base.tables.sources, source=[msgspec.structs.replace(glpi, writeback=wb)]
    )
    return msgspec.structs.replace(base.tables, sources=sources)


def _submitted(outbox: Outbox, conn: redis.Redis, base: LoadedSet, ticket_id: str) -> str:
    """A glpi ticket with an item and its first decision waiting in the outbox; the item's id."""
    call = Call(type="incident", impact="user", urgency="high")
    item, _ = ItemStore(conn).enqueue(
        call, decision(base, "user"), "glpi", ticket_id, None, datetime.now(UTC)
    )
    outbox.submit(
        "glpi", ticket_id, decision(base, "group"), datetime.now(UTC), Revision(item.id, 1)
    )
    return item.id


class Glpi:
    """A transport answering as GLPI's legacy API does; ``on`` runs a hook per request path."""

    def __init__(self, on: dict[str, Callable[[], int]] | None = None) -> None:
        self.sent: list[tuple[str, str, str | None]] = []
        self.on = on or {}

    def __call__(self, request: HttpRequest, timeout: float) -> tuple[int, bytes]:
        path = request.url.split("/apirest.php", 1)[1]
        self.sent.append((request.method, path, request.headers.get("Session-Token")))
        status = self.on[path]() if path in self.on else 200
        if path == "/initSession":
            return status, msgspec.json.encode({"session_token": TOKEN})
        return status, b"[]"


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USM_SOURCE_GLPI_TOKEN", "user-token")


def test_a_write_back_that_gets_through_ends_its_session(
    outbox: Outbox, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    tables = _glpi_tables(default_set)
    _submitted(outbox, redis_client, default_set, "41")
    tool = Glpi()
    assert Sender(outbox, lambda: tables, transport=tool).run_once() == 1
    assert tool.sent == [
        ("GET", "/initSession", None),
        ("PUT", "/Ticket/41", TOKEN),
        ("GET", "/killSession", TOKEN),
    ]
    assert outbox.pending() == (0, None)


def test_a_write_back_superseded_mid_session_ends_its_session_and_sends_no_update(
    outbox: Outbox, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    tables = _glpi_tables(default_set)
    item = _submitted(outbox, redis_client, default_set, "42")

    def newer_arrives() -> int:  # while the session opens, the ticket is re-scored
        newer = decision(default_set, "organisation")
        outbox.submit("glpi", "42", newer, datetime.now(UTC), Revision(item, 2))
        return 200

    tool = Glpi({"/initSession": newer_arrives})
    assert Sender(outbox, lambda: tables, transport=tool).run_once() == 1
    assert tool.sent == [("GET", "/initSession", None), ("GET", "/killSession", TOKEN)]
    # The newer revision is due now and goes out in a session of its own.
    tool.on.clear()
    assert Sender(outbox, lambda: tables, transport=tool).run_once() == 1
    assert [s[:2] for s in tool.sent[2:]] == [
        ("GET", "/initSession"),
        ("PUT", "/Ticket/42"),
        ("GET", "/killSession"),
    ]


def test_a_failed_update_ends_its_session_and_is_retried(
    outbox: Outbox, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    tables = _glpi_tables(default_set)
    _submitted(outbox, redis_client, default_set, "43")
    tool = Glpi({"/Ticket/43": lambda: 500})
    assert Sender(outbox, lambda: tables, transport=tool).run_once() == 1
    assert tool.sent == [
        ("GET", "/initSession", None),
        ("PUT", "/Ticket/43", TOKEN),
        ("GET", "/killSession", TOKEN),
    ]
    assert outbox.pending()[0] == 1  # the attempt failed; the entry waits for its retry


def test_a_session_that_cannot_be_ended_leaves_the_update_done(
    outbox: Outbox, default_set: LoadedSet, redis_client: redis.Redis
) -> None:
    tables = _glpi_tables(default_set)
    _submitted(outbox, redis_client, default_set, "44")
    tool = Glpi({"/killSession": lambda: 503})
    assert Sender(outbox, lambda: tables, transport=tool).run_once() == 1
    assert [s[1] for s in tool.sent] == ["/initSession", "/Ticket/44", "/killSession"]
    assert outbox.pending() == (0, None)  # the tool shows the decision: nothing to retry
