"""The committed Grafana dashboard is what build.py makes, and its model is well-formed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "usm-dispatch.json"


def panels() -> list[dict[str, Any]]:
    model = json.loads(DASHBOARD.read_text())
    return [p for p in model["panels"] if p["type"] != "row"]


def test_the_committed_dashboard_json_is_what_build_py_makes() -> None:
    result = subprocess.run(
        [sys.executable, str(GRAFANA / "build.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_every_panel_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    for panel in panels():
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    model = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for p in model["panels"]:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]


def test_the_team_view_filters_on_the_team_variable_and_covers_what_leads_watch() -> None:
    model = json.loads(DASHBOARD.read_text())
    assert [v["name"] for v in model["templating"]["list"]] == ["team"]
    exprs = " ".join(t["expr"] for p in panels() for t in p["targets"])
    for metric in (
        "usm_queue_depth", "usm_queue_oldest_age_seconds", "usm_priority_response_target_seconds",
        "usm_item_wait_seconds_bucket", "usm_items_completed_total", "usm_queue_overdue_items",
        "usm_items_dead_lettered_total", "usm_workers_up", "usm_decisions_total", "usm_table_info",
    ):  # fmt: skip
        assert metric in exprs, metric
    team_panels = [p for p in panels() if any('team="$team"' in t["expr"] for t in p["targets"])]
    assert len(team_panels) >= 8


def test_queue_gauges_are_never_summed_across_replicas_before_taking_the_max() -> None:
    # Every API replica reports the same queue state; sum() straight over it would multiply it.
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for gauge in ("usm_queue_depth", "usm_queue_overdue_items", "usm_workers_up"):
                assert f"sum({gauge}" not in expr.replace(" ", ""), (panel["title"], expr)
                assert f"sumby(team)({gauge}" not in expr.replace(" ", ""), (panel["title"], expr)
