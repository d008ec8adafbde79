"""The governance endpoints in-process: versions switch by the clock, admin reload is guarded."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from litestar.testing import TestClient

from service.api.app import create_app
from service.api.governance import GovernancePlugin
from service.errors import NoTableInForce
from service.files.loader import load_all, load_set
from service.files.store import TableStore
from service.governance.config import GovernanceConfig
from service.governance.decision_log import read_log
from service.governance.keys import DECISION_LOG
from service.security.keys import hash_key, new_key
from service.settings import Settings
from tests.fixtures.api import LOOPBACK
from tests.support.tables import future_copy, single_set_tables

TABLES = Path(__file__).resolve().parents[3] / "tables"
CALL = {"type": "incident", "impact": "group", "urgency": "high"}


def _future_copy(tmp_path: Path, seconds: float) -> tuple[Path, datetime]:
    """tables/ with 2026.1 and a copy of 2027.1 (as 2026.9) taking effect ``seconds`` from now."""
    root = tmp_path / "tables"
    shutil.copytree(TABLES / "2026.1", root / "2026.1")
    shutil.copytree(TABLES / "2027.1", root / "2026.9")
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    path = root / "2026.9" / "set.toml"
    path.write_text(
        path.read_text()
        .replace('version = "2027.1"', 'version = "2026.9"')
        .replace("effective_from = 2027-01-01T00:00:00Z", f"effective_from = {at.isoformat()}")
    )
    return root, at


def test_versions_and_scoring_switch_at_the_effective_moment_without_a_reload(
    tmp_path: Path,
) -> None:
    # The set takes effect a few seconds ahead by the real clock. A loaded machine may take
    # longer than that to start the app; then the "before" look came too late to count, and the
    # test tries again with more lead time instead of failing or passing by luck.
    for lead in (3.0, 15.0, 60.0):
        root, at = _future_copy(tmp_path / f"lead-{lead:.0f}", lead)
        store = TableStore(load_all(root))
        settings = Settings.from_env({}, tables=str(root))
        with TestClient(create_app(settings, store=store), base_url=LOOPBACK) as client:
            before = client.get("/v1/tables/versions").json()
            scored = client.post("/v1/priority", json=CALL).json()
            if datetime.now(UTC) >= at:
                continue
            assert [(v["version"], v["active"]) for v in before] == [
                ("2026.1", True),
                ("2026.9", False),
            ]
            assert scored["priority"]["name"] == "P3"
            time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.05)
            after = client.get("/v1/tables/versions").json()
            assert [(v["version"], v["active"]) for v in after] == [
                ("2026.1", False),
                ("2026.9", True),
            ]
            decision = client.post("/v1/priority", json=CALL).json()
            assert (decision["table_version"], decision["priority"]["name"]) == ("2026.9", "P2")
            assert decision["table_hash"] == load_set(root / "2026.9").hash
            assert client.get("/readyz").json()["table_version"] == "2026.9"
        assert store.generation == 0  # no reload happened: the store chose by the clock
        return
    pytest.fail("the app never answered before a set 60 s ahead took effect")


def test_the_admin_reload_needs_an_admin_key(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    shutil.copytree(TABLES / "2026.1", root / "2026.1")
    admin, scorer = new_key(), new_key()
    keys = f"ops:admin:{hash_key(admin)};tool:score:{hash_key(scorer)}"
    settings = Settings.from_env({}, tables=str(root), api_keys=keys, rate_limit="off")
    with TestClient(create_app(settings), base_url=LOOPBACK) as client:
        assert client.post("/v1/admin/tables/reload").status_code == 401
        denied = client.post(
            "/v1/admin/tables/reload", headers={"Authorization": f"Bearer {scorer}"}
        )
        assert denied.status_code == 403
        shutil.copytree(TABLES / "2027.1", root / "2027.1")
        ok = client.post("/v1/admin/tables/reload", headers={"Authorization": f"Bearer {admin}"})
        assert ok.status_code == 200
        assert ok.json()["result"] == "success"
        assert ok.json()["versions"] == ["2026.1", "2027.1"]


def test_a_refused_admin_reload_is_a_problem_document_listing_every_problem(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tables"
    shutil.copytree(TABLES / "2026.1", root / "2026.1")
    settings = Settings.from_env({}, tables=str(root))
    with TestClient(create_app(settings), base_url=LOOPBACK) as client:
        (root / "2026.1" / "teams.toml").unlink()
        (root / "2026.1" / "risk.toml").write_text("likelihood = 3\n")
        r = client.post("/v1/admin/tables/reload")
        assert r.status_code == 422
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["detail"].startswith("tables refused: 2 problem(s); 2026.1 sha256:")
        assert body["detail"].endswith(" stays in force")
        assert body["report"]["result"] == "rejected"
        assert body["report"]["problems"] == [
            "2026.1/risk.toml: likelihood: Expected `array`, got `int`",
            "2026.1/teams.toml: (file): missing file",
        ]
        assert client.post("/v1/priority", json=CALL).status_code == 200


def test_decisions_still_buffered_at_shutdown_are_flushed_before_exit(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    env = {"USM_DECISION_LOG_FLUSH": "60"}  # no periodic flush during the test
    settings = Settings.from_env({}, tables=str(TABLES), redis_url=redis_url)
    app = create_app(settings)
    plugin = next(p for p in app.plugins.init if isinstance(p, GovernancePlugin))
    plugin.config = GovernanceConfig.from_env(env)
    with TestClient(app, base_url=LOOPBACK) as client:
        for _ in range(3):
            assert client.post("/v1/priority", json=CALL).status_code == 200
        assert redis_client.xlen(DECISION_LOG) == 0
    assert [e.call.urgency for e in read_log(redis_client, 10)] == ["high"] * 3


def test_moving_the_set_in_force_away_never_puts_a_future_set_in_force_nor_rescores(
    tmp_path: Path, redis_url: str
) -> None:
    root = single_set_tables(tmp_path)
    future_copy(root / "2027.1", in_future=timedelta(days=32))
    settings = Settings.from_env({}, tables=str(root), redis_url=redis_url)
    app = create_app(settings)
    plugin = next(p for p in app.plugins.init if isinstance(p, GovernancePlugin))
    with TestClient(app, base_url=LOOPBACK) as client:
        body = {**CALL, "source": "rt", "external_id": "1"}
        item = client.post("/v1/items", json=body).json()
        assert item["decision"]["table_version"] == "2026.1"
        assert plugin.activation is not None
        plugin.activation.check()  # the set in force at start is handled (if not already)
        shutil.move(root / "2026.1", tmp_path / "moved-away")
        r = client.post("/v1/admin/tables/reload")
        assert r.status_code == 422
        assert r.json()["report"]["problems"][0].startswith(
            "2027.1/set.toml: effective_from: no table set is in force at "
        )
        assert client.get("/readyz").json()["table_version"] == "2026.1"
        assert client.post("/v1/priority", json=CALL).json()["table_version"] == "2026.1"
        assert plugin.activation.check() is None  # nothing new in force: no re-score
        again = client.get(f"/v1/items/{item['id']}").json()
        assert again["decision"]["table_version"] == "2026.1"
        assert [h["event"] for h in again["history"]] == ["enqueued"]


def test_tables_with_no_set_in_force_yet_stop_start_up(tmp_path: Path) -> None:
    root = tmp_path / "tables"
    future_copy(root / "2027.1", in_future=timedelta(days=32))
    with pytest.raises(NoTableInForce) as exc:
        create_app(Settings.from_env({}, tables=str(root)))
    assert "no table set is in force at " in str(exc.value)
