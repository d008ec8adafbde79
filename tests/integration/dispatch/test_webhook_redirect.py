"""A webhook receiver that redirects: nothing is followed, nothing signed leaks, the item fails.

Two real HTTP servers on 127.0.0.1: the configured receiver answers ``302 Location: <other>``,
the other records whatever reaches it (it stands for, say, a cloud metadata address).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import redis

from service.core.calls import Call
from service.core.tables import TableSet, WebhookHandler
from service.dispatch.config import DispatchConfig
from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue
from worker.runner import Worker


@dataclass
class Server:
    """A loopback HTTP server answering every request with ``status`` (and ``location``)."""

    status: int
    location: str = ""
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""


def _serve(spec: Server) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            spec.seen.append((self.command, dict(self.headers)))
            self.send_response(spec.status)
            if spec.location:
                self.send_header("Location", spec.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    spec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    running: list[http.server.ThreadingHTTPServer] = []

    def start(spec: Server) -> Server:
        running.append(_serve(spec))
        return spec

    yield [start(Server(status=200)), start(Server(status=302))]
    for server in running:
        server.shutdown()
        server.server_close()


def _tables(base: LoadedSet, url: str) -> TableSet:
    spec = WebhookHandler(url=url, secret_env="USM_TEST_WEBHOOK_SECRET", retries=1, backoff=0.01)
    teams = [
        msgspec.structs.replace(t, handler=spec) if t.name == "service_desk" else t
        for t in base.tables.teams.team
    ]
    return msgspec.structs.replace(
        base.tables, teams=msgspec.structs.replace(base.tables.teams, team=teams)
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_the_item_is_not_completed(
    status: int,
    monkeypatch: pytest.MonkeyPatch,
    servers: list[Server],
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
    redis_client: redis.Redis,
) -> None:
    monkeypatch.setenv("USM_TEST_WEBHOOK_SECRET", "s3cret")
    elsewhere, receiver = servers
    receiver.status, receiver.location = status, elsewhere.url
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    Worker(redis_client, _tables(base_set, receiver.url), ["service_desk"], config).run(burst=True)
    assert [method for method, _ in receiver.seen] == ["POST", "POST"]  # retried like a 5xx
    assert elsewhere.seen == []
    after = store.get(item.id)
    assert after.state is ItemState.DEAD
    assert after.error == (
        f"HandlerError: webhook failed after 2 attempts: HTTP {status} from {receiver.url} "
        f"(redirect to {elsewhere.url} not followed)"
    )
    assert "completed" not in [h.event for h in after.history]
