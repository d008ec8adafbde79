"""The Prometheus config and alert rules load in promtool, and every alert is unit-tested."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not on PATH: `scripts/dev test` installs Debian's prometheus")
    return subprocess.run(
        [found, *args], capture_output=True, text=True, timeout=60, cwd=PROM, check=False
    )


def alert_names() -> list[str]:
    rules = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]


def test_the_scrape_config_and_its_rule_file_are_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_the_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    spec = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in spec["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(alert_names())
    assert names - fired == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"


def test_a_broken_rule_file_is_refused_so_the_check_above_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "alerts.yml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(usm_queue_depth\n"
    )
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0
    assert "unclosed left parenthesis" in result.stdout + result.stderr
