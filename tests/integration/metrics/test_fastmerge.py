"""The fast multiprocess render gives exactly the samples prometheus-client's own merge gives."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.integration.metrics.conftest import parse

ROOT = Path(__file__).resolve().parents[3]

# Each child process records its own events, as the API and the workers of `usm serve` do.
CHILD = """
import sys
from service.metrics.instruments import ITEM_HANDLING, ITEM_WAIT, ItemEvent, record
from service.metrics.tables import ReloadResult, record_reload
n = int(sys.argv[1])
for team in ("security", 'odd "team"\\\\ name\\nwith newline'):
    record(ItemEvent.COMPLETED, team, "P1", n)
    record(ItemEvent.DEAD_LETTERED, team, "P2")
    for v in (0.0005, 0.2 * n, 90, 10**7):
        ITEM_WAIT.labels(team, "P1").observe(v)
    ITEM_HANDLING.labels(team, "P3").observe(n)
record_reload(ReloadResult.SUCCESS, at=1_700_000_000 + n)
record_reload(ReloadResult.REJECTED)
"""

COMPARE = """
import sys
from prometheus_client import generate_latest
from service.metrics.registry import ScrapeRegistry
registry = ScrapeRegistry()
fast, content_type = registry.render("application/openmetrics-text;version=1.0.0")
sys.stdout.write(content_type + "\\n=====\\n")
sys.stdout.write(fast.decode() + "=====\\n" + generate_latest(registry).decode())
"""


def run(code: str, shared: Path, *args: str) -> str:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fast_render_equals_the_library_merge_across_processes(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    for n in (1, 2, 3):
        run(CHILD, shared, str(n))
    content_type, fast, library = run(COMPARE, shared).split("=====\n")
    assert content_type.strip() == "text/plain; version=0.0.4; charset=utf-8"
    fast_samples, library_samples = parse(fast), parse(library)
    assert fast_samples == library_samples
    completed = ("usm_items_completed_total", (("priority", "P1"), ("team", "security")))
    assert fast_samples[completed] == 6
    wait = (("priority", "P1"), ("team", "security"))
    assert fast_samples[("usm_item_wait_seconds_count", wait)] == 12
    inf = (("le", "+Inf"), ("priority", "P1"), ("team", "security"))
    assert fast_samples[("usm_item_wait_seconds_bucket", inf)] == 12
    assert fast_samples[("usm_table_last_load_timestamp_seconds", ())] == 1_700_000_003


def test_fast_render_passes_promtool_check_metrics(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    run(CHILD, shared, "1")
    _, fast, _ = run(COMPARE, shared).split("=====\n")
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=fast, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
