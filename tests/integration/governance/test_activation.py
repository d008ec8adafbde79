"""Activation: when another set comes into force, queued work is re-scored once per fleet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
import redis
from prometheus_client import REGISTRY

from service.core.scoring import Scorer
from service.files.loader import LoadedSet, load_set
from service.files.store import TableStore
from service.governance.activation import Activation, ActivationWatcher
from service.governance.keys import activation_key
from tests.fixtures.table_edits import copy_default, replace_in

TABLES = Path(__file__).resolve().parents[3] / "tables"
SWITCH = datetime(2027, 1, 1, tzinfo=UTC)


def _activations(outcome: str) -> float:
    value = REGISTRY.get_sample_value("usm_table_activations_total", {"outcome": outcome})
    return value or 0.0


class Clock:
    """A settable 'now' shared by the store lookups of several replicas."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    """Stands in for dispatch's ``rescore_all``: records which set it was asked to apply."""

    def __init__(self, moved: int = 0, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.moved = moved
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(
        self, conn: redis.Redis, scorer: Scorer, fence: Callable[[], None] | None = None
    ) -> int:
        assert conn.ping()
        if fence is not None:
            fence()
        with self.lock:
            self.calls.append(scorer.version)
        if self.fail:
            raise RuntimeError("dispatch unavailable")
        return self.moved


@pytest.fixture
def both() -> list[LoadedSet]:
    return [load_set(TABLES / "2026.1"), load_set(TABLES / "2027.1")]


def test_the_set_in_force_is_rescored_once_and_marked_done(
    redis_client: redis.Redis, both: list[LoadedSet]
) -> None:
    rescore = Recorder(moved=7)
    before = _activations("done")
    watcher = ActivationWatcher(TableStore(both), redis_client, rescore, clock=Clock(SWITCH))
    done = watcher.check()
    assert done is not None and (done.version, done.state, done.moved) == ("2027.1", "done", 7)
    assert watcher.check() is None
    assert rescore.calls == ["2027.1"]
    marker = msgspec.json.decode(redis_client.get(activation_key("2027.1", both[1].hash)) or b"")
    assert marker["state"] == "done"
    assert _activations("done") == before + 1
    assert redis_client.ttl(activation_key("2027.1", both[1].hash)) > 86400


def test_an_effective_date_passing_triggers_a_rescore_without_any_reload(
    redis_client: redis.Redis, both: list[LoadedSet]
) -> None:
    clock = Clock(SWITCH - timedelta(seconds=1))
    rescore = Recorder()
    watcher = ActivationWatcher(TableStore(both), redis_client, rescore, clock=clock)
    watcher.check()
    clock.now = SWITCH
    watcher.check()
    assert rescore.calls == ["2026.1", "2027.1"]


def test_five_replicas_checking_at_once_rescore_once(redis_url: str, both: list[LoadedSet]) -> None:
    rescore = Recorder()
    clock = Clock(SWITCH)
    clients = [redis.Redis.from_url(redis_url) for _ in range(5)]
    watchers = [ActivationWatcher(TableStore(both), c, rescore, clock=clock) for c in clients]
    barrier = threading.Barrier(len(watchers))
    results: list[Activation | None] = []

    def run(w: ActivationWatcher) -> None:
        barrier.wait()
        results.append(w.check())

    threads = [threading.Thread(target=run, args=(w,)) for w in watchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert rescore.calls == ["2027.1"]
    assert sum(r is not None for r in results) == 1
    for w in watchers:  # the others learn it is done on their next check, then stop asking
        w.check()
    assert all(("2027.1", both[1].hash) in w.handled for w in watchers)
    for c in clients:
        c.close()


def test_a_set_with_rescore_on_activate_off_is_marked_skipped(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    quiet = load_set(
        replace_in(
            copy_default(tmp_path),
            "set.toml",
            "rescore_on_activate = true",
            "rescore_on_activate = false",
        )
    )
    rescore = Recorder()
    watcher = ActivationWatcher(TableStore([quiet]), redis_client, rescore, clock=Clock(SWITCH))
    done = watcher.check()
    assert done is not None and done.state == "skipped"
    assert rescore.calls == []


def test_a_failed_rescore_releases_the_marker_so_it_is_tried_again(
    redis_client: redis.Redis, both: list[LoadedSet]
) -> None:
    rescore = Recorder(fail=True)
    watcher = ActivationWatcher(TableStore(both), redis_client, rescore, clock=Clock(SWITCH))
    with pytest.raises(RuntimeError):
        watcher.check()
    assert redis_client.get(activation_key("2027.1", both[1].hash)) is None
    rescore.fail = False
    done = watcher.check()
    assert done is not None and done.state == "done"
    assert rescore.calls == ["2027.1", "2027.1"]


def test_a_replica_that_died_mid_rescore_is_taken_over_when_its_lock_expires(
    redis_client: redis.Redis, both: list[LoadedSet]
) -> None:
    clock = Clock(SWITCH)
    key = activation_key("2027.1", both[1].hash)
    dead = Activation(version="2027.1", hash=both[1].hash, state="running", by="gone:1", at=SWITCH)
    redis_client.set(key, msgspec.json.encode(dead), px=300)
    rescore = Recorder()
    watcher = ActivationWatcher(TableStore(both), redis_client, rescore, clock=clock)
    assert watcher.check() is None
    assert rescore.calls == []
    redis_client.pexpire(key, 1)
    while redis_client.exists(key):
        pass
    assert watcher.check() is not None
    assert rescore.calls == ["2027.1"]


def test_a_changed_hash_of_the_same_version_is_a_new_activation(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    first = load_set(copy_default(tmp_path, "a"))
    edited = load_set(
        replace_in(copy_default(tmp_path, "b"), "matrix.toml", 'low = "P4"', 'low = "P3"')
    )
    store = TableStore([first])
    rescore = Recorder()
    watcher = ActivationWatcher(store, redis_client, rescore, clock=Clock(SWITCH))
    watcher.check()
    store.replace([edited])
    watcher.check()
    assert rescore.calls == ["2026.1", "2026.1"]


def test_without_a_rescore_function_the_activation_is_left_for_later(
    redis_client: redis.Redis, both: list[LoadedSet]
) -> None:
    watcher = ActivationWatcher(TableStore(both), redis_client, None, clock=Clock(SWITCH))
    assert watcher.check() is None
    assert redis_client.get(activation_key("2027.1", both[1].hash)) is None
