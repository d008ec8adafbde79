"""What a served app said: its access lines, its metric series, and an in-process ASGI call."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from typing import Any

import httpx

__all__ = ["access_lines", "asgi_call", "metric_series"]


def access_lines(log: str, path: str) -> list[str]:
    """The access lines in ``log`` whose request path holds ``path``, without their durations
    (the one part two servers answering alike may differ in)."""
    lines = re.findall(r"usm\.access: (.*)", log)
    return [re.sub(r" [\d.]+ms", "", line) for line in lines if path in line]


def metric_series(
    url: str, names: Iterable[str], keep: Callable[[str, str], bool]
) -> dict[str, float]:
    """``{name{labels}: value}`` of the series called one of ``names`` on ``url``'s
    ``/metrics`` that ``keep(name, labels)`` keeps."""
    series = re.compile(rf"^({'|'.join(map(re.escape, names))})(\{{[^}}]*\}}) (\S+)$", re.M)
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        name + labels: float(value)
        for name, labels, value in series.findall(text)
        if keep(name, labels)
    }


def asgi_call(app: Any, scope: dict[str, Any], pieces: list[dict[str, Any]]) -> list[Any]:
    """The messages ``app`` sends for one HTTP request whose body arrives as ``pieces``."""
    pending = list(pieces)
    sent: list[Any] = []

    async def receive() -> Any:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent
