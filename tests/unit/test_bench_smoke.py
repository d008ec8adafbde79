"""The bench measures the real thing: its product path answers what the Scorer answers.

No timing is asserted here; timing targets live in bench/ scripts.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from bench import governance, security
from bench._common import batch_body, default_scorer, make_calls
from bench.score import ceiling_batch, ceiling_table, core_batch, run
from service.api.priority import BatchResponse
from service.core.calls import Call


def test_bench_product_path_returns_the_scorers_decisions_for_every_call() -> None:
    scorer = default_scorer()
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    body = batch_body(50, seed=7)

    got = msgspec.json.decode(core_batch(body, scorer, now), type=BatchResponse).decisions

    calls = [msgspec.convert(c, Call) for c in make_calls(50, seed=7)]
    assert got == [scorer.score(call, now) for call in calls]


def test_bench_call_mix_covers_every_call_type_and_both_level_forms() -> None:
    calls = make_calls(300, seed=2026)

    assert {c["type"] for c in calls} == {"incident", "service_request", "change", "wish", "risk"}
    assert any(isinstance(c.get("impact"), int) for c in calls)
    assert any(isinstance(c.get("impact"), str) for c in calls)
    assert any("likelihood" in c for c in calls)
    assert any("impact" not in c for c in calls)  # left to a service's impact floor


def test_bench_call_mix_is_the_same_for_the_same_seed() -> None:
    assert batch_body(100, seed=3) == batch_body(100, seed=3)
    assert batch_body(100, seed=3) != batch_body(100, seed=4)


def test_bench_ceiling_answers_one_decision_of_the_same_shape_per_call() -> None:
    scorer = default_scorer()
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    body = batch_body(40, seed=11)
    table = ceiling_table(scorer, now)

    ceiling = msgspec.json.decode(ceiling_batch(body, table), type=BatchResponse).decisions
    product = msgspec.json.decode(core_batch(body, scorer, now), type=BatchResponse).decisions

    assert len(ceiling) == len(product) == 40
    assert [d.call_type for d in ceiling] == [d.call_type for d in product]


def test_bench_run_reports_both_rates_and_their_ratio() -> None:
    result = run(calls=20, rounds=1, seconds=0.01)

    assert result["ceiling"] > 0
    assert result["product"] > 0
    assert result["ratio"] == result["product"] / result["ceiling"]


def test_bench_governance_fails_when_the_log_slows_scoring_or_the_flush_costs_too_much() -> None:
    ok = governance.verdicts(governance.TARGET_RATIO, governance.TARGET_FLUSH_US)
    assert [met for _, met in ok] == [True, True]
    slow = governance.verdicts(governance.TARGET_RATIO - 0.01, governance.TARGET_FLUSH_US + 0.01)
    assert [met for _, met in slow] == [False, False]
    assert slow[0][0] == f"log on/off per CPU-s 0.940 (target >= {governance.TARGET_RATIO})"


def test_bench_security_fails_when_keys_and_the_rate_limit_cost_more_than_the_target() -> None:
    assert security.verdict({"open": 1000.0, "keys": 950.0, "keys+limit": 850.0})[1]
    text, met = security.verdict({"open": 1000.0, "keys": 950.0, "keys+limit": 770.0})
    assert not met
    assert text == f"keys+limit / open per CPU-s 0.77 (target >= {security.TARGET_RATIO})"


def test_bench_access_log_writes_one_line_per_logged_request() -> None:
    # It measured nothing written for a while: the log handler follows sys.stderr, and the
    # script swapped the handler's stream instead (0 lines, the cost of the terminal measured).
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "bench.access_log", "--requests", "40", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    written = [line for line in run.stdout.splitlines() if line.startswith("access lines written")]
    assert written == ["access lines written: 540"], run.stdout + run.stderr  # 500 warm-up + 40
    assert "usm.access" not in run.stderr  # every line went to the measured file
