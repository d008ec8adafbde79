"""Which requests the fast path serves itself and which it hands to litestar, body intact.

``test_api_fast_path.py`` shows the answers are the same either way; this shows the fast path
is taken at all (else that comparison would hold trivially) and that a request it passes on
reaches litestar with the body it has already read. The service is driven through its ASGI
interface, in process, with the suite's Redis counting the rate limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from service.api.app import create_app
from service.api.fast import FastPath, fast_routes, with_fast_path
from service.security.keys import hash_key
from service.settings import Settings
from tests.support.asgi_recorder import Recorder
from tests.support.served import asgi_call

KEY = "fast-path-routing-key-" + "k" * 20
CALL = {"type": "incident", "impact": "group", "urgency": 2, "reported_at": "2026-11-30T09:00:00Z"}


@pytest.fixture
def settings(redis_url: str, single_set_tables: Any, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("USM_API_KEYS", f"caller:score:{hash_key(KEY)}")
    monkeypatch.setenv("USM_RATE_LIMIT", "1000/hour")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("USM_FAST_PATH", raising=False)
    return Settings.from_env(tables=str(single_set_tables))


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[FastPath, Recorder]]:
    app = create_app(settings)
    recorder = Recorder(app)
    state = app.state
    yield FastPath(recorder, fast_routes(app), state.security, settings.max_body_bytes), recorder


def _call(
    app: Any, body: bytes, path: str = "/v1/priority", query: bytes = b"", **headers: str
) -> tuple[int, dict[bytes, bytes], bytes]:
    raw = {"content-type": "application/json", "authorization": f"Bearer {KEY}", **headers}
    raw["content-length"] = str(len(body))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(k.encode(), v.encode()) for k, v in raw.items() if v],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    # Two pieces: the fast path must join them, and replay both when it passes the request on.
    pieces = [
        {"type": "http.request", "body": body[:7], "more_body": True},
        {"type": "http.request", "body": body[7:], "more_body": False},
    ]
    sent = asgi_call(app, scope, pieces)
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent)


def test_a_well_formed_call_never_reaches_litestar(served: tuple[FastPath, Recorder]) -> None:
    app, recorder = served
    status, headers, body = _call(app, json.dumps(CALL).encode())
    assert status == 200, body
    assert json.loads(body)["priority"]["name"] == "P3"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"ratelimit-remaining"] == b"999"
    status, _, _ = _call(app, json.dumps(CALL).encode(), query=b"version=2026.1")
    assert status == 200
    assert recorder.bodies == []


@pytest.mark.parametrize(
    ("body", "query", "headers", "status"),
    [
        (b'{"type": "incident", "impact": 1, "urgency": "hgih"}', b"", {}, 422),
        (b'{"type": "x", "impact": 1, "urgency": 1}', b"", {}, 422),  # decoded, not scored
        (b"{not json", b"", {}, 400),
        (json.dumps(CALL).encode(), b"version=nope", {}, 400),
        (json.dumps(CALL).encode(), b"x=1", {}, 200),
        (b"\xef\xbb\xbf" + json.dumps(CALL).encode(), b"", {}, 200),
        (json.dumps(CALL).encode(), b"", {"content-type": "text/plain"}, 415),
        (json.dumps(CALL).encode(), b"", {"authorization": ""}, 401),
        (json.dumps(CALL).encode(), b"", {"authorization": "Bearer wrong-key-0000000000"}, 401),
    ],
)
def test_what_it_is_not_sure_of_goes_to_litestar_with_its_body(
    served: tuple[FastPath, Recorder],
    body: bytes,
    query: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    app, recorder = served
    got, answer_headers, answer = _call(app, body, query=query, **headers)
    assert got == status, answer
    # Refused before the body is read (401, 415); else litestar reads all of it.
    assert recorder.bodies == [b"" if status in (401, 415) else body]
    if status not in (401, 415):  # counted once against the key's limit, not twice
        assert answer_headers[b"ratelimit-remaining"] == b"999"


def test_a_batch_is_served_and_charged_once(served: tuple[FastPath, Recorder]) -> None:
    app, recorder = served
    status, headers, _ = _call(
        app, json.dumps({"calls": [CALL, CALL]}).encode(), path="/v1/priority/batch"
    )
    assert status == 200
    assert headers[b"ratelimit-remaining"] == b"998"
    assert recorder.bodies == []
    # A batch that fails to score goes to litestar, which charges its calls once and refuses.
    bad = json.dumps({"calls": [CALL, {**CALL, "type": "x"}]}).encode()
    status, headers, _ = _call(app, bad, path="/v1/priority/batch")
    assert status == 422
    assert headers[b"ratelimit-remaining"] == b"996"
    assert recorder.bodies == [bad]


def test_other_routes_pass_untouched(served: tuple[FastPath, Recorder]) -> None:
    app, recorder = served
    status, _, _ = _call(app, json.dumps(CALL).encode(), path="/v1/items")
    assert status == 403  # the key has the score scope only: litestar's path refuses it
    assert len(recorder.bodies) == 1


def test_the_setting_turns_it_off(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings)
    assert isinstance(with_fast_path(app), FastPath)
    monkeypatch.setenv("USM_FAST_PATH", "off")
    assert with_fast_path(app) is app
