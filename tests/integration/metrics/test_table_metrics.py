"""The table set in force is read at scrape time: its effective date switches it, no reload."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import msgspec
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from service.api.app import create_app
from service.files.loader import LoadedSet, load_all
from service.files.store import TableStore
from service.metrics.tables import TableCollector
from service.settings import Settings
from tests.fixtures.api import LOOPBACK
from tests.integration.metrics.conftest import Samples, labels, parse


def scrape_at(store: TableStore, when: datetime) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TableCollector(store, clock=lambda: when))
    return parse(generate_latest(registry).decode())


def test_the_info_and_targets_switch_when_the_next_set_takes_effect(tables_dir: Path) -> None:
    sets = load_all(tables_dir)
    assert len(sets) >= 2, "the default tables ship a future set"
    store = TableStore(sets)
    older, newer = sorted(sets, key=lambda s: s.tables.effective_from)[-2:]
    for loaded in (older, newer):
        samples = scrape_at(store, loaded.tables.effective_from)
        info = [k for k in samples if k[0] == "usm_table_info"]
        assert info == [("usm_table_info", labels(version=loaded.version, hash=loaded.hash))]
        for level in loaded.tables.levels.priority:
            key = ("usm_priority_response_target_seconds", labels(priority=level.name))
            assert samples[key] == level.response.total_seconds()
        assert samples[("usm_table_versions_loaded", ())] == len(sets)


def test_a_reload_that_adds_a_team_gives_its_counters_a_zero_start(
    default_set: LoadedSet, tmp_path: Path
) -> None:
    store = TableStore([default_set])
    with TestClient(create_app(Settings(), store=store), base_url=LOOPBACK) as client:
        before = parse(client.get("/metrics").text)
        assert not [k for k in before if ("team", "night_shift") in k[1]]
        teams = default_set.tables.teams
        extra = type(teams.team[0])(name="night_shift")
        tables = msgspec.structs.replace(
            default_set.tables, teams=msgspec.structs.replace(teams, team=[*teams.team, extra])
        )
        store.replace([msgspec.structs.replace(default_set, tables=tables, hash="sha256:test")])
        after = parse(client.get("/metrics").text)
    key = ("usm_items_dead_lettered_total", labels(team="night_shift", priority="P1"))
    assert after[key] == 0
    assert ("usm_team_info", labels(team="night_shift", mode="push", handler="log")) in after
