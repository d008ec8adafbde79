"""Session-style APIs: a value from one answer (GLPI's session token) fills the next requests."""

from __future__ import annotations

import pytest

from service.sources.writeback.base import HttpRequest, capture, fill

INIT = HttpRequest(
    method="GET",
    url="https://glpi.example.com/apirest.php/initSession",
    capture={"session": "session_token"},
)
UPDATE = HttpRequest(
    method="PUT",
    url="https://glpi.example.com/apirest.php/Ticket/{session}",
    headers={"Session-Token": "{session}", "App-Token": "app"},
    body=b'{"input":{"name":"{session}"}}',
)


def test_the_captured_value_fills_header_values_only() -> None:
    variables = capture(INIT, b'{"session_token": "83af7e62"}')
    assert variables == {"session": "83af7e62"}
    filled = fill(UPDATE, variables)
    assert filled.headers == {"Session-Token": "83af7e62", "App-Token": "app"}
    assert (filled.url, filled.body) == (UPDATE.url, UPDATE.body)


def test_a_request_without_capture_takes_nothing_and_fill_without_variables_is_identity() -> None:
    assert capture(UPDATE, b"not json at all") == {}
    assert fill(UPDATE, {}) is UPDATE


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>login</html>", "answered no JSON"),
        (b'["session_token"]', "answered no `session_token`"),
        (b'{"token": "x"}', "answered no `session_token`"),
        (b'{"session_token": ""}', "answered no `session_token`"),
        (b'{"session_token": null}', "answered no `session_token`"),
        (b'{"session_token": {"a": 1}}', "answered no `session_token`"),
    ],
)
def test_an_answer_without_the_value_fails_the_attempt(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        capture(INIT, body)
    assert str(caught.value) == f"GET https://glpi.example.com/apirest.php/initSession {reason}"
