"""One /metrics for many processes (``usm serve``), and a worker's own endpoint (distributed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

from service.metrics.exporter import start_worker_exporter
from tests.integration.metrics.conftest import labels, parse

ROOT = Path(__file__).resolve().parents[3]


def python(code: str, env_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if env_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(env_dir)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False,
    )  # fmt: skip


def test_counts_from_every_child_process_appear_on_the_parents_scrape(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    parent = python(
        f"""
        from service.metrics.multiprocess import prepare
        prepare({str(shared)!r})
        import subprocess, sys
        child = (
            "from service.metrics.instruments import ItemEvent, record, ITEM_WAIT\\n"
            "record(ItemEvent.COMPLETED, 'security', 'P1', 2)\\n"
            "ITEM_WAIT.labels('security', 'P1').observe(0.2)\\n"
        )
        for _ in range(3):
            subprocess.run([sys.executable, "-c", child], check=True)
        from prometheus_client import generate_latest
        from service.metrics.registry import ScrapeRegistry
        sys.stdout.write(generate_latest(ScrapeRegistry()).decode())
        """
    )
    assert parent.returncode == 0, parent.stderr
    samples = parse(parent.stdout)
    assert samples[("usm_items_completed_total", labels(team="security", priority="P1"))] == 6
    assert samples[("usm_item_wait_seconds_count", labels(team="security", priority="P1"))] == 3
    assert len(list(shared.glob("*.db"))) >= 3


def test_prepare_removes_the_files_a_previous_run_left(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_999.db").write_bytes(b"stale")
    result = python(
        f"""
        from service.metrics.multiprocess import prepare
        print(prepare({str(shared)!r}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert list(shared.glob("*.db")) == []


def test_prepare_after_prometheus_client_was_imported_is_refused(tmp_path: Path) -> None:
    result = python(
        f"""
        import prometheus_client
        from service.metrics.multiprocess import prepare
        prepare({str(tmp_path)!r})
        """
    )
    assert result.returncode == 1
    assert (
        "RuntimeError: service.metrics.multiprocess.prepare() must run before prometheus_client "
        "is imported (it was imported in single-process mode)"
    ) in result.stderr


def test_a_worker_exporter_serves_its_process_metrics_over_http() -> None:
    from service.metrics.instruments import ItemEvent, record

    record(ItemEvent.STARTED, "applications", "P3")
    server, thread = start_worker_exporter(0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    samples = parse(text)
    assert samples[("usm_items_started_total", labels(team="applications", priority="P3"))] >= 1
    assert not [k for k in samples if k[0] == "usm_queue_depth"]
