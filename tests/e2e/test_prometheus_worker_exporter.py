"""Distributed deployment: a worker on its own machine exposes its own /metrics, and Prometheus
scrapes it with the shipped ``usm-workers`` job."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from service.core.calls import Call
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from tests.e2e.test_prometheus_dashboard import USM, Process, Prometheus, wait_for
from tests.support.redis_server import free_port

TEAM = "security"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def worker(redis_url: str, tmp_path: Path, single_set_tables: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "USM_TABLES": str(single_set_tables)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    args = [str(USM), "worker", "--team", TEAM, "--metrics-port", str(port)]
    proc = Process("usm worker", args, tmp_path / "worker.log", env, grace=5.0)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for("the worker's metrics endpoint", lambda: httpx.get(url).status_code == 200)
        yield url
    except BaseException:
        print(proc.tail())
        raise
    finally:
        proc.stop()


def test_a_worker_exports_its_own_item_metrics_from_zero(
    worker: str, redis_client: redis.Redis, default_set: LoadedSet, tmp_path: Path
) -> None:
    before = samples(httpx.get(worker).text)
    priorities = [p.name for p in default_set.tables.levels.priority]
    for priority in priorities:
        key = (("priority", priority), ("team", TEAM))
        assert before[("usm_items_completed_total", key)] == 0
    assert not [k for k in before if ("team", "service_desk") in k[1]]

    now = datetime.now(UTC)
    call = Call(type="incident", impact="group", urgency="high", category="security")
    decision = default_set.scorer().score(call, now)
    assert decision.team == TEAM
    ItemStore(redis_client).enqueue(call, decision, "e2e", "exporter-1", None, now)
    done = (("priority", decision.priority.name), ("team", TEAM))
    text = wait_for(
        "the item to be counted as completed",
        lambda: (
            (t := httpx.get(worker).text)
            and samples(t).get(("usm_items_completed_total", done)) == 1
            and t
        ),
    )
    assert samples(text)[("usm_item_wait_seconds_count", done)] == 1

    promtool = shutil.which("promtool")
    assert promtool, "promtool not on PATH: `scripts/dev test` installs Debian's prometheus"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert (check.returncode, check.stdout + check.stderr) == (0, "")

    host = worker.split("/")[2]
    prom = Prometheus(tmp_path / "prometheus", {"usm-workers": [host]})
    try:
        series = wait_for(
            "Prometheus to scrape the worker",
            lambda: prom.series(
                f'usm_items_completed_total{{job="usm-workers",team="{TEAM}"}} > 0'
            ),
        )
        assert [s["metric"]["priority"] for s in series] == [decision.priority.name]
    finally:
        prom.close()
