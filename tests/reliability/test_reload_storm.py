"""A table reload storm under mixed load (scoring, item writes, a worker), keys on: no request
fails and every item is handled. tests/integration/governance/test_reload_under_load.py covers
the scoring-only case, SIGUSR1, the file watch and invalid sets; this adds the dispatch traffic."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from tests.reliability.conftest import HEADERS, INCIDENT, KEY, ROOT, Workers, wait_for
from tests.security.process import ApiProcess

ENOUGH = {"score": 20, "item": 10, "reload": 20}
"""The storm runs until each kind of request reached this many (or one failed), however long a
loaded machine takes, rather than for a fixed time that may see too few of them."""


def _write(path: Path, text: str) -> None:
    """Replace a file in one rename, as a deploy does."""
    tmp = path.with_suffix(".tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)


CALL = {"type": "incident", "impact": "group", "urgency": "high"}


def test_reloading_changing_tables_in_a_loop_under_mixed_load_fails_no_request(
    tmp_path: Path, env: dict[str, str], workers: Workers, store: ItemStore
) -> None:
    root = tmp_path / "tables"
    shutil.copytree(ROOT / "tables" / "2026.1", root / "2026.1")
    matrix = root / "2026.1" / "matrix.toml"
    original = matrix.read_text()
    group = '[matrix.group]\nimmediate = "P2"\nhigh = '
    variant = original.replace(group + '"P3"', group + '"P2"')
    assert variant != original
    env["USM_TABLES"] = str(root)
    api = ApiProcess(tmp_path / "api.log", env)
    api.start()
    workers.start()
    stop = threading.Event()
    failures: list[str] = []
    counts = {"score": 0, "item": 0, "reload": 0}
    accepted: list[str] = []
    priorities: set[tuple[str, str]] = set()

    def loop(kind: str, send: Callable[[httpx.Client, int], httpx.Response]) -> None:
        with httpx.Client(base_url=api.url, headers=HEADERS, timeout=10) as client:
            n = 0
            while not stop.is_set():
                try:
                    r = send(client, n)
                except httpx.HTTPError as exc:
                    failures.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                if r.status_code not in (200, 201):
                    failures.append(f"{kind}: {r.status_code} {r.text[:200]}")
                elif kind == "item":
                    accepted.append(r.json()["id"])
                elif kind == "score":
                    priorities.add((r.json()["table_hash"], r.json()["priority"]["name"]))
                counts[kind] += 1
                n += 1

    senders = {
        "score": lambda c, n: c.post("/v1/priority", json=CALL),
        "item": lambda c, n: c.post("/v1/items", json={**INCIDENT, "external_id": f"r{n}"}),
        "reload": lambda c, n: (
            _write(matrix, variant if n % 2 else original),
            c.post("/v1/admin/tables/reload"),
        )[1],
    }
    threads = [threading.Thread(target=loop, args=(k, f)) for k, f in senders.items()]
    for t in threads:
        t.start()
    try:
        wait_for(
            f"{ENOUGH} requests and both sets in force in turn (or a failure)",
            lambda: (
                failures
                or (
                    all(counts[k] >= n for k, n in ENOUGH.items())
                    and {p for _, p in priorities} == {"P2", "P3"}
                )
            ),
            timeout=70,
        )
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        api.stop()
    assert KEY not in api.log()
    assert failures == []
    # Both sets were in force in turn, and each scored the group/high call its own way.
    assert {p for _, p in priorities} == {"P2", "P3"}, priorities
    assert len(priorities) == 2, "a decision mixed one set's hash with the other's matrix"
    wait_for(
        "every item accepted during the storm completed",
        lambda: all(i.state is ItemState.COMPLETED for i in store.get_many(accepted)),
        timeout=60,
    )
