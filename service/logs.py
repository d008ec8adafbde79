"""One log for every process: the same line from the API, the workers and the servers.

``usm`` sets logging up once per process with :func:`setup`: one handler on the root logger, to
stderr, and the servers' own loggers (uvicorn, granian, litestar) pass their records to it
instead of printing in their own formats. The choice travels to child processes through the
environment (``USM_LOG_FORMAT``, ``USM_LOG_LEVEL``), so ``usm serve``'s workers log alike.

- ``text`` (default), for a person: ``2026-11-30 11:01:18.543 INFO usm.serve: message``.
- ``json``, for a log shipper: one object per line with ``time``, ``level``, ``logger``,
  ``message``, ``exc`` (a traceback) and, on access lines, the request's fields.

Values from requests end up in messages (ids, paths), so nothing in a message may start a line
of its own: control characters are escaped (``\\n`` is written as the two characters ``\\n``).
An ``external_id`` holding ``"\\n2026-… CRITICAL …"`` thus stays inside its own line. Tracebacks
keep their lines but are indented, so none of them can pass for a record either.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Literal

import msgspec

__all__ = ["FORMATS", "JsonFormatter", "TextFormatter", "escape", "setup"]

FORMATS = ("text", "json")
"""What ``USM_LOG_FORMAT`` / ``--log-format`` accept."""

LogFormat = Literal["text", "json"]

_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access")
"""Loggers the servers configure with handlers of their own; ours replace them."""

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_TABLE = str.maketrans(_ESCAPES)


def escape(text: str) -> str:
    """``text`` with every control character (and Unicode line separator) written out."""
    return text.translate(_TABLE)


class TextFormatter(logging.Formatter):
    """``2026-11-30 11:01:18.543 INFO usm.serve: message``; a traceback follows, indented."""

    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s")
        self.datefmt = "%Y-%m-%d %H:%M:%S"

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return "\n".join(f"    {escape(line)}" for line in text.splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(f"    {escape(line)}" for line in stack_info.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per line; JSON's own escaping keeps every record on its line."""

    def __init__(self) -> None:
        super().__init__()
        self._encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return self._encode(out).decode()


def setup(level: str | None = None, fmt: str | None = None) -> None:
    """Log in one format from here on, in this process and the ones it starts.

    Args:
        level: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``; default ``USM_LOG_LEVEL``, else INFO.
        fmt: ``text`` or ``json``; default ``USM_LOG_FORMAT``, else text.

    Raises:
        ValueError: An unknown format or level; the message lists the allowed ones.
    """
    level = (level or os.environ.get("USM_LOG_LEVEL") or "INFO").upper()
    fmt = (fmt or os.environ.get("USM_LOG_FORMAT") or "text").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format '{fmt}'; allowed: {', '.join(FORMATS)}")
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"unknown log level '{level}'; allowed: DEBUG, INFO, WARNING, ERROR")
    os.environ["USM_LOG_LEVEL"], os.environ["USM_LOG_FORMAT"] = level, fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    adopt_server_loggers()


def adopt_server_loggers() -> None:
    """Send the servers' records to the root handler (they install their own when they start)."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.propagate = True
