"""In-process tallies (service.metrics.tally) give the series prometheus-client's calls give."""

from __future__ import annotations

import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.metrics import tally
from service.metrics.tally import CounterTally, GaugeTally, HistogramTally
from tests.integration.metrics.conftest import labels, parse
from tests.integration.metrics.test_multiprocess import python

BUCKETS = (0.001, 0.01, 0.1, 1)
VALUES = (0.0, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1, 2, 1000, 0.001)


def _samples(registry: CollectorRegistry) -> dict[object, float]:
    text = generate_latest(registry).decode()
    return {k: v for k, v in parse(text).items() if not k[0].endswith("_created")}


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram, Gauge]:
    return (
        Counter("t_requests", "r", ["path"], registry=registry),
        Histogram("t_seconds", "s", ["path"], buckets=BUCKETS, registry=registry),
        Gauge("t_running", "g", ["path"], registry=registry),
    )


def test_tallies_flushed_equal_observing_each_value() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    counter, histogram, gauge = _metrics(direct)
    t_counter, t_histogram, t_gauge = _metrics(tallied)
    c, h, g = (
        CounterTally(t_counter.labels("/a")),
        HistogramTally(t_histogram.labels("/a")),
        GaugeTally(t_gauge.labels("/a")),
    )
    for value in VALUES:
        histogram.labels("/a").observe(value)
        h.observe(value)
        counter.labels("/a").inc(2)
        c.inc(2)
    gauge.labels("/a").inc(3)
    gauge.labels("/a").dec()
    g.inc(3)
    g.dec()
    assert _samples(tallied) != _samples(direct)
    tally.flush()
    assert _samples(tallied) == _samples(direct)
    tally.flush()  # nothing new: nothing added twice
    assert _samples(tallied) == _samples(direct)


def test_multiprocess_counts_reach_the_files_while_running_and_at_exit(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    # A child that counts, waits until the background flush wrote its counts to the shared
    # files (read from another process), counts again and exits: the rest is written at exit.
    child = textwrap.dedent(
        """
        import subprocess, sys, time
        from service.metrics import tally
        from service.metrics.decisions import record_decision
        from service.core.decision import Decision
        from service.api.http_metrics import route_metrics
        route = route_metrics("POST", "/v1/priority")
        route.running.value += 1
        route.finished(200, 0.003)
        scrape = [sys.executable, "-c",
            "from prometheus_client import generate_latest\\n"
            "from service.metrics.registry import ScrapeRegistry\\n"
            "import sys; sys.stdout.write(generate_latest(ScrapeRegistry()).decode())"]
        deadline = time.monotonic() + 60
        while True:
            text = subprocess.run(scrape, capture_output=True, text=True, check=True).stdout
            if 'usm_http_requests_total{' in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(tally.FLUSH_SECONDS / 4)
        route.running.value += 1
        route.finished(200, 0.003)
        """
    )
    parent = python(
        f"""
        from service.metrics.multiprocess import prepare
        prepare({str(shared)!r})
        import subprocess, sys
        subprocess.run([sys.executable, "-c", {child!r}], check=True)
        from prometheus_client import generate_latest
        from service.metrics.registry import ScrapeRegistry
        sys.stdout.write(generate_latest(ScrapeRegistry()).decode())
        """
    )
    assert parent.returncode == 0, parent.stderr
    samples = parse(parent.stdout)
    route = labels(method="POST", path="/v1/priority", status_code="200", app_name="usm")
    assert samples[("usm_http_requests_total", route)] == 2
    assert samples[("usm_http_request_duration_seconds_count", route)] == 2
    assert (
        samples[
            (
                "usm_http_request_duration_seconds_bucket",
                labels(
                    method="POST",
                    path="/v1/priority",
                    status_code="200",
                    app_name="usm",
                    le="0.005",
                ),
            )
        ]
        == 2
    )


def test_importing_the_metrics_starts_no_thread() -> None:
    result = python(
        """
        import threading
        import service.metrics.decisions, service.api.http_metrics
        print(threading.active_count())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
