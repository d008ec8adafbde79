"""Grafana panel builders for build.py: time series, stat and row panels on one datasource.

Plain dictionaries in Grafana's dashboard JSON model (schemaVersion 39); no third-party library.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DATASOURCE", "Panel", "layout", "row", "stat", "target", "timeseries"]

DATASOURCE = {"type": "prometheus", "uid": "usm-prometheus"}
"""Provisioned in provisioning/datasources/prometheus.yml with this uid."""

Panel = dict[str, Any]


def target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}


def _targets(queries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(queries)]


def timeseries(
    title: str,
    queries: list[tuple[str, str]],
    unit: str = "short",
    description: str = "",
    width: int = 12,
    stack: bool = False,
    threshold: float | None = None,
) -> Panel:
    """A time series panel; ``queries`` are (PromQL, legend) pairs."""
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    thresholds: dict[str, Any] = {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
    if threshold is not None:
        thresholds["steps"].append({"color": "red", "value": threshold})
        custom["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": custom, "thresholds": thresholds},
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_w": width,
        "_h": 8,
    }


def stat(
    title: str,
    expr: str,
    legend: str = "",
    unit: str = "short",
    description: str = "",
    red_above: float | None = None,
    text_mode: str = "value",
    mappings: list[dict[str, Any]] | None = None,
    width: int = 4,
) -> Panel:
    """A single-value panel; ``red_above`` turns it red beyond that value."""
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above})
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, legend)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "mappings": mappings or [],
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": text_mode,
            "colorMode": "background" if red_above is not None else "value",
            "graphMode": "none",
        },
        "_w": width,
        "_h": 4,
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": 24, "_h": 1}


def layout(panels: list[Panel]) -> list[Panel]:
    """Place panels left to right on Grafana's 24-column grid and number them."""
    x = y = row_h = 0
    out: list[Panel] = []
    for i, panel in enumerate(panels, start=1):
        w, h = panel.pop("_w"), panel.pop("_h")
        if x + w > 24 or panel["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        panel["id"] = i
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_h = max(row_h, h)
        out.append(panel)
    return out
