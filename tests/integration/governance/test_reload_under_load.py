"""Reloads while a real server scores under load: no request fails, none sees a half-loaded set.

Four client threads score calls non-stop against a real ``usm api`` process while the test
swaps the matrix between two valid variants, writes an invalid one, and reloads through the
admin endpoint, SIGUSR1 and the file watch. Every decision must name one of the valid
(version, hash) pairs and every request must succeed.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest

from service.core.calls import Call
from service.files.loader import load_set
from tests.integration.governance.server import ApiProcess
from tests.support.processes import wait_for

TABLES = Path(__file__).resolve().parents[3] / "tables"
NOW = datetime.now(UTC)
CALLS = [
    {"type": "incident", "impact": "group", "urgency": "high"},
    {"type": "risk", "impact": "department", "likelihood": "likely", "proximity": "near"},
    {"type": "change", "impact": "user", "urgency": "low", "service": "payroll"},
]


def _write(path: Path, text: str) -> None:
    """Replace a file in one rename, as a deploy (or ``git checkout``) does."""
    tmp = path.with_suffix(".tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_reloading_under_scoring_load_fails_no_request_and_mixes_no_sets(
    tmp_path: Path, redis_url: str, server: str
) -> None:
    root = tmp_path / "tables"
    version_dir = root / "2026.1"
    shutil.copytree(TABLES / "2026.1", version_dir)
    matrix = version_dir / "matrix.toml"
    original = matrix.read_text()
    group = '[matrix.group]\nimmediate = "P2"\nhigh = '
    variant = original.replace(group + '"P3"', group + '"P2"')
    invalid = original.replace('high = "P3"', 'high = "P9"', 1)
    assert original not in (variant, invalid)
    # What each valid set answers for each call: a decision must agree with the set it names.
    expected: dict[tuple[str, str], list[str]] = {}
    for text in (original, variant):
        matrix.write_text(text)
        loaded = load_set(version_dir)
        scorer = loaded.scorer()
        expected[("2026.1", loaded.hash)] = [
            scorer.score(msgspec.convert(c, Call), NOW).priority.name for c in CALLS
        ]
    matrix.write_text(original)
    valid = set(expected)
    assert len(valid) == 2
    assert len({tuple(v) for v in expected.values()}) == 2, "the variants must score differently"

    api = ApiProcess(root, tmp_path / "api.log", {"USM_SERVER": server, "REDIS_URL": redis_url})
    stop = threading.Event()
    seen: Counter[tuple[str, str]] = Counter()
    failures: list[str] = []
    mixed: list[str] = []
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                n = i % len(CALLS)
                r = client.post("/v1/priority", json=CALLS[n])
                i += 1
                with lock:
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                        continue
                    d = r.json()
                    ident = (d["table_version"], d["table_hash"])
                    seen[ident] += 1
                    want = expected.get(ident)
                    if want is not None and want[n] != d["priority"]["name"]:
                        mixed.append(f"{ident} gave {d['priority']['name']} for {CALLS[n]}")

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    admin = httpx.Client(base_url=api.url, timeout=10)
    results: Counter[str] = Counter()
    try:
        for round_ in range(6):
            _write(matrix, variant)
            results[admin.post("/v1/admin/tables/reload").json()["result"]] += 1
            _write(matrix, invalid)
            r = admin.post("/v1/admin/tables/reload")
            assert r.status_code == 422, r.text
            assert r.json()["report"]["problems"] == [
                "2026.1/matrix.toml: matrix.group.high: unknown priority level 'P9'; "
                "allowed: P1, P2, P3, P4, P5"
            ]
            _write(matrix, original)
            if round_ % 2:
                api.reload_signal()
            time.sleep(0.5)  # the file watch (0.2 s) or SIGUSR1 picks the original up
        # However slowly a loaded machine served the rounds: enough decisions to judge.
        wait_for("over 100 decisions", lambda: failures or sum(seen.values()) > 100, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
        admin.close()
        api.stop()
    assert failures == []
    assert mixed == [], "a decision's priority did not match the set it named"
    assert set(seen) <= valid, f"a decision named a set that was never valid: {seen}"
    assert set(seen) == valid, "both valid variants should have scored calls"
    assert sum(seen.values()) > 100
    assert results["success"] >= 1
