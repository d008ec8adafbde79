"""Helpers shared by the bench scripts: a realistic call mix, the default tables, reporting.

Every script measures a product path next to a ceiling in the same run and prints the ratio,
because absolute numbers on a shared 2-core machine drift from minute to minute.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from service.core.scoring import Scorer
from service.files.loader import load_all
from service.files.store import TableStore

__all__ = [
    "ROOT",
    "TABLES",
    "batch_body",
    "call_body",
    "default_scorer",
    "interleave",
    "machine",
    "make_calls",
    "median",
    "print_table",
]

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "tables"

T = TypeVar("T")

# The call mix of a busy service desk: mostly incidents and requests, a steady share of risks.
_TYPES = (("incident", 40), ("service_request", 25), ("risk", 20), ("change", 10), ("wish", 5))
_IMPACTS = ("organisation", "department", "group", "user")
_URGENCIES = ("immediate", "high", "normal", "low")
_LIKELIHOODS = ("almost_certain", "likely", "possible", "unlikely")
_PROXIMITIES = ("imminent", "near", "medium", "distant")
# Services with and without an impact floor, and no service at all.
_SERVICES = ("workplace", "email", "network", "erp", "payroll", "website", None, None)
_CATEGORIES = ("security", "hardware", "access", "software", "network", None, None, None)
_FLOORED = {"email", "network", "erp", "payroll"}


def _level(rng: random.Random, names: Sequence[str]) -> str | int:
    """A level by name or by rank, half and half, as callers do."""
    i = rng.randrange(len(names))
    return names[i] if rng.random() < 0.5 else i + 1


def make_calls(n: int, seed: int = 2026) -> list[dict[str, Any]]:
    """``n`` valid calls of every type, with levels by name and by rank; same seed, same calls.

    Impact is left out now and then on services with an impact floor (the floor supplies it);
    a risk gives likelihood and proximity, and sometimes an urgency of its own.
    """
    rng = random.Random(seed)
    types = [t for t, _ in _TYPES]
    weights = [w for _, w in _TYPES]
    calls: list[dict[str, Any]] = []
    for _ in range(n):
        kind = rng.choices(types, weights)[0]
        call: dict[str, Any] = {"type": kind}
        service = rng.choice(_SERVICES)
        if service is not None:
            call["service"] = service
        category = rng.choice(_CATEGORIES)
        if category is not None:
            call["category"] = category
        if service in _FLOORED and rng.random() < 0.3:
            pass  # impact comes from the service's floor
        else:
            call["impact"] = _level(rng, _IMPACTS)
        if kind == "risk" and rng.random() < 0.8:
            call["likelihood"] = _level(rng, _LIKELIHOODS)
            call["proximity"] = _level(rng, _PROXIMITIES)
        else:
            call["urgency"] = _level(rng, _URGENCIES)
        if rng.random() < 0.5:
            minute = rng.randrange(60 * 24 * 30)
            call["reported_at"] = (
                f"2026-11-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00Z"
            )
        calls.append(call)
    return calls


def batch_body(n: int, seed: int = 2026) -> bytes:
    """The JSON body of ``POST /v1/priority/batch`` with ``n`` calls."""
    return msgspec.json.encode({"calls": make_calls(n, seed)})


def call_body() -> bytes:
    """The JSON body of ``POST /v1/priority``: one incident with every routing field set."""
    return msgspec.json.encode(
        {
            "type": "incident",
            "impact": "group",
            "urgency": 2,
            "service": "email",
            "category": "hardware",
        }
    )


def default_scorer() -> Scorer:
    """The scorer of the table set in force now under ``tables/``, as the service would pick."""
    return TableStore(load_all(TABLES)).scorer(datetime.now(UTC))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def interleave(rounds: int, runs: dict[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Run each side once per round, A/B/A/B..., so noise from other processes hits all alike."""
    out: dict[str, list[T]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            out[name].append(run())
    return out


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    info = {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load1": f"{os.getloadavg()[0]:.1f}",
    }
    for dist in ("msgspec", "litestar", "uvicorn", "granian", "uvloop", "httptools"):
        info[dist] = _version(dist)
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        info["wrk"] = (out.stdout or out.stderr).split("\n")[0].strip()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_table(rows: Sequence[Sequence[object]], file: Any = sys.stdout) -> None:
    """A plain aligned table; the first row is the header."""
    text = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(text[0]))]
    for j, row in enumerate(text):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ),
            file=file,
        )
        if j == 0:
            print("  ".join("-" * w for w in widths), file=file)
