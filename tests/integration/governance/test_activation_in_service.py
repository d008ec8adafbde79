"""Two API replicas, one Redis: a set whose date comes re-scores queued work, once, by itself."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest
import redis

from service.core.calls import Call
from service.dispatch.store import ItemStore
from service.files.loader import load_set
from service.governance.activation import Activation
from service.governance.keys import activation_key
from tests.integration.governance.server import ApiProcess

TABLES = Path(__file__).resolve().parents[3] / "tables"


def _marker(client: redis.Redis, version: str, table_hash: str) -> Activation | None:
    raw = client.get(activation_key(version, table_hash))
    return None if raw is None else msgspec.json.decode(raw, type=Activation)


def _wait(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.timeout(300)
def test_a_set_coming_into_force_moves_queued_items_once_across_replicas(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    root = tmp_path / "tables"
    shutil.copytree(TABLES / "2026.1", root / "2026.1")
    base = load_set(root / "2026.1")
    env = {"REDIS_URL": redis_url, "USM_TABLES_ACTIVATION_INTERVAL": "0.2"}
    replicas = [ApiProcess(root, tmp_path / f"api{i}.log", env) for i in range(2)]
    try:
        # At start-up the set in force is handled once (nothing queued yet).
        assert _wait(lambda: _marker(redis_client, "2026.1", base.hash), 60)
        store = ItemStore(redis_client)
        now = datetime.now(UTC)
        moving = Call(type="incident", impact="group", urgency="high")  # P3 now, P2 after
        staying = Call(type="incident", impact="organisation", urgency="immediate")
        scorer = base.scorer()
        a, _ = store.enqueue(moving, scorer.score(moving, now), "t", "a", None, now)
        b, _ = store.enqueue(staying, scorer.score(staying, now), "t", "b", None, now)
        assert a.priority == "P3"

        # A pull request merges a set that takes effect in three seconds.
        at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        staged = root / ".incoming"
        shutil.copytree(TABLES / "2027.1", staged)
        text = (staged / "set.toml").read_text()
        text = text.replace('version = "2027.1"', 'version = "2026.9"').replace(
            "effective_from = 2027-01-01T00:00:00Z", f"effective_from = {at.isoformat()}"
        )
        (staged / "set.toml").write_text(text)
        os.rename(staged, root / "2026.9")
        new = load_set(root / "2026.9")

        def listed() -> bool:
            body = httpx.get(f"{replicas[1].url}/v1/tables/versions").json()
            return [v["version"] for v in body] == ["2026.1", "2026.9"]

        assert _wait(listed, 60), "the file watch did not load 2026.9"
        if datetime.now(UTC) < at:
            assert store.get(a.id).priority == "P3"  # loaded, not yet in force

        assert _wait(lambda: store.get(a.id).priority == "P2", 60)
        after = store.get(a.id)
        assert (after.queue, after.decision.table_version) == ("usm.service_desk.P2", "2026.9")
        assert [e.event for e in after.history].count("rescored") == 1
        assert store.get(b.id).priority == "P1"
        # The item moves before the run ends (queue order is rebuilt after the moves).
        assert _wait(
            lambda: (m := _marker(redis_client, "2026.9", new.hash)) and m.state == "done", 15
        )
        done = _marker(redis_client, "2026.9", new.hash)
        assert done is not None and (done.state, done.moved) == ("done", 1)
        for api in replicas:
            decision = httpx.post(f"{api.url}/v1/priority", json=msgspec.to_builtins(moving)).json()
            assert (decision["table_version"], decision["priority"]["name"]) == ("2026.9", "P2")
    finally:
        for api in replicas:
            api.stop()
    logs = [api.log() for api in replicas]
    lines = [line for log in logs for line in log.splitlines() if "table set 2026.9" in line]
    assert len([line for line in lines if "re-scored queued items, 1 moved" in line]) == 1, lines
