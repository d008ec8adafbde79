"""``usm keys new`` prints a key once and the entry that makes the service accept it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from litestar.testing import TestClient

from service.api.app import create_app
from service.cli.main import main
from service.settings import Settings
from tests.fixtures.api import LOOPBACK


def test_the_printed_key_file_entry_makes_the_service_accept_the_printed_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "new", "--name", "servicenow", "--scope", "score"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"^  (usm_\S+)$", out, re.M)
    entry = re.search(r"^\[\[keys\]\]\n(?:.+\n){3}", out, re.M)
    assert key and entry, out
    path = tmp_path / "keys.toml"
    path.write_text(entry.group(0))
    app = create_app(Settings.from_env({}, api_keys_file=str(path), rate_limit="off"))
    with TestClient(app, base_url=LOOPBACK) as c:
        call = {"type": "incident", "impact": 1, "urgency": 1}
        ok = c.post("/v1/priority", json=call, headers={"X-API-Key": key.group(1)})
        assert ok.status_code == 200
        denied = c.get("/v1/teams", headers={"X-API-Key": key.group(1)})
        assert denied.status_code == 403
        assert denied.json()["detail"] == (
            "this endpoint needs scope 'dispatch'; API key 'servicenow' has: score"
        )


def test_the_environment_form_names_the_scopes_in_a_fixed_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["keys", "new", "--name", "ops", "--scope", "admin", "--scope", "score"])
    out = capsys.readouterr().out
    assert re.search(r"^  ops:score,admin:sha256:[0-9a-f]{64}$", out, re.M), out
    assert 'scopes = ["score", "admin"]' in out


def test_the_key_appears_exactly_once_in_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keys", "new", "--name", "x", "--scope", "dispatch"])
    out = capsys.readouterr().out
    key = re.search(r"usm_\S+", out)
    assert key is not None
    assert out.count(key.group(0)) == 1


def test_an_unusable_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--name", "two words", "--scope", "score"]) == 2
    assert "invalid --name 'two words'" in capsys.readouterr().err


def test_an_unknown_scope_is_refused_listing_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "new", "--name", "x", "--scope", "root"])
    err = capsys.readouterr().err
    assert "invalid choice: 'root' (choose from 'score', 'dispatch', 'admin')" in err
