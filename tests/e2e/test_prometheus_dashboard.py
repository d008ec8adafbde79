"""The proof: a real Prometheus scrapes a live service, and every dashboard panel shows data.

A real ``usm`` service (API and workers, separate processes) runs against the session's Redis;
traffic is pushed through its HTTP API; a real Prometheus (Debian's binary) scrapes it every
second with the shipped config and alert rules. Then every panel query of the shipped Grafana
dashboard and every alert expression is evaluated through Prometheus' HTTP API: each must parse,
and each panel must return at least one series. A panel that can never show data fails here.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from service.files.loader import load_all
from service.files.store import TableStore
from tests.support.redis_server import RedisServer, free_port
from tests.support.tables import single_set_tables

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "usm-dispatch.json"
PROM_DIR = ROOT / "deploy" / "prometheus"
USM = Path(sys.executable).with_name("usm")

TEAM = "applications"
"""The team the dashboard's team view is checked for; its items go through every state."""
# Grafana's built-in variables, as Grafana would fill them for a short time range at 1 s scrapes.
GRAFANA_VARS = {"$__rate_interval": "3m", "$__interval": "2s", "$__range": "5m"}


def wait_for(what: str, check: Any, timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


class Process:
    """A child process whose output goes to a file, shown when a test fails."""

    def __init__(
        self, name: str, args: list[str], log: Path, env: dict[str, str], grace: float = 15.0
    ) -> None:
        self.name = name
        self.grace = grace
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            args, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._out.close()


class Prometheus:
    """Debian's prometheus with the shipped rules and a config pointing at our targets."""

    def __init__(self, workdir: Path, targets: dict[str, list[str]]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not on PATH: `scripts/dev test` installs Debian's package")
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROM_DIR / "alerts.yml", workdir / "alerts.yml")
        config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        config["scrape_configs"] = []
        for name, hosts in targets.items():
            job = jobs[name]  # only jobs the shipped config defines
            job.pop("dns_sd_configs", None)
            job["static_configs"] = [{"targets": hosts}]
            config["scrape_configs"].append(job)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process(
            "prometheus",
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
            dict(os.environ),
        )
        self.http = httpx.Client(base_url=self.url, timeout=10)
        wait_for("prometheus ready", lambda: self.http.get("/-/ready").status_code == 200)

    def query(self, expr: str) -> dict[str, Any]:
        """Instant query; the whole API answer (``status``, ``data`` or ``error``)."""
        answer: dict[str, Any] = self.http.get("/api/v1/query", params={"query": expr}).json()
        return answer

    def series(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}\n{answer.get('error')}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def label_values(self, label: str, match: str) -> list[str]:
        answer = self.http.get(f"/api/v1/label/{label}/values", params={"match[]": match}).json()
        assert answer["status"] == "success", answer
        values: list[str] = answer["data"]
        return values

    def close(self) -> None:
        self.http.close()
        self.process.stop()


class Service:
    """``usm serve``, the README's run command: the API plus one worker process per push team,
    all counting into one multiprocess directory that the API's /metrics merges."""

    def __init__(self, workdir: Path, redis_url: str, tables: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.release = workdir / "release"
        """Created on close: the test team's busy handler returns, so workers stop at once."""
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "USM_TABLES": str(tables),
            "USM_HOST": "127.0.0.1",
            "USM_PORT": str(self.port),
            "USM_DATA_DIR": str(workdir / "data"),
            # The python handler of the test team lives in this module.
            "PYTHONPATH": str(ROOT),
            "USM_PYTHON_HANDLERS": __name__,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # usm serve prepares its own
        # Grace above serve's own 30 s per worker, so it always stops its workers itself: they
        # run in sessions of their own and would outlive a killed `usm serve`.
        serve = [str(USM), "serve"]
        self.processes = [Process("usm serve", serve, workdir / "serve.log", env, grace=45.0)]
        self.http = httpx.Client(base_url=self.url, timeout=30)
        try:
            wait_for("the API", lambda: self.http.get("/readyz").status_code == 200, timeout=60)
        except BaseException:
            print(self.logs())
            self.close()
            raise

    def metrics_text(self) -> str:
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text
        return response.text

    def enqueue(self, external_id: str, payload: dict[str, Any], **call: Any) -> dict[str, Any]:
        body = {"type": "incident", "service": "erp", "urgency": "normal", **call}
        body.update(source="e2e", external_id=external_id, payload=payload)
        response = self.http.post("/v1/items", json=body)
        assert response.status_code == 201, response.text
        item: dict[str, Any] = response.json()
        assert item["team"] == TEAM, item
        return item

    def state(self, item_id: str) -> str:
        response = self.http.get(f"/v1/items/{item_id}")
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state

    def wait_state(self, item: dict[str, Any], *states: str) -> None:
        wait_for(f"item {item['external_id']} {'/'.join(states)}",
                 lambda: self.state(item["id"]) in states, timeout=30)  # fmt: skip

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def close(self) -> None:
        self.release.touch()
        self.http.close()
        for p in reversed(self.processes):
            p.stop()


def handle(delivery: Any) -> None:
    """The test team's handler (``kind = "python"``), run by the real worker process.

    ``{"fail": true}`` raises (the item is dead-lettered); ``{"sleep": s}`` keeps the worker busy
    so later items stay queued; anything else completes at once.
    """
    payload = delivery.payload or {}
    if payload.get("fail"):
        raise RuntimeError("e2e: this item fails on purpose")
    deadline = time.monotonic() + float(payload.get("sleep", 0))
    release = Path(str(payload.get("release", "/nonexistent")))
    while time.monotonic() < deadline and not release.exists():
        time.sleep(0.05)


def push_dispatch_traffic(service: Service) -> None:
    """Items through every state the dashboard shows: completed, dead-lettered and retried,
    one being handled, and some left waiting, among them a P1 past its response target."""
    done = [service.enqueue(f"done-{n}", {}) for n in range(3)]
    for item in done:
        service.wait_state(item, "completed")
    bad = service.enqueue("bad-1", {"fail": True})
    service.wait_state(bad, "dead")
    response = service.http.post(f"/v1/items/{bad['id']}/requeue")
    assert response.status_code == 200, response.text
    wait_for("the re-queued item to fail again", lambda: service.state(bad["id"]) == "dead")
    busy = service.enqueue("busy-1", {"sleep": 600, "release": str(service.release)}, urgency="low")
    service.wait_state(busy, "started")
    reported = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    late = service.enqueue("late-p1", {}, urgency="immediate", reported_at=reported)
    assert late["priority"] == "P1", late["priority"]
    for n in range(3):
        service.enqueue(f"waiting-{n}", {}, urgency="low")
    assert service.state(late["id"]) == "queued"


def push_scoring_traffic(service: Service) -> None:
    """Calls of every type, single and batched, plus refusals (4xx) so status labels vary."""
    calls: list[dict[str, Any]] = [
        {"type": "incident", "impact": "organisation", "urgency": "immediate"},
        {"type": "incident", "impact": "user", "urgency": "low"},
        {"type": "service_request", "impact": "user", "urgency": "normal"},
        {"type": "change", "impact": "department", "urgency": "high"},
        {"type": "wish", "impact": "group", "urgency": "low"},
        {"type": "risk", "impact": "department", "likelihood": "likely", "proximity": "near"},
        {"type": "incident", "service": "erp", "urgency": "immediate"},
    ]
    for call in calls:
        response = service.http.post("/v1/priority", json=call)
        assert response.status_code == 200, response.text
    response = service.http.post("/v1/priority/batch", json={"calls": calls * 20})
    assert response.status_code == 200, response.text
    bad = service.http.post("/v1/priority", json={"type": "incident", "urgency": "hgih"})
    assert bad.status_code == 422, bad.text


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only 2026.1 (the active set must not change with the date), the test team's handler set."""
    out = single_set_tables(tmp_path_factory.mktemp("tables"))
    handler = f'handler = {{ kind = "python", target = "{__name__}:handle" }}\n'
    for teams in out.glob("*/teams.toml"):
        text = teams.read_text()
        anchor = f'name = "{TEAM}"\n'
        assert anchor in text, teams
        teams.write_text(text.replace(anchor, anchor + handler))
    return out


@pytest.fixture(scope="module")
def service(
    redis_server: RedisServer, tables: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    if redis_server.proc is None:
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    svc = Service(tmp_path_factory.mktemp("usm"), redis_server.url, tables)
    try:
        push_scoring_traffic(svc)
        # A first item through the worker before Prometheus looks: its histogram series exist
        # from the first scrape on, as on a service that has been running for a while.
        svc.wait_state(svc.enqueue("warm-up", {}), "completed")
        yield svc
    except BaseException:
        print(svc.logs())
        raise
    finally:
        svc.close()
        redis.Redis.from_url(redis_server.url).flushall()


@pytest.fixture(scope="module")
def prometheus(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    prom = Prometheus(
        tmp_path_factory.mktemp("prometheus"), {"usm-api": [f"127.0.0.1:{service.port}"]}
    )
    try:
        # Enough scrapes for rate() over $__rate_interval, and traffic in between them.
        wait_for(
            "three scrapes of the API",
            lambda: prom.series("count_over_time(usm_table_info[1m]) >= 3"),
        )
        # Traffic after scraping began, so rates and quantiles over the last minute see it.
        push_scoring_traffic(service)
        push_dispatch_traffic(service)
        scrapes = prom.series("count_over_time(usm_table_info[1m])")[0]["value"][1]
        wait_for(
            "two scrapes after the traffic",
            lambda: prom.series(f"count_over_time(usm_table_info[1m]) >= {int(scrapes) + 2}"),
        )
        yield prom
    except BaseException:
        print(prom.process.tail())
        raise
    finally:
        prom.close()


def dashboard_panels() -> list[dict[str, Any]]:
    model = json.loads(DASHBOARD.read_text())
    out: list[dict[str, Any]] = []
    for panel in model["panels"]:
        out.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    return out


def substitute(expr: str, team: str) -> str:
    for name, value in GRAFANA_VARS.items():
        expr = expr.replace(name, value)
    expr = re.sub(r"\$\{?team\}?", team, expr)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_the_live_metrics_page_passes_promtool_check_metrics(
    service: Service, prometheus: Prometheus
) -> None:
    # After the prometheus fixture's traffic: every family, histograms included, has samples.
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not on PATH: `scripts/dev test` installs Debian's prometheus")
    text = service.metrics_text()
    assert "usm_decisions_total{" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30,
        check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_prometheus_scrapes_the_service_and_the_alert_rules_load(prometheus: Prometheus) -> None:
    up = prometheus.series('up{job="usm-api"}')
    assert [s["value"][1] for s in up] == ["1"]
    shipped = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    names = {r["alert"] for g in shipped["groups"] for r in g["rules"]}

    def evaluated() -> list[dict[str, Any]]:
        groups = prometheus.http.get("/api/v1/rules").json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if all(r.get("lastEvaluation", "").startswith("2") for r in rules) else []

    rules = wait_for("the alert rules to be evaluated", evaluated)
    assert {r["name"] for r in rules} == names
    for rule in rules:
        assert (rule["name"], rule["health"], rule.get("lastError", "")) == (rule["name"], "ok", "")


def test_every_alert_expression_parses_and_evaluates(prometheus: Prometheus) -> None:
    shipped = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    for group in shipped["groups"]:
        for rule in group["rules"]:
            answer = prometheus.query(rule["expr"])
            assert answer["status"] == "success", (rule["alert"], answer.get("error"))


def test_the_team_variable_offers_every_team_of_the_table_set(
    prometheus: Prometheus, tables: Path
) -> None:
    model = json.loads(DASHBOARD.read_text())
    (variable,) = model["templating"]["list"]
    match = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"])
    assert match, variable["query"]
    active = TableStore(load_all(tables)).active(datetime.now(UTC))
    expected = {t.name for t in active.tables.teams.team}
    assert set(prometheus.label_values(match[2], match[1])) == expected


def test_every_dashboard_panel_query_returns_data_from_the_live_service(
    prometheus: Prometheus,
) -> None:
    # Stricter than "each panel shows something": every query of every panel must, so a dead
    # query cannot hide behind a working one in the same panel.
    empty: list[str] = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            series = prometheus.series(substitute(target["expr"], TEAM))
            values = [float(s["value"][1]) for s in series]
            # NaN (a quantile of nothing, 0/0) draws nothing in Grafana: it is not data.
            if not [v for v in values if not math.isnan(v)]:
                empty.append(f"{panel['title']} [{target['refId']}]")
    assert empty == [], f"panel queries without data: {empty}"


def test_the_overdue_p1_raises_its_alert_for_the_team(prometheus: Prometheus) -> None:
    def overdue_alerts() -> list[dict[str, Any]]:
        alerts = prometheus.http.get("/api/v1/alerts").json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "UsmUrgentItemOverdue"]

    (alert,) = wait_for("UsmUrgentItemOverdue to be pending", overdue_alerts)
    assert alert["state"] in ("pending", "firing")
    assert (alert["labels"]["team"], alert["labels"]["priority"]) == (TEAM, "P1")
