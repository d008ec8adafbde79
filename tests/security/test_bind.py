"""Without any key the service listens on loopback only, says so, and refuses anything else."""

from __future__ import annotations

import logging

import pytest

from service.api.app import create_app
from service.security import InsecureBind, is_loopback
from service.security.keys import hash_key, new_key
from service.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.org", ""])
def test_other_addresses_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_non_loopback_host_without_keys_is_refused_with_the_way_out() -> None:
    with pytest.raises(InsecureBind) as err:
        create_app(Settings.from_env({"USM_HOST": "0.0.0.0"}))
    assert str(err.value) == (
        "refusing to listen on 0.0.0.0: no API keys are configured, so every endpoint would be "
        "open to the network. Configure keys (USM_API_KEYS_FILE or USM_API_KEYS; create one "
        "with `usm keys new --name NAME --scope score`) or bind to 127.0.0.1 (USM_HOST)."
    )


def test_the_open_loopback_mode_is_announced_at_start(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="usm.security")
    create_app(Settings.from_env({}))
    assert (
        "no API keys configured: every endpoint is open, so the API listens on loopback only "
        "(127.0.0.1)" in caplog.messages
    )


def test_with_keys_any_address_is_allowed_and_key_names_are_announced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="usm.security")
    env = {"USM_HOST": "0.0.0.0", "USM_API_KEYS": f"jira:dispatch:{hash_key(new_key())}"}
    create_app(Settings.from_env(env))
    assert "API keys required: 1 key(s) configured: jira" in caplog.messages


def test_usm_api_refuses_an_open_public_bind_with_one_line_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli.main import main

    monkeypatch.delenv("USM_API_KEYS", raising=False)
    monkeypatch.delenv("USM_API_KEYS_FILE", raising=False)
    assert main(["api", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usm api: refusing to listen on 0.0.0.0: no API keys are configured")
    assert err.count("\n") == 1
